"""Activities (emails, calls, meetings, notes logged in the CRM): the filtered list with the deal's and the
account's names, and a deal's timeline. Read-only."""
from __future__ import annotations

from typing import Any

import psycopg

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, ranges, run_query

SPEC = QuerySpec(
    entity="activities",
    alias="act",
    from_sql="activities act"
             " LEFT JOIN deals dl ON dl.workspace_id = act.workspace_id AND dl.id = act.deal_id"
             " LEFT JOIN accounts acc ON acc.workspace_id = act.workspace_id AND acc.id = act.account_id",
    select="""act.id, act.activity_type, act.subject, act.body, act.direction, act.occurred_at, act.duration_seconds,
        act.owner, act.owner_email, act.participants, act.contact_id, act.account_id, acc.name AS account_name,
        act.deal_id, dl.name AS deal_name, act.link_method, act.linked_at, act.custom_fields, act.source,
        act.source_id, act.source_created_at, act.source_updated_at, act.created_at, act.updated_at,
        act.deleted_at""",
    filters={
        **common_filters("act"),
        "activity_type": Filter("eq", "act.activity_type", "ci"),
        "direction": Filter("eq", "act.direction", "ci"),
        "owner": Filter("eq", "act.owner", "ci"),
        "owner_email": Filter("eq", "act.owner_email", "ci"),
        "deal_id": Filter("eq", "act.deal_id", "uuid"),
        "account_id": Filter("eq", "act.account_id", "uuid"),
        "contact_id": Filter("eq", "act.contact_id", "uuid"),
        "linked": Filter("present", "act.deal_id"),
        "has_account": Filter("present", "act.account_id"),
        "link_method": Filter("eq", "act.link_method", "ci"),
        **ranges("occurred", "act.occurred_at", "timestamp"),
        "search": Filter("text", ("act.subject", "act.body")),
    },
    sorts={
        "occurred_at": Sort("act.occurred_at", "timestamp"),
        "activity_type": Sort("lower(act.activity_type)", "text"),
        "created": Sort("COALESCE(act.source_created_at, act.created_at)", "timestamp"),
    },
    default_sort="occurred_at",
    default_direction="desc",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of activities; see SPEC.filters / SPEC.sorts for the names (default: newest first)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)


def for_deal(conn: psycopg.Connection, workspace_id: Any, deal_id: Any, limit: int = 50) -> list[dict[str, Any]]:
    """A deal's latest activities, newest first (undated ones last); empty for a deal of another workspace."""
    return query(conn, workspace_id, filters={"deal_id": deal_id}, sort="occurred_at", direction="desc",
                 limit=limit).items

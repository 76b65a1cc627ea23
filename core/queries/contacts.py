"""Contacts: the filtered list, with the linked account's name and domain. Read-only."""
from __future__ import annotations

from typing import Any

import psycopg

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, ranges, run_query

_FULL_NAME = "NULLIF(btrim(concat_ws(' ', c.first_name, c.last_name)), '')"

SPEC = QuerySpec(
    entity="contacts",
    alias="c",
    from_sql="contacts c LEFT JOIN accounts a ON a.workspace_id = c.workspace_id AND a.id = c.account_id",
    select=f"""c.id, c.email, c.first_name, c.last_name, {_FULL_NAME} AS full_name, c.title, c.phone, c.department,
        c.seniority, c.lifecycle_stage, c.lead_status, c.company_name, c.owner, c.owner_email, c.account_id,
        COALESCE(a.name, c.company_name) AS account_name, a.domain AS account_domain, c.engagement_score,
        c.last_activity_at, c.custom_fields, c.source, c.source_id, c.source_created_at, c.source_updated_at,
        c.created_at, c.updated_at, c.deleted_at""",
    filters={
        **common_filters("c"),
        "owner": Filter("eq", "c.owner", "ci"),
        "owner_email": Filter("eq", "c.owner_email", "ci"),
        "email": Filter("eq", "c.email", "ci"),
        "email_domain": Filter("eq", "split_part(c.email, '@', 2)", "ci"),
        "account_id": Filter("eq", "c.account_id", "uuid"),
        "has_account": Filter("present", "c.account_id"),
        "deal_id": Filter("match", "EXISTS (SELECT 1 FROM deal_contacts dc WHERE dc.workspace_id = c.workspace_id"
                                   " AND dc.contact_id = c.id AND dc.deal_id = {v})", "uuid"),
        "lifecycle_stage": Filter("eq", "c.lifecycle_stage", "ci"),
        "lead_status": Filter("eq", "c.lead_status", "ci"),
        "seniority": Filter("eq", "c.seniority", "ci"),
        "department": Filter("eq", "c.department", "ci"),
        **ranges("engagement", "c.engagement_score", "number", "min", "max"),
        **ranges("last_activity", "c.last_activity_at", "timestamp"),
        "search": Filter("text", (_FULL_NAME, "c.email", "c.title", "c.company_name", "a.name")),
    },
    sorts={
        "name": Sort("NULLIF(btrim(lower(concat_ws(' ', c.last_name, c.first_name))), '')", "text"),
        "email": Sort("lower(c.email)", "text"),
        "engagement": Sort("c.engagement_score", "number"),
        "last_activity": Sort("c.last_activity_at", "timestamp"),
        "created": Sort("COALESCE(c.source_created_at, c.created_at)", "timestamp"),
    },
    default_sort="name",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of contacts; see SPEC.filters / SPEC.sorts for the names (default: last name, first name)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)

"""Accounts: the filtered list, and one account with its deal counts (open / won / lost, and their amounts) and
contact count. Read-only."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, fetch_one, ranges, run_query
from core.stages import CLOSED_STAGES

_OPEN_DEAL = f"""EXISTS (SELECT 1 FROM deals od WHERE od.workspace_id = a.workspace_id AND od.account_id = a.id
                AND od.deleted_at IS NULL
                AND (od.stage_normalized IS NULL OR od.stage_normalized NOT IN {CLOSED_STAGES!r}))"""

SPEC = QuerySpec(
    entity="accounts",
    alias="a",
    from_sql="accounts a",
    select="""a.id, a.name, a.domain, a.website, a.industry, a.employee_count, a.annual_revenue, a.country,
        a.state, a.city, a.account_type, a.owner, a.owner_email, a.parent_source_id, a.health_score,
        a.last_activity_at, a.custom_fields, a.source, a.source_id, a.source_created_at, a.source_updated_at,
        a.created_at, a.updated_at, a.deleted_at""",
    filters={
        **common_filters("a"),
        "owner": Filter("eq", "a.owner", "ci"),
        "owner_email": Filter("eq", "a.owner_email", "ci"),
        "domain": Filter("eq", "a.domain", "ci"),
        "industry": Filter("eq", "a.industry", "ci"),
        "country": Filter("eq", "a.country", "ci"),
        "account_type": Filter("eq", "a.account_type", "ci"),
        "has_open_deals": Filter("flag", _OPEN_DEAL),
        **ranges("employees", "a.employee_count", "int", "min", "max"),
        **ranges("revenue", "a.annual_revenue", "number", "min", "max"),
        **ranges("health", "a.health_score", "number", "min", "max"),
        **ranges("last_activity", "a.last_activity_at", "timestamp"),
        "search": Filter("text", ("a.name", "a.domain", "a.website")),
    },
    sorts={
        "name": Sort("lower(a.name)", "text"),
        "employees": Sort("a.employee_count", "int"),
        "revenue": Sort("a.annual_revenue", "number"),
        "health": Sort("a.health_score", "number"),
        "last_activity": Sort("a.last_activity_at", "timestamp"),
        "created": Sort("COALESCE(a.source_created_at, a.created_at)", "timestamp"),
    },
    default_sort="name",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of accounts; see SPEC.filters / SPEC.sorts for the names (default: name ascending)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)


# A NULL stage is an open deal, as everywhere in the query layer.
_COUNTS = f"""
SELECT count(*) FILTER (WHERE NOT closed) AS open_deals,
       count(*) FILTER (WHERE stage = 'closed_won') AS won_deals,
       count(*) FILTER (WHERE stage = 'closed_lost') AS lost_deals,
       COALESCE(sum(amount) FILTER (WHERE NOT closed), 0) AS open_amount,
       COALESCE(sum(amount) FILTER (WHERE stage = 'closed_won'), 0) AS won_amount,
       (SELECT count(*) FROM contacts c WHERE c.workspace_id = %(workspace_id)s AND c.account_id = %(account_id)s
           AND c.deleted_at IS NULL) AS contact_count
  FROM (SELECT d.stage_normalized AS stage, d.amount,
               COALESCE(d.stage_normalized IN {CLOSED_STAGES!r}, false) AS closed
          FROM deals d
         WHERE d.workspace_id = %(workspace_id)s AND d.account_id = %(account_id)s AND d.deleted_at IS NULL) deals
"""


def get(conn: psycopg.Connection, workspace_id: Any, account_id: Any, *, include_deleted: bool = False) -> dict[str, Any]:
    """One account with open_deals, won_deals, lost_deals, open_amount, won_amount and contact_count (deleted
    deals and contacts left out). NotFound for an id of another workspace."""
    account = fetch_one(conn, SPEC, workspace_id, account_id, param="account_id", include_deleted=include_deleted)
    counts = conn.cursor(row_factory=dict_row).execute(
        _COUNTS, {"workspace_id": str(workspace_id), "account_id": account["id"]}
    ).fetchone()
    return {**account, **counts}

"""Deals: the filtered list (with the account's name and domain), one deal with its account and contacts, and
the open pipeline aggregated by stage and owner.

Read-only, like every query module; `stage_normalized` is the only stage vocabulary it filters or sorts on.
"""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from core.queries import accounts
from core.queries.base import Filter, Page, QuerySpec, Sort, common_filters, fetch_one, ranges, run_query, where
from core.stages import STAGE_ORDER, STAGES, default_probability

_STAGE_RANK = f"array_position(ARRAY[{', '.join(repr(s) for s in STAGES)}]::text[], d.stage_normalized)"
# A deal without a probability is weighted by its stage's default (core.stages), 0 for no stage.
_PROBABILITY = "COALESCE(d.probability, CASE d.stage_normalized {} ELSE 0 END)".format(
    " ".join(f"WHEN {s!r} THEN {default_probability(s)}" for s in STAGES)
)

SPEC = QuerySpec(
    entity="deals",
    alias="d",
    from_sql="deals d LEFT JOIN accounts a ON a.workspace_id = d.workspace_id AND a.id = d.account_id",
    select="""d.id, d.name, d.amount, d.currency, d.stage, d.stage_normalized, d.pipeline, d.probability,
        d.forecast_category, d.close_date, d.closed_at, d.owner, d.owner_email, d.account_id,
        COALESCE(a.name, d.account_name) AS account_name, a.domain AS account_domain, d.next_step, d.deal_type,
        d.lead_source, d.stage_entered_at, d.days_in_stage, d.last_activity_at, d.velocity_score, d.deal_risk,
        d.deal_risk_factors, d.health_score, d.custom_fields, d.source, d.source_id, d.source_created_at,
        d.source_updated_at, d.created_at, d.updated_at, d.deleted_at""",
    filters={
        **common_filters("d"),
        "owner": Filter("eq", "d.owner", "ci"),
        "owner_email": Filter("eq", "d.owner_email", "ci"),
        "stage": Filter("eq", "d.stage_normalized", choices=STAGES),
        "status": Filter("status", "d.stage_normalized"),
        "forecast_category": Filter("eq", "d.forecast_category", "ci"),
        "deal_type": Filter("eq", "d.deal_type", "ci"),
        "pipeline": Filter("eq", "d.pipeline", "ci"),
        "account_id": Filter("eq", "d.account_id", "uuid"),
        "has_account": Filter("present", "d.account_id"),
        **ranges("close_date", "d.close_date", "date"),
        **ranges("amount", "d.amount", "number", "min", "max"),
        **ranges("probability", "d.probability", "number", "min", "max"),
        **ranges("risk", "d.deal_risk", "number", "min", "max"),
        **ranges("health", "d.health_score", "number", "min", "max"),
        **ranges("last_activity", "d.last_activity_at", "timestamp"),
        "search": Filter("text", ("d.name", "a.name", "d.account_name", "a.domain")),
    },
    sorts={
        "close_date": Sort("d.close_date", "date"),
        "amount": Sort("d.amount", "number"),
        "name": Sort("lower(d.name)", "text"),
        "stage": Sort(_STAGE_RANK, "int"),
        "owner": Sort("lower(d.owner)", "text"),
        "probability": Sort("d.probability", "number"),
        "risk": Sort("d.deal_risk", "number"),
        "health": Sort("d.health_score", "number"),
        "days_in_stage": Sort("d.days_in_stage", "int"),
        "last_activity": Sort("d.last_activity_at", "timestamp"),
        "created": Sort("COALESCE(d.source_created_at, d.created_at)", "timestamp"),
    },
    default_sort="close_date",
)


def query(
    conn: psycopg.Connection, workspace_id: Any, *, filters: dict[str, Any] | None = None, sort: str | None = None,
    direction: str | None = None, limit: int = 50, offset: int = 0, cursor: str | None = None,
) -> Page:
    """A page of deals; see SPEC.filters / SPEC.sorts for the names (default: close_date ascending)."""
    return run_query(conn, SPEC, workspace_id, filters=filters, sort=sort, direction=direction, limit=limit,
                     offset=offset, cursor=cursor)


_CONTACTS = """
SELECT c.id, c.email, c.first_name, c.last_name, c.title, c.phone,
       bool_or(dc.is_primary) AS is_primary,
       (array_agg(dc.role ORDER BY dc.is_primary DESC, dc.source) FILTER (WHERE dc.role IS NOT NULL))[1] AS role,
       (array_agg(dc.buying_role ORDER BY dc.source) FILTER (WHERE dc.buying_role IS NOT NULL))[1] AS buying_role,
       array_agg(DISTINCT dc.role_source) FILTER (WHERE dc.role_source IS NOT NULL) AS role_sources
  FROM deal_contacts dc
  JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id
 WHERE dc.workspace_id = %(workspace_id)s AND dc.deal_id = %(deal_id)s AND c.deleted_at IS NULL
 GROUP BY c.workspace_id, c.id
 ORDER BY bool_or(dc.is_primary) DESC, lower(c.last_name) NULLS LAST, c.id
"""


def get(conn: psycopg.Connection, workspace_id: Any, deal_id: Any, *, include_deleted: bool = False) -> dict[str, Any]:
    """One deal with `account` (the linked account row, or None) and `contacts` (one entry per contact however
    many sources link it, primary first). NotFound for an id of another workspace."""
    deal = fetch_one(conn, SPEC, workspace_id, deal_id, param="deal_id", include_deleted=include_deleted)
    deal["account"] = None
    if deal["account_id"] is not None:
        deal["account"] = fetch_one(conn, accounts.SPEC, workspace_id, deal["account_id"], include_deleted=True)
    deal["contacts"] = conn.cursor(row_factory=dict_row).execute(
        _CONTACTS, {"workspace_id": str(workspace_id), "deal_id": deal["id"]}
    ).fetchall()
    return deal


_PIPELINE = """
SELECT d.stage_normalized AS stage, d.owner, GROUPING(d.stage_normalized) AS all_stages,
       GROUPING(d.owner) AS all_owners, count(*) AS deal_count, COALESCE(sum(d.amount), 0) AS amount,
       round(COALESCE(sum(d.amount * {probability} / 100), 0), 2) AS weighted
  FROM {from_sql}
 WHERE {where}
 GROUP BY GROUPING SETS ((d.stage_normalized), (d.owner), ())
"""


def open_pipeline(
    conn: psycopg.Connection, workspace_id: Any, *, owner: str | None = None, close_from: Any = None,
    close_to: Any = None,
) -> dict[str, Any]:
    """Open deals (no stage counts as open) summed overall, by stage (in stage order, no stage last) and by owner
    (largest first): deal_count, amount (missing amounts count 0) and weighted = amount × probability / 100,
    where a missing probability takes the stage's default. Amounts are added as they are, whatever currency."""
    conds, params = where(SPEC, workspace_id, {
        "status": "open", "owner": owner, "close_date_from": close_from, "close_date_to": close_to,
    })
    rows = conn.cursor(row_factory=dict_row).execute(
        _PIPELINE.format(probability=_PROBABILITY, from_sql=SPEC.from_sql, where=" AND ".join(conds)), params
    ).fetchall()

    def numbers(row: dict[str, Any]) -> dict[str, Any]:
        return {"deal_count": row["deal_count"], "amount": row["amount"], "weighted": row["weighted"]}

    total = next(r for r in rows if r["all_stages"] and r["all_owners"])  # () always yields one row
    by_stage = [{"stage": r["stage"], **numbers(r)} for r in rows if not r["all_stages"]]
    by_owner = [{"owner": r["owner"], **numbers(r)} for r in rows if not r["all_owners"]]
    by_stage.sort(key=lambda r: STAGE_ORDER.get(r["stage"], len(STAGE_ORDER)))
    by_owner.sort(key=lambda r: (-r["amount"], r["owner"] is None, r["owner"] or ""))
    return {**numbers(total), "by_stage": by_stage, "by_owner": by_owner}

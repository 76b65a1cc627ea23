"""The numbers the demo report shows about a workspace, read back from the database (not from the generated
dataset, so the report proves what landed). Read-only; every query filters on workspace_id first."""
from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from psycopg import sql

from core.pipeline.references import REFERENCES
from core.quotas import fiscal_quarter, list_quotas
from core.synthetic.model import ENTITY_ORDER
from core.synthetic.vocab import STAGES

_OPEN = "(stage_normalized IS NULL OR stage_normalized NOT IN ('closed_won', 'closed_lost'))"

_PIPELINE = f"""
SELECT count(*) FILTER (WHERE {_OPEN}) AS open_count,
       coalesce(sum(amount) FILTER (WHERE {_OPEN}), 0) AS open_amount,
       count(*) FILTER (WHERE stage_normalized = 'closed_won' AND close_date BETWEEN %(start)s AND %(end)s) AS won_count,
       coalesce(sum(amount) FILTER (WHERE stage_normalized = 'closed_won'
                                      AND close_date BETWEEN %(start)s AND %(end)s), 0) AS won_amount
  FROM deals
 WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL
"""

_BY_STAGE = """
SELECT stage_normalized AS stage, count(*) AS count, coalesce(sum(amount), 0) AS amount
  FROM deals
 WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL
 GROUP BY stage_normalized
"""

_BY_OWNER = f"""
SELECT owner,
       coalesce(sum(amount) FILTER (WHERE stage_normalized = 'closed_won'
                                      AND close_date BETWEEN %(start)s AND %(end)s), 0) AS won_amount,
       coalesce(sum(amount) FILTER (WHERE {_OPEN}), 0) AS open_amount
  FROM deals
 WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL
 GROUP BY owner
"""


def summarize(conn, workspace_id: uuid.UUID | str, today: date) -> dict[str, Any]:
    ws = str(workspace_id)
    quarter = fiscal_quarter(today)
    params = {"workspace_id": ws, "start": quarter.start_date, "end": quarter.end_date}
    pipe = conn.execute(_PIPELINE, params).fetchone()
    stages = {r["stage"]: r for r in conn.execute(_BY_STAGE, params).fetchall()}
    owners = {r["owner"]: r for r in conn.execute(_BY_OWNER, params).fetchall()}
    period = next((p for p in list_quotas(conn, ws)
                   if p["period_type"] == "quarter" and p["start_date"] <= today <= p["end_date"]), None)
    reps = []
    for rq in (period or {}).get("reps", []):
        mine = owners.get(rq["rep_name"], {})
        quota = rq["quota_amount"]
        won = mine.get("won_amount", 0)
        reps.append({"name": rq["rep_name"], "email": rq["rep_email"], "quota": quota, "won": won,
                     "attainment": round(float(won) / float(quota), 3) if quota else None,
                     "open_pipeline": mine.get("open_amount", 0)})
    order = [*STAGES, None]
    return {
        "quarter": {"name": quarter.name, "start": quarter.start_date, "end": quarter.end_date},
        "totals": entity_totals(conn, ws),
        "open_pipeline": {"amount": pipe["open_amount"], "count": pipe["open_count"]},
        "closed_won_this_quarter": {"amount": pipe["won_amount"], "count": pipe["won_count"]},
        "deals_by_stage": [{"stage": s, "count": stages[s]["count"], "amount": stages[s]["amount"]}
                           for s in order if s in stages],
        "team_quota": period["team_quota"] if period else None,
        "reps": reps,
        "references": reference_counts(conn, ws),
    }


def entity_totals(conn, workspace_id: str) -> dict[str, int]:
    """Rows per entity table in the workspace (one statement)."""
    stmt = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("(SELECT count(*) FROM {} WHERE workspace_id = %(workspace_id)s) AS {}").format(
            sql.Identifier(t), sql.Identifier(t))
        for t in ENTITY_ORDER))
    return dict(conn.execute(stmt, {"workspace_id": workspace_id}).fetchone())


def reference_counts(conn, workspace_id: str) -> dict[str, Any]:
    """How many source references (`*_source_id` filled) are resolved to ids, overall and per reference."""
    parts = [
        sql.SQL("SELECT {label} AS ref, count(*) AS total, count({id_col}) AS resolved FROM {table}"
                " WHERE workspace_id = %(workspace_id)s AND {src_col} IS NOT NULL").format(
            label=sql.Literal(f"{table}.{id_col}"), id_col=sql.Identifier(id_col), table=sql.Identifier(table),
            src_col=sql.Identifier(src_col))
        for table, id_col, src_col, _ in REFERENCES
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts), {"workspace_id": workspace_id}).fetchall()
    by_ref = {r["ref"]: {"resolved": r["resolved"], "total": r["total"]} for r in rows if r["total"]}
    return {"resolved": sum(v["resolved"] for v in by_ref.values()),
            "total": sum(v["total"] for v in by_ref.values()), "by_reference": by_ref}

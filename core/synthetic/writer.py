"""Write a generated dataset into a workspace through the one write path, then run the post-sync pipeline.

Entity rows go only through `core.db.upsert.upsert_rows` (source 'demo', stable source ids), one transaction
per page, so a second run with the same (seed, scale, today) writes nothing. Quotas go through
`core.quotas`. Resolving `*_source_id` references to ids is left to `core.pipeline.run_post_sync`.
"""
from __future__ import annotations

import uuid

from psycopg import sql

from core.db.upsert import UpsertResult, upsert_rows
from core.pipeline import run_post_sync
from core.pipeline.references import clear_dangling_references
from core.quotas import set_rep_quota, upsert_quota_period
from core.synthetic.model import ENTITY_ORDER, Dataset
from core.synthetic.vocab import SOURCE


def write_dataset(db, workspace_id: uuid.UUID | str, dataset: Dataset, page_size: int = 1000) -> dict[str, dict]:
    """Upsert every entity table page by page; returns table → {inserted, updated, unchanged}."""
    counts: dict[str, dict] = {}
    for table in ENTITY_ORDER:
        rows = dataset.tables.get(table, [])
        total = UpsertResult(table)
        for start in range(0, len(rows), page_size):
            with db.connection() as conn:
                total.add(upsert_rows(conn, table, workspace_id, rows[start:start + page_size]))
        counts[table] = total.counts()
    with db.connection() as conn:
        write_quotas(conn, workspace_id, dataset)
        # A bulk load leaves the planner without statistics for the new rows, and the post-sync joins on
        # *_source_id then pick nested loops (10x slower at scale 1). Refresh them for the tables we grew.
        for table, c in counts.items():
            if c["inserted"]:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    run_post_sync(db, workspace_id)
    return counts


def write_quotas(conn, workspace_id: uuid.UUID | str, dataset: Dataset) -> int:
    """Upsert the dataset's quota periods and rep quotas; returns how many rep quota rows changed."""
    changed = 0
    for plan in dataset.quotas:
        period_id = upsert_quota_period(conn, workspace_id, plan.name, plan.period_type, plan.start_date,
                                        plan.end_date, plan.team_quota)
        for rep_name, rep_email, amount in plan.reps:
            changed += set_rep_quota(conn, workspace_id, period_id, rep_name, rep_email, amount)
    return changed


def clear_dataset(db, workspace_id: uuid.UUID | str) -> int:
    """Delete every row a generated dataset wrote into the workspace (source 'demo'), in one transaction, and null
    the references other rows held to them; returns how many rows went. Their deal-contact links and participant
    e-mails go with them (triggers), quotas stay (periods are upserted by name)."""
    deleted = 0
    with db.connection() as conn, conn.transaction():
        for table in reversed(ENTITY_ORDER):
            deleted += conn.execute(sql.SQL("DELETE FROM {} WHERE workspace_id = %(w)s AND source = %(s)s").format(
                sql.Identifier(table)), {"w": workspace_id, "s": SOURCE}).rowcount
        clear_dangling_references(conn, str(workspace_id))
    return deleted

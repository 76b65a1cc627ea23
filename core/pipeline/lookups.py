"""Reverse lookups: which conversations or activities list these e-mail addresses (compared as
core.pipeline.participants says, of participants not marked internal: the rule the linker and the engagement
score read them by, migrations 0026 and 0028), or name these CRM records. Incremental runs ask this with up to tens of
thousands of values.

E-mails are rows of `participant_emails` (migration 0024: kept by triggers, so relinking a conversation, which
rewrites the row, does not rewrite its e-mails): one search of its key.

CRM ids are in GIN expression indexes (migrations 0012, 0024). The planner prices a GIN search by its number of
keys and, with thousands of them, prefers any btree that narrows the rows a little and evaluates the JSON
expression on every row left (tens of microseconds each, so seconds on a large workspace), where the GIN search
itself takes milliseconds. Here the lookup runs alone, with plain index and sequential scans switched off for
that one statement and the workspace filter applied after the scan, which leaves the bitmap scan of the GIN
index as the only plan. Callers filter the ids further (workspace, links) in their own statements.
"""
from __future__ import annotations

from typing import Any

from core.db.planner import planner

_TABLES = frozenset({"conversations", "activities"})
_KINDS = frozenset({"emails", "crm_ids"})

_EMAILS = """SELECT DISTINCT row_id AS id FROM participant_emails
 WHERE workspace_id = %(workspace_id)s AND entity = %(table)s AND email = ANY(%(values)s::text[])"""

# The GIN indexes hold only rows having a key CRM ids are read under (migration 0024); a query that repeats the
# index's condition is one the planner may answer with it (a row without those keys names nothing).
_HAS_CRM_KEYS = "source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations']"

# CRM ids per GIN search. Each row the index returns is rechecked against the whole list (`?|` walks it), so one
# search with n values costs n² (16,000 values: 1.4 s); searches of a few hundred cost n (the same: 0.18 s).
BATCH = 400

LOOKUP_PLANNER = {"enable_seqscan": "off", "enable_indexscan": "off"}


def lookup_query(table: str, kind: str) -> str:
    """The statement rows_naming runs (per batch, for CRM ids). Parameters: values, workspace_id, table."""
    assert table in _TABLES and kind in _KINDS, (table, kind)
    if kind == "emails":
        return _EMAILS
    # OFFSET 0 keeps the workspace condition out of the scan: a bitmap over a (workspace_id, …) btree would
    # otherwise win the planner's pricing and evaluate the expression on every row of the workspace.
    return (f"SELECT id FROM (SELECT id, workspace_id FROM {table}"  # table: one of the fixed set above
            f" WHERE pandora_crm_ref_ids(source_data) ?| %(values)s::text[] AND {_HAS_CRM_KEYS} OFFSET 0) AS hit"
            " WHERE workspace_id = %(workspace_id)s")


def rows_naming(conn, table: str, kind: str, workspace_id: Any, values: list[str]) -> list:
    """Ids of `table` rows of the workspace whose `kind` ("emails" or "crm_ids") include any of `values`."""
    if not values:
        return []
    query = lookup_query(table, kind)
    params = {"workspace_id": workspace_id, "table": table}
    if kind == "emails":
        return [r["id"] for r in conn.execute(query, {**params, "values": values})]
    found: dict = {}
    with planner(conn, **LOOKUP_PLANNER):
        for start in range(0, len(values), BATCH):
            for r in conn.execute(query, {**params, "values": values[start:start + BATCH]}):
                found[r["id"]] = None
    return list(found)

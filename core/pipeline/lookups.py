"""Reverse lookups through the GIN indexes of migration 0012: which conversations or activities list these
e-mail addresses (of participants not marked internal, lower-cased: migration 0023), or name these CRM records.
Incremental runs ask this with up to tens of thousands of values.

The planner prices a GIN search by its number of keys and, with thousands of them, prefers any btree that
narrows the rows a little and evaluates the JSON expression on every row left (tens of microseconds each, so
seconds on a large workspace), where the GIN search itself takes milliseconds. Here the lookup runs alone,
with plain index and sequential scans switched off for that one statement and the workspace filter applied
after the scan, which leaves the bitmap scan of the GIN index as the only plan. Callers filter the ids further (workspace, links) in their own statements.
"""
from __future__ import annotations

from typing import Any

from core.db.planner import planner

_EXPRESSIONS = {"emails": "pandora_participant_emails(participants)", "crm_ids": "pandora_crm_ref_ids(source_data)"}
# The indexes hold only rows with something to find (migration 0024); a query that repeats the index's condition
# is one the planner may answer with it (a row without keys names nothing, so the condition drops no match).
_INDEXED = {"emails": "pandora_participant_emails(participants) <> '[]'::jsonb",
            "crm_ids": "source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations']"}
_TABLES = frozenset({"conversations", "activities"})


# Values per search. Each row the index returns is rechecked against the whole list (`?|` walks it), so one
# search with n values costs n² (16,000 e-mails: 1.4 s); searches of a few hundred cost n (the same: 0.18 s).
BATCH = 400


def lookup_query(table: str, kind: str) -> str:
    """The statement rows_naming runs per batch (parameters: values, workspace_id)."""
    assert table in _TABLES and kind in _EXPRESSIONS, (table, kind)
    # OFFSET 0 keeps the workspace condition out of the scan: a bitmap over a (workspace_id, …) btree would
    # otherwise win the planner's pricing and evaluate the expression on every row of the workspace.
    return (f"SELECT id FROM (SELECT id, workspace_id FROM {table}"  # table and expressions: fixed sets above
            f" WHERE {_EXPRESSIONS[kind]} ?| %(values)s::text[] AND {_INDEXED[kind]} OFFSET 0) AS hit"
            " WHERE workspace_id = %(workspace_id)s")


LOOKUP_PLANNER = {"enable_seqscan": "off", "enable_indexscan": "off"}


def rows_naming(conn, table: str, kind: str, workspace_id: Any, values: list[str]) -> list:
    """Ids of `table` rows of the workspace whose `kind` ("emails" or "crm_ids") include any of `values`."""
    if not values:
        return []
    query = lookup_query(table, kind)
    found: dict = {}
    with planner(conn, **LOOKUP_PLANNER):
        for start in range(0, len(values), BATCH):
            for r in conn.execute(query, {"values": values[start:start + BATCH], "workspace_id": workspace_id}):
                found[r["id"]] = None
    return list(found)

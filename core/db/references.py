"""The source's own references between entity rows, and their resolution as a page is written.

Connectors write what the source says ("this deal belongs to company 4711": `account_source_id`); the id column
beside it (`account_id`) holds our row id of that company once it is stored. `upsert_rows` fills it for the rows
it writes when the referenced row of the same source already exists (one indexed lookup per reference and
page), so a sync that writes companies before contacts stores contacts already linked, instead of the
post-sync step rewriting every contact a second time (the first sync of a million contacts: 27 s of UPDATE).
The step (`core.pipeline.references`) still resolves what was not found then (the target arrived later, a
file import's cross-source ids, rows whose digest left them unwritten).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from psycopg import sql
from psycopg.rows import tuple_row

# (table, id column, source-id column, referenced table)
REFERENCES = (
    ("contacts", "account_id", "account_source_id", "accounts"),
    ("deals", "account_id", "account_source_id", "accounts"),
    ("deal_stage_history", "deal_id", "deal_source_id", "deals"),
    ("activities", "account_id", "account_source_id", "accounts"),
    ("activities", "contact_id", "contact_source_id", "contacts"),
    ("activities", "deal_id", "deal_source_id", "deals"),
    ("tasks", "account_id", "account_source_id", "accounts"),
    ("tasks", "contact_id", "contact_source_id", "contacts"),
    ("tasks", "deal_id", "deal_source_id", "deals"),
    ("calls", "account_id", "account_source_id", "accounts"),
    ("calls", "contact_id", "contact_source_id", "contacts"),
    ("calls", "deal_id", "deal_source_id", "deals"),
    ("leads", "converted_account_id", "converted_account_source_id", "accounts"),
    ("leads", "converted_contact_id", "converted_contact_source_id", "contacts"),
    ("leads", "converted_deal_id", "converted_deal_source_id", "deals"),
)

# File exports name other sources' ids; the post-sync step matches those across sources.
_LEFT_TO_THE_STEP = frozenset({"csv_import"})

# Tables whose links the linker labels per field (core.pipeline.linker). An id resolved from the row's own
# reference is exactly what the linker's CRM tier would set, so a row inserted with it is labelled crm_native
# at once and the linker has nothing to rewrite (after a first sync: most activities). Inserts only: on an
# update the write path leaves labels to the linker, which knows what a manual or inferred link outranks.
LABELLED = frozenset({"activities"})
LABELS = ("link_details", "link_method")
_FIELD = {"contact_id": "contact", "account_id": "account", "deal_id": "deal"}


def resolve_page(conn, table: str, workspace_id: str,
                 rows: list[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The id columns this page's references resolve to, and per row their values (None: not found, or the row
    names nothing): `(columns, values)`, both empty when nothing resolves. A reference is resolved only for rows
    of the same source as the target, and not when any row of the page writes the id column itself. On a
    LABELLED table the labels of the resolved ids follow (`LABELS`, unless a row writes labels itself)."""
    columns: list[str] = []
    values: list[list[Any]] = [[] for _ in rows]
    for ref_table, id_col, src_col, target in REFERENCES:
        if ref_table != table or any(id_col in row for row in rows):
            continue
        wanted: dict[str, set[str]] = {}
        for row in rows:
            ref = row.get(src_col)
            if ref is not None and ref != "" and row.get("source") not in _LEFT_TO_THE_STEP:
                wanted.setdefault(row.get("source"), set()).add(_text(ref))
        if not wanted:
            continue
        found = _lookup(conn, target, workspace_id, wanted)
        if not found:
            continue
        columns.append(id_col)
        for row, out in zip(rows, values):
            ref = row.get(src_col)
            out.append(None if ref is None else found.get((row.get("source"), _text(ref))))
    if columns and table in LABELLED and not any(label in row for row in rows for label in LABELS):
        fields = [_FIELD[c] for c in columns]
        for out in values:
            details = {field: "crm_native" for field, id_ in zip(fields, out) if id_ is not None}
            out += [json.dumps(details), "crm_native" if details else None]  # the method: any field's, all crm
        columns += LABELS
    return columns, values if columns else []


def _text(ref: Any) -> str:
    """A reference as the text column stores it (a source may send 4711 for "4711")."""
    return ref if ref.__class__ is str else str(ref)


def _lookup(conn, target: str, workspace_id: str, wanted: dict[str, set[str]]) -> dict[tuple[str, str], Any]:
    """(source, source_id) -> id of the stored `target` rows among `wanted`, through its unique key. Deleted rows
    are left out: a reference resolves to a live row only (core.pipeline.references)."""
    cur = conn.cursor(row_factory=tuple_row)
    stmt = sql.SQL("SELECT source_id, id FROM {} WHERE workspace_id = %(workspace_id)s AND source = %(source)s"
                   " AND source_id = ANY(string_to_array(%(ids)s, E'\\x1f')) AND deleted_at IS NULL"
                   ).format(sql.Identifier(target))
    found: dict[tuple[str, str], Any] = {}
    for source, ids in wanted.items():
        for source_id, id_ in cur.execute(stmt, {"workspace_id": workspace_id, "source": source,
                                                 "ids": "\x1f".join(ids)}):
            found[(source, source_id)] = id_
    return found

"""Resolve the source's own references (`account_source_id`, `deal_source_id`, ...) to our row ids.

Connectors write what the source says ("this deal belongs to company 4711"); the write path already fills
`deals.account_id` when the company is stored by then (core.db.references), and this step resolves the rest once
both rows exist, whatever order the streams arrived in. A reference points at a row
of the same source. It is set-based (one UPDATE per reference), idempotent (only rows whose id would change
are touched) and never clears an id when the referenced row is missing. A reference resolves to a live row only:
a deleted one (soft-deleted by its source) is as good as missing, so an id the linker cleared because it pointed
at a deleted deal, contact or account (core.pipeline.linker) is not set again here, and comes back when the
row is restored (a row whose id is NULL and whose reference is not is in every incremental run's scope).
"""
from __future__ import annotations

from psycopg import sql

from core.db.references import REFERENCES
from core.pipeline import changed_since, deleted_ids, register_step

# A live target: not among the workspace's deleted ones.
_LIVE = f"t.id NOT IN ({deleted_ids('{target}')})"

_UPDATE = """
UPDATE {table} AS r SET {id_col} = t.id
  FROM {target} AS t
 WHERE r.workspace_id = %(workspace_id)s
   AND t.workspace_id = r.workspace_id
   AND t.source = r.source
   AND t.source_id = r.{src_col}
   AND r.{id_col} IS DISTINCT FROM t.id AND """ + _LIVE + """ {scope}
"""
# An incremental run resolves the rows a sync wrote since the last run, the rows whose target had not arrived
# yet (a partial index holds just those), and, where another step may have linked a row by inference meanwhile,
# the rows pointing at a target created since (found through the (workspace_id, *_source_id) indexes), instead of
# joining whole tables. (A stored target keeps its id, so only a new one can change a resolved row.)
_SCOPES = ("AND {row_changed}", "AND r.{id_col} IS NULL AND r.{src_col} IS NOT NULL")
_TARGET_CREATED = "AND {target_changed} AND t.created_at > %(since)s AND r.{src_col} IS NOT NULL"  # (indexed)
# The references other steps also fill (association inference, the linker); the rest come from the source only.
_INFERRED_TOO = frozenset({("contacts", "account_id"), ("deals", "account_id"), ("activities", "account_id"),
                           ("activities", "contact_id"), ("activities", "deal_id")})


# Exports carry the CRM's own ids ("Converted Contact ID", "Account ID"), so a file-imported row may point at a
# row another source (a Salesforce sync) stored: when no imported row has that id, a unique match in any
# source is taken.
_UPDATE_FROM_FILE = """
UPDATE {table} AS r SET {id_col} = m.id
  FROM (SELECT t.source_id, min(t.id::text)::uuid AS id FROM {target} t
         WHERE t.workspace_id = %(workspace_id)s AND """ + _LIVE + """
           AND t.source_id IN (SELECT w.{src_col} FROM {table} w WHERE w.workspace_id = %(workspace_id)s
                                  AND w.source = 'csv_import' AND w.{id_col} IS NULL
                                  AND w.{src_col} IS NOT NULL)
         GROUP BY t.source_id HAVING count(*) = 1) AS m
 WHERE r.workspace_id = %(workspace_id)s AND r.source = 'csv_import'
   AND r.{id_col} IS NULL AND r.{src_col} IS NOT NULL AND m.source_id = r.{src_col}
"""


# Two steps, which run at once: the references of contacts, deals and their stage history, which the stage and
# association steps wait for, and those of the activity-like tables, which the association inference, the
# activity linker and the scores read. Each writes its own tables and reads only the targets' keys, which neither
# writes. (On a full run over settled data the two are the whole first second and a half of the run, when the
# other core had nothing to do.)
_CORE_TABLES = frozenset({"contacts", "deals", "deal_stage_history"})


@register_step("resolve_references", order=10, cost=0.9)
def resolve_references(conn, run) -> dict[str, int]:
    return _resolve(conn, run, [r for r in REFERENCES if r[0] in _CORE_TABLES])


@register_step("resolve_activity_references", order=11, independent_of=("resolve_references",), cost=0.9)
def resolve_activity_references(conn, run) -> dict[str, int]:
    """activities, tasks, calls and leads."""
    return _resolve(conn, run, [r for r in REFERENCES if r[0] not in _CORE_TABLES])


def _resolve(conn, run, references) -> dict[str, int]:
    params = {"workspace_id": run.workspace_id, "since": run.since}
    changed: dict[str, int] = {}
    for table, id_col, src_col, target in references:
        names = {"table": sql.Identifier(table), "id_col": sql.Identifier(id_col),
                 "target": sql.Identifier(target), "src_col": sql.Identifier(src_col),
                 "row_changed": sql.SQL(changed_since(table, "r")), "target_changed": sql.SQL(changed_since(target, "t"))}
        scopes = [""] if run.since is None else [
            *_SCOPES, *([_TARGET_CREATED] if (table, id_col) in _INFERRED_TOO else [])]
        n = 0
        statements = [sql.SQL(_UPDATE).format(scope=sql.SQL(scope).format(**names), **names) for scope in scopes]
        statements.append(sql.SQL(_UPDATE_FROM_FILE).format(**names))
        for stmt in statements:
            if run.since is None:
                n += conn.execute(stmt, params).rowcount
            else:  # later steps of an incremental run must see these rows too (updated_at did not move)
                ids = _returning(conn, stmt, params)
                run.note(f"{table}.{id_col}", ids)
                n += len(ids)
        if n:
            changed[f"{table}.{id_col}"] = n
    return changed


def _returning(conn, stmt, params) -> list:
    cur = conn.execute(stmt + sql.SQL(" RETURNING r.id"), params)
    return [row["id"] if isinstance(row, dict) else row[0] for row in cur.fetchall()]


# Every linker-owned reference and the table it points at, for clearing references to deleted rows.
_ALL_REFERENCES = tuple({(t, c, target) for t, c, _, target in REFERENCES} | {
    ("conversations", "account_id", "accounts"), ("conversations", "contact_id", "contacts"),
    ("conversations", "deal_id", "deals"), ("documents", "account_id", "accounts"), ("documents", "deal_id", "deals"),
})


def clear_dangling_references(conn, workspace_id: str) -> int:
    """Null every reference whose target row no longer exists (after a rollback deleted rows). Set-based."""
    total = 0
    for table, col, target in sorted(_ALL_REFERENCES):
        stmt = sql.SQL(
            "UPDATE {table} r SET {col} = NULL WHERE r.workspace_id = %(workspace_id)s AND r.{col} IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.workspace_id = r.workspace_id AND t.id = r.{col})"
        ).format(table=sql.Identifier(table), col=sql.Identifier(col), target=sql.Identifier(target))
        total += conn.execute(stmt, {"workspace_id": workspace_id}).rowcount
    return total

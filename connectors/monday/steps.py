"""Post-sync step: link monday.com tasks to the deals they name (registered with core.pipeline; a no-op without
monday tasks).

A task names its deal either by CRM record — `deal_source_id` with `custom_fields.deal_crm` 'hubspot' or
'salesforce', read from a deal URL or id — or by name (`custom_fields.deal_name`). The CRM record wins when that
deal is synced and live (a deal the CRM deleted is no deal: the name decides); otherwise a name links when
exactly one live deal has it (case-insensitive, trimmed); an ambiguous or unknown name links nothing.
`resolve_references` cannot do this: it only follows references within one source, and these point from monday
into a CRM.

A subitem that names no deal of its own (no deal column value, no CRM link) belongs to its parent item's deal
(`custom_fields.parent_item`): it takes the parent task's `deal_id`, after the parents were linked, and follows it
(none when the parent is not stored). monday tasks get `deal_id` from this step only, so it owns the column for
them: a task whose deal reference was removed or no longer resolves is unlinked. Two set-based statements (the
tasks naming a deal, then the subitems inheriting one), idempotent (only rows whose deal_id would change are
written). An incremental run looks at tasks a sync wrote, tasks still waiting for their deal, and tasks whose
deal — or a deal with the name they give — changed since the last run; the inheriting subitems are few and all
read each time.
"""
from __future__ import annotations

from core.pipeline import register_step

# A subitem naming no deal of its own.
_INHERITS = ("t.custom_fields ? 'parent_item' AND t.deal_source_id IS NULL"
             " AND NOT t.custom_fields ? 'deal_name'")

_LINK = """
WITH changed_deals AS (
    SELECT d.id, lower(btrim(d.name)) AS name FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND %(since)s::timestamptz IS NOT NULL AND d.updated_at > %(since)s
), scope AS (
    SELECT t.id, t.deal_source_id, t.custom_fields->>'deal_crm' AS crm,
           lower(btrim(t.custom_fields->>'deal_name')) AS deal_name
      FROM tasks t
     WHERE t.workspace_id = %(workspace_id)s AND t.source = 'monday' AND NOT ({inherits})
       AND (%(since)s::timestamptz IS NULL OR t.updated_at > %(since)s
            OR (t.deal_id IS NULL AND (t.deal_source_id IS NOT NULL OR t.custom_fields ? 'deal_name'))
            OR t.deal_id IN (SELECT id FROM changed_deals)
            OR lower(btrim(t.custom_fields->>'deal_name')) IN (SELECT name FROM changed_deals))
), by_crm AS (
    SELECT s.id AS task_id, min(d.id::text)::uuid AS deal_id
      FROM scope s
      JOIN deals d ON d.workspace_id = %(workspace_id)s AND d.source = s.crm AND d.source_id = s.deal_source_id
       AND d.deleted_at IS NULL
     GROUP BY s.id
), by_name AS (
    SELECT s.id AS task_id, min(d.id::text)::uuid AS deal_id, count(*) AS n
      FROM scope s
      JOIN deals d ON d.workspace_id = %(workspace_id)s AND lower(btrim(d.name)) = s.deal_name
       AND d.deleted_at IS NULL
     WHERE s.deal_name <> ''
     GROUP BY s.id
), want AS (
    SELECT s.id AS task_id, COALESCE(c.deal_id, CASE WHEN n.n = 1 THEN n.deal_id END) AS deal_id
      FROM scope s
      LEFT JOIN by_crm c ON c.task_id = s.id
      LEFT JOIN by_name n ON n.task_id = s.id
)
UPDATE tasks t SET deal_id = w.deal_id
  FROM want w
 WHERE t.workspace_id = %(workspace_id)s AND t.id = w.task_id AND t.deal_id IS DISTINCT FROM w.deal_id
RETURNING t.id, (w.deal_id IS NULL) AS unlinked
""".replace("{inherits}", _INHERITS)

# Every such subitem of the workspace, set-based (a few thousand rows at most: no incremental scope needed).
_INHERIT = """
UPDATE tasks s SET deal_id = w.deal_id
  FROM (SELECT t.id, p.deal_id FROM tasks t
          LEFT JOIN tasks p ON p.workspace_id = t.workspace_id AND p.source = 'monday'
                           AND p.source_id = t.custom_fields->>'parent_item'
         WHERE t.workspace_id = %(workspace_id)s AND t.source = 'monday' AND {inherits}) AS w
 WHERE s.workspace_id = %(workspace_id)s AND s.id = w.id AND s.deal_id IS DISTINCT FROM w.deal_id
RETURNING s.id, (w.deal_id IS NULL) AS unlinked
""".replace("{inherits}", _INHERITS)


# Writes tasks' deal_id from deals' names and ids: no core step reads tasks or writes those columns of deals.
@register_step("monday_task_deals", order=12,
               independent_of=("salesforce_contact_roles", "associations", "stage_normalization", "internal_filter",
                               "contact_scope"))
def link_task_deals(conn, run) -> dict[str, int]:
    written = conn.execute(_LINK, run.params).fetchall()
    written += conn.execute(_INHERIT, run.params).fetchall()  # after the parents: they may just have moved
    run.note("tasks.deal_id", [r["id"] for r in written])
    unlinked = sum(1 for r in written if r["unlinked"])
    return {k: v for k, v in {"tasks.deal_id": len(written) - unlinked, "tasks.deal_id_cleared": unlinked}.items() if v}

"""Stage normalization step: apply the workspace's `stage_mappings` to deals and their stage history.

Connectors and the importer already write `stage_normalized` from the same mappings; this step makes a
mapping the user changes later (`pandora stages set`) take effect on rows already stored. Only rows whose
value would change are touched (idempotent); rows with no mapping keep what their writer decided.
"""
from __future__ import annotations

from core.pipeline import register_step

_APPLY = """
UPDATE {table} t SET stage_normalized = m.stage_normalized
  FROM stage_mappings m
 WHERE t.workspace_id = %(workspace_id)s AND m.workspace_id = t.workspace_id
   AND m.source = t.source AND m.raw_stage = t.stage
   AND t.stage_normalized IS DISTINCT FROM m.stage_normalized
"""


@register_step("stage_normalization", order=5)
def normalize_stages(conn, run) -> dict[str, int]:
    workspace_id = run.workspace_id
    changed = {}
    for table in ("deals", "deal_stage_history"):
        n = conn.execute(_APPLY.format(table=table), {"workspace_id": workspace_id}).rowcount
        if n:
            changed[table] = n
    return changed

"""Stage normalization step: every deal's raw `stage` → one of the universal stages in `stage_normalized`.

How a stage is decided, strongest first:
1. closed flags the source sent with the deal: Salesforce `IsWon` / `IsClosed`, HubSpot `hs_is_closed_won` /
   `hs_is_closed` (a won deal is closed_won, a closed one closed_lost, whatever its stage is called);
2. the workspace's `stage_mappings` row for (source, raw stage) — the user's own (`pandora stages set`), or
3. one this step adds for a stage it has not met before: the source's default map (Salesforce standard stages,
   HubSpot default pipeline ids and labels), another CRM's default map, then keywords and the stage's typical
   probability (`core.stages.normalize_stage`). For HubSpot custom pipelines, whose stage ids are numbers, the
   label and closed/won flags stored by the connector in `connections.metadata.deal_stages` are used.
Only distinct (source, stage) values are classified in Python (a handful per workspace); rows are updated by
one set-based UPDATE per table, touching only rows whose value changes (idempotent). Guessed mappings are
stored with origin 'inferred' so the user can see and change them with `pandora stages list|set`.
"""
from __future__ import annotations


from core.pipeline import changed_since, register_step
from core.stages import normalize_stage

_UNMAPPED = """
SELECT d.source, d.stage, avg(d.probability) AS probability,
       bool_or(COALESCE(d.source_data->>'IsWon', d.source_data->'properties'->>'hs_is_closed_won') = 'true') AS any_won,
       count(*) AS n
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.stage IS NOT NULL
   AND (%(since)s::timestamptz IS NULL OR d.updated_at > %(since)s)
   AND NOT EXISTS (SELECT 1 FROM stage_mappings m WHERE m.workspace_id = d.workspace_id
                      AND m.source = d.source AND m.raw_stage = d.stage)
 GROUP BY d.source, d.stage
"""

_STAGE_METADATA = """
SELECT connector_name AS source, metadata->'deal_stages' AS stages FROM connections
 WHERE workspace_id = %(workspace_id)s AND metadata ? 'deal_stages'
"""

_INSERT_MAPPING = """
INSERT INTO stage_mappings (workspace_id, source, raw_stage, stage_normalized, origin, confidence)
VALUES (%(workspace_id)s, %(source)s, %(raw)s, %(stage)s, %(origin)s, %(confidence)s)
ON CONFLICT (workspace_id, source, raw_stage) DO NOTHING
"""

# Closed flags beat any mapping; otherwise the mapping decides. Rows with no mapping keep their value.
_APPLY = """
UPDATE deals d SET stage_normalized = v.stage
  FROM (SELECT d2.id, d2.stage_normalized AS was,
               CASE WHEN COALESCE(d2.source_data->>'IsWon', d2.source_data->'properties'->>'hs_is_closed_won') = 'true'
                         THEN 'closed_won'
                    WHEN COALESCE(d2.source_data->>'IsClosed', d2.source_data->'properties'->>'hs_is_closed') = 'true'
                         THEN 'closed_lost'
                    ELSE m.stage_normalized END AS stage
          FROM deals d2
          LEFT JOIN stage_mappings m ON m.workspace_id = d2.workspace_id AND m.source = d2.source AND m.raw_stage = d2.stage
         WHERE d2.workspace_id = %(workspace_id)s {deals_scope}) v
 WHERE d.workspace_id = %(workspace_id)s AND d.id = v.id AND v.stage IS NOT NULL
   AND d.stage_normalized IS DISTINCT FROM v.stage
"""


def _written_or_remapped(table: str, alias: str) -> str:
    """Incremental scope: rows of `table` a sync wrote since, and rows whose stage mapping changed since, each
    through an index (an OR of the two over the join reads every row of the workspace twice). A mapping this
    step added (for a stage first met: 'default' or 'inferred') is news only after the previous complete run
    (`own_since`, `changed_since`), which applied it already; a user's remap (`pandora stages set`) since that
    run's start. (An import or a sync adding one for a stage first met also wrote the deals that have it.)
    The ids as an array, each one probe of the primary key: as `IN (SELECT …)` the planner priced the remapped
    branch at a tenth of the table and hashed the ids against a scan of every history row (98 ms against ~2 for
    the 500 rows of a 1 % sync)."""
    return f"""AND {alias}.id = ANY(ARRAY(
                          SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND {changed_since(table)}
                          UNION
                          SELECT x.id FROM stage_mappings mx
                            JOIN {table} x ON x.workspace_id = mx.workspace_id AND x.source = mx.source
                                          AND x.stage = mx.raw_stage
                           WHERE mx.workspace_id = %(workspace_id)s AND {changed_since('stage_mappings', 'mx')}))"""


# A deal is open unless closed_won / closed_lost (NULL: open), as everywhere in the pipeline.
_OPEN = "COALESCE({} NOT IN ('closed_won', 'closed_lost'), true)"

_APPLY_HISTORY = """
UPDATE deal_stage_history h SET stage_normalized = m.stage_normalized
  FROM stage_mappings m
 WHERE h.workspace_id = %(workspace_id)s AND m.workspace_id = h.workspace_id
   AND m.source = h.source AND m.raw_stage = h.stage
   AND h.stage_normalized IS DISTINCT FROM m.stage_normalized {history_scope}
"""


def _metadata_label(stages_meta: dict, raw: str) -> tuple[str, bool | None, bool | None, float | None]:
    info = (stages_meta or {}).get(raw)
    if not isinstance(info, dict):
        return raw, None, None, None
    prob = info.get("probability")
    return (info.get("label") or raw, info.get("closed"), info.get("won"),
            float(prob) * 100 if isinstance(prob, (int, float)) and prob <= 1 else prob)


# After the references (both write deals and deal_stage_history rows, so they do not run at once: two UPDATEs
# over the same rows in different orders can deadlock) and beside the association inference (account links,
# named deals), which neither reads a normalized stage nor writes anything this step reads: on a first sync the
# two run at once (a few seconds each over a million contacts) instead of one after the other.
@register_step("stage_normalization", order=22, independent_of=("associations", "resolve_activity_references"),
               cost=1.7)
def normalize_stages(conn, run) -> dict[str, int]:
    params = run.params
    meta = {r["source"]: r["stages"] for r in conn.execute(_STAGE_METADATA, params).fetchall()}
    added = 0
    for row in conn.execute(_UNMAPPED, params).fetchall():
        label, closed, won, prob = _metadata_label(meta.get(row["source"]), row["stage"])
        prob = prob if prob is not None else (float(row["probability"]) if row["probability"] is not None else None)
        stage, confidence, reason = normalize_stage(label, row["source"], {}, probability=prob,
                                                    is_closed=closed, is_won=won)
        origin = "default" if confidence >= 0.85 else "inferred"
        added += conn.execute(_INSERT_MAPPING, {**params, "source": row["source"], "raw": row["stage"],
                                                "stage": stage, "origin": origin, "confidence": confidence}).rowcount
    changed = {"stage_mappings": added}
    if run.since is None:
        changed["deals"] = conn.execute(_APPLY.format(deals_scope=""), params).rowcount
        changed["deal_stage_history"] = conn.execute(_APPLY_HISTORY.format(history_scope=""), params).rowcount
    else:  # a remapped stage moves deals no sync touched: the later steps of this run must look at them
        apply = _APPLY.format(deals_scope=_written_or_remapped("deals", "d2"))
        apply_history = _APPLY_HISTORY.format(history_scope=_written_or_remapped("deal_stage_history", "h"))
        moved = conn.execute(apply + f" RETURNING d.id, {_OPEN.format('v.was')} IS DISTINCT FROM {_OPEN.format('v.stage')}"
                             " AS flipped", params).fetchall()
        deals = [r["id"] for r in moved]
        history = [r["id"] for r in conn.execute(apply_history + " RETURNING h.id", params).fetchall()]
        run.note("deals.stage_normalized", deals)
        run.note("deals.open", [r["id"] for r in moved if r["flipped"]])  # opened or closed (contacts' engagement)
        run.note("deal_stage_history.stage_normalized", history)
        changed["deals"], changed["deal_stage_history"] = len(deals), len(history)
    return {k: v for k, v in changed.items() if v}

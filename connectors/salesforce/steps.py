"""Post-sync steps for Salesforce data (registered with core.pipeline; each a no-op without Salesforce rows).

- `salesforce_stage_mappings` (before stage normalization): a stage no default map knows (a custom stage with
  no telling word) is mapped from the deals' ForecastCategoryName as the original did — Omitted → awareness,
  Pipeline → qualification, Best Case → evaluation, Commit → decision — instead of a keyword/probability guess.
  Closed/won flags and the Salesforce default stages still come from `core.stages.normalize_stage`.
- `salesforce_merges` (before resolve_references): a record deleted by a merge (its `MasterRecordId` names the
  winner) hands every reference we hold to it — our resolved ids and the stored Salesforce ids of rows not
  re-synced yet (ConvertedAccountId is not rewritten by a merge) — and its deal_contacts move to the winner.
- `salesforce_contact_roles` (after resolve_references): deal_contacts mirror the OpportunityContactRoles stored
  with each opportunity (source 'salesforce_contact_role', role_source 'crm_contact_role', role, is_primary);
  roles removed in Salesforce are removed here. Links from other sources are never touched.
Every statement is set-based and idempotent.
"""
from __future__ import annotations

from psycopg import sql

from core.pipeline import register_step
from core.pipeline.references import REFERENCES
from core.stages import normalize_stage

_FORECAST_STAGE = {"omitted": "awareness", "pipeline": "qualification", "best case": "evaluation",
                   "commit": "decision"}

# Open deals only: a stage's own closed/won flags come from the org's OpportunityStage list (`deal_stages` in the
# connection metadata), never from deals that happen to be closed in it.
_UNMAPPED = """
SELECT d.stage, avg(d.probability) AS probability,
       mode() WITHIN GROUP (ORDER BY d.source_data->>'ForecastCategoryName') AS category
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.source = 'salesforce' AND d.stage IS NOT NULL
   AND COALESCE(d.source_data->>'IsClosed', 'false') <> 'true'
   AND (%(since)s::timestamptz IS NULL OR d.updated_at > %(since)s)
   AND NOT EXISTS (SELECT 1 FROM stage_mappings m WHERE m.workspace_id = d.workspace_id
                      AND m.source = d.source AND m.raw_stage = d.stage)
 GROUP BY d.stage
"""
_STAGES = """
SELECT metadata->'deal_stages' AS stages FROM connections
 WHERE workspace_id = %(workspace_id)s AND connector_name = 'salesforce'
"""
_INSERT_MAPPING = """
INSERT INTO stage_mappings (workspace_id, source, raw_stage, stage_normalized, origin, confidence)
VALUES (%(workspace_id)s, 'salesforce', %(raw)s, %(stage)s, 'inferred', 0.75)
ON CONFLICT (workspace_id, source, raw_stage) DO NOTHING
"""


# Reads deals' raw stages and writes stage mappings, which only stage normalization reads: every step before that
# one may run beside it (the internal filter, a core step of the first minutes of a large first run, above all).
@register_step("salesforce_stage_mappings", order=4,
               independent_of=("salesforce_merges", "resolve_references", "resolve_activity_references",
                               "monday_task_deals", "salesforce_contact_roles", "associations", "internal_filter"))
def map_stages(conn, run) -> dict[str, int]:
    """Only stages the forecast category decides get a mapping here; the rest is the stage step's."""
    found = conn.execute(_STAGES, run.params).fetchone()
    known = (found["stages"] if found else None) or {}
    added = 0
    for row in conn.execute(_UNMAPPED, run.params).fetchall():
        info = known.get(row["stage"]) if isinstance(known.get(row["stage"]), dict) else {}
        if info.get("closed"):
            continue
        _, confidence, _ = normalize_stage(info.get("label") or row["stage"], "salesforce", {},
                                           probability=row["probability"], is_closed=info.get("closed"))
        by_category = _FORECAST_STAGE.get(str(info.get("forecast_category") or row["category"] or "").casefold())
        if confidence < 0.85 and by_category:  # no known stage name decided it: a keyword or probability guess
            added += conn.execute(_INSERT_MAPPING, {**run.params, "raw": row["stage"], "stage": by_category}).rowcount
    return {"stage_mappings": added} if added else {}


_LOSERS = """
SELECT l.id AS loser_id, l.source_id AS loser_sid, w.id AS winner_id, w.source_id AS winner_sid
  FROM {target} l
  JOIN {target} w ON w.workspace_id = l.workspace_id AND w.source = l.source
   AND w.source_id = l.source_data->>'MasterRecordId'
 WHERE l.workspace_id = %(workspace_id)s AND l.source = 'salesforce' AND l.deleted_at IS NOT NULL
   AND l.source_data->>'MasterRecordId' IS NOT NULL
   AND (%(since)s::timestamptz IS NULL OR l.updated_at > %(since)s)
"""
_MOVE_ID = "WITH m AS ({losers}) UPDATE {table} r SET {col} = m.winner_id FROM m" \
           " WHERE r.workspace_id = %(workspace_id)s AND r.{col} = m.loser_id"
_MOVE_SOURCE_ID = "WITH m AS ({losers}) UPDATE {table} r SET {col} = m.winner_sid FROM m" \
                  " WHERE r.workspace_id = %(workspace_id)s AND r.source = 'salesforce' AND r.{col} = m.loser_sid"
# A pair the winner already has from the same source would collide: the loser's copy goes.
_MOVE_DEAL_CONTACTS = """
WITH m AS ({losers}),
dropped AS (
    DELETE FROM deal_contacts dc USING m
     WHERE dc.workspace_id = %(workspace_id)s AND dc.contact_id = m.loser_id
       AND EXISTS (SELECT 1 FROM deal_contacts x WHERE x.workspace_id = dc.workspace_id AND x.deal_id = dc.deal_id
                      AND x.contact_id = m.winner_id AND x.source = dc.source)
    RETURNING dc.id)
UPDATE deal_contacts dc SET contact_id = m.winner_id, updated_at = now() FROM m
 WHERE dc.workspace_id = %(workspace_id)s AND dc.contact_id = m.loser_id
   AND dc.id NOT IN (SELECT id FROM dropped)
"""
_OTHER_REFERENCES = (("conversations", "account_id", None, "accounts"), ("conversations", "contact_id", None, "contacts"),
                     ("documents", "account_id", None, "accounts"))


@register_step("salesforce_merges", order=8)
def follow_merges(conn, run) -> dict[str, int]:
    changed: dict[str, int] = {}
    for target in ("accounts", "contacts"):
        losers = sql.SQL(_LOSERS).format(target=sql.Identifier(target))
        for table, col, src_col, ref_target in (*REFERENCES, *_OTHER_REFERENCES):
            if ref_target != target:
                continue
            for template, column in ((_MOVE_ID, col), (_MOVE_SOURCE_ID, src_col)):
                if column is None:
                    continue
                stmt = sql.SQL(template).format(losers=losers, table=sql.Identifier(table), col=sql.Identifier(column))
                if count := conn.execute(stmt, run.params).rowcount:
                    changed[f"{table}.{column}"] = changed.get(f"{table}.{column}", 0) + count
        if target == "contacts":
            moved = conn.execute(sql.SQL(_MOVE_DEAL_CONTACTS).format(losers=losers), run.params).rowcount
            if moved:
                changed["deal_contacts.contact_id"] = moved
    return changed


_ROLES = """
SELECT d.id AS deal_id, c.id AS contact_id,
       string_agg(DISTINCT e->>'Role', ', ') AS role, bool_or(e->>'IsPrimary' = 'true') AS is_primary
  FROM deals d
 CROSS JOIN LATERAL jsonb_array_elements(
       CASE WHEN jsonb_typeof(d.source_data->'OpportunityContactRoles'->'records') = 'array'
            THEN d.source_data->'OpportunityContactRoles'->'records' ELSE '[]'::jsonb END) AS e
  JOIN contacts c ON c.workspace_id = d.workspace_id AND c.source = 'salesforce'
   AND c.source_id = e->>'ContactId' AND c.deleted_at IS NULL
 WHERE d.workspace_id = %(workspace_id)s AND d.source = 'salesforce' AND d.deleted_at IS NULL
   AND d.id IN (SELECT id FROM scope)
 GROUP BY d.id, c.id
"""
# Incremental runs look at deals a sync wrote and deals whose role contacts a sync wrote.
_SCOPE = """
scope AS (
    SELECT d.id FROM deals d WHERE d.workspace_id = %(workspace_id)s AND d.source = 'salesforce'
       AND (%(since)s::timestamptz IS NULL OR d.updated_at > %(since)s
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(
                           d.source_data->'OpportunityContactRoles'->'records') = 'array'
                           THEN d.source_data->'OpportunityContactRoles'->'records' ELSE '[]'::jsonb END) e
                         JOIN contacts c ON c.workspace_id = d.workspace_id AND c.source = 'salesforce'
                          AND c.source_id = e->>'ContactId'
                        WHERE c.updated_at > %(since)s)))
"""
_UPSERT_ROLES = f"""
WITH {_SCOPE}, roles AS ({_ROLES})
INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role, role_source, is_primary)
SELECT %(workspace_id)s, deal_id, contact_id, 'salesforce_contact_role', role, 'crm_contact_role', is_primary
  FROM roles
ON CONFLICT (workspace_id, deal_id, contact_id, source) DO UPDATE
   SET role = EXCLUDED.role, is_primary = EXCLUDED.is_primary, updated_at = now()
 WHERE (deal_contacts.role, deal_contacts.is_primary) IS DISTINCT FROM (EXCLUDED.role, EXCLUDED.is_primary)
"""
_DROP_REMOVED = f"""
WITH {_SCOPE}, roles AS ({_ROLES})
DELETE FROM deal_contacts dc
 WHERE dc.workspace_id = %(workspace_id)s AND dc.source = 'salesforce_contact_role'
   AND dc.deal_id IN (SELECT s.id FROM scope s JOIN deals d ON d.workspace_id = %(workspace_id)s AND d.id = s.id
                       WHERE d.deleted_at IS NULL)
   AND NOT EXISTS (SELECT 1 FROM roles r WHERE r.deal_id = dc.deal_id AND r.contact_id = dc.contact_id)
"""


# Writes its own deal contacts from deals' stored roles and contacts' Salesforce ids, neither of which the stage
# step or the internal filter writes or reads; contact_scope reads conversations and contacts' e-mails only.
@register_step("salesforce_contact_roles", order=15,
               independent_of=("stage_normalization", "internal_filter", "contact_scope"))
def mirror_contact_roles(conn, run) -> dict[str, int]:
    changed = {"deal_contacts.salesforce_contact_role": conn.execute(_UPSERT_ROLES, run.params).rowcount,
               "deal_contacts.salesforce_role_removed": conn.execute(_DROP_REMOVED, run.params).rowcount}
    return {k: v for k, v in changed.items() if v}

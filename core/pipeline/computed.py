"""Computed fields: activity dates and 0-100 scores on deals, contacts and accounts (post-sync steps 59-63, last).

One set-based `UPDATE … FROM (CTEs)` per table, each its own step: computed_deals and computed_contacts (which
read none of each other's values, so they run at once), then computed_accounts (which reads what both wrote;
an incremental run does most of it in computed_accounts_of_deals, beside computed_contacts: see the steps).
It writes only last_activity_at, days_in_stage, velocity_score, deal_risk, deal_risk_factors, health_score and
engagement_score, only on rows whose values change (`IS DISTINCT FROM`), and never sets `updated_at` (that marks
source changes): a second run at the same as_of changes nothing.

Conventions. "Now" is `as_of`; rows dated after it are ignored; "in the last N days" is the N × 24 h before it;
days are floored; close dates compare with as_of's UTC date. Deleted rows (deleted_at) are neither written nor
counted. Knobs come from the context layer (defaults as in core/context.py; a missing, non-numeric or
non-positive value falls back to the default): stale = thresholds.stale_deal_days (14), critical =
max(thresholds.critical_stale_days (30), stale), min_contacts = thresholds.min_contacts_per_deal (2),
cycle = business_model.sales_cycle_days (90), avg_deal = business_model.acv_range.avg (50,000), weights =
definitions.activity_weights by activity_type (meeting 10, call 5, email 2, note 1, task 1; any other type
its own entry, else `other`, else 1).
A touch is an activity, a call, or a conversation that is not internal (is_internal NULL counts as external).

Deals. Open = stage_normalized NULL or not closed_won/closed_lost (the original's threading code also treated
NULL as open). A deal's touches are those with its deal_id; its engaged contacts are the distinct contacts of
deal_contacts and of its touches that are not deleted (a CRM association or a call keeps naming a contact deleted
since until a sync drops or re-points it: a deleted person is no thread).
- last_activity_at = latest touch; idle = days since it. age = days since source_created_at (else created_at).
- days_in_stage = days since stage_entered_at, else the latest deal_stage_history entry into the current
  stage_normalized, else source_created_at, else created_at (0 if that lies after as_of).
- p = probability (0-100), else the stage's default probability (core.stages), else unknown (no points).
- velocity_score = 12.5 × min(amount / avg_deal, 2) [no or negative amount: 0] + 25 × p / 100
  + 10 × min(cycle / max(age, 1), 2) + freshness (days_in_stage ≤ 7: 10, ≤ 14: 7, ≤ 30: 4, else 1)
  + close proximity (days to close 1–30: 20, 31–60: 12, ≤ 0: 2, later or no close date: 5); 0–100.
  Adapted: the original gave 25 per average deal and 15 per (cycle / age), summed to 135 and clamped, so any
  large young deal read 100; those two terms are halved / cut to 10 here so that the maximum is exactly 100 and
  the score still ranks. The original read probability 0 as 50 (BUG): 0 is 0 here.
- deal_risk = min(100, Σ points); deal_risk_factors = [{factor, points, detail}] of the factors that apply,
  in this order:
    no_activity 15 (no touch ever) | critically_stale 30 (idle ≥ critical) | stale 20 (idle ≥ stale);
    past_close_date 25 (close date before today) | closing_soon 10 (close date today … today + 6);
    single_threaded 15 (fewer than min_contacts engaged contacts);
    stage_regression 10 (in the stage history ordered by entered_at, an entry in the last 90 days into an
      earlier open stage than the entry before it);
    long_cycle 15 (age > cycle);
    long_in_stage 20 (days_in_stage > 50 % of cycle) | 10 (> 25 %), halved when idle ≤ 7;
    low_probability 15 (p < 20) | 5 (p < 40);
    thin_activity 10 (fewer than 3 touches in total).
  The original's close_date_suspect (timeline words in recent calls) is not implemented: no transcripts here.
- health_score = clamp(100 − deal_risk + modifier, 0, 100). The original's modifier came from call keywords;
  ours from engagement: +10 an external conversation in the last 14 days; +5 three or more touches in the last
  30 days; −10 three or more outbound activities in the last 30 days and nothing back in that window (no
  inbound activity or call, no conversation).
- Closed deals keep last_activity_at (a fact) and are not scored: days_in_stage, velocity_score, deal_risk and
  health_score are NULL, deal_risk_factors []. Their outcome is history, not health: averages of deal health
  then see live deals only (account health uses wins separately), and closed deals are not rewritten daily.

Contacts. Their touches: activities and calls with their contact_id, and conversations linked to them by
contact_id or listing their email among the participants not marked internal (core.pipeline.participants: case
and the spaces around either ignored, as for the linker; read from the participant_emails lookup table, which
holds exactly those); a conversation counts once per contact.
- last_activity_at = latest touch.
- engagement_score = recency (idle < 7: 30, < 14: 20, < 30: 10, else 0) + volume min(40, Σ weights of the
  touches in the last 90 days: activities by type, calls as `call`, conversations as `meeting`) + 5 per channel
  used in the last 90 days (email, call, meeting; max 15) + 15 when on an open deal (deal_contacts).
  NULL when never touched and on no open deal: nothing to score (so the many never-engaged contacts of a large
  CRM are never written); a contact losing its last touch and open deal goes back to NULL.

Accounts. last_activity_at = latest of the touches with its account_id and the last_activity_at of its
contacts and deals.
- health_score = recency (as for contacts, max 30) + pipeline 0.3 × the average health_score of its open deals
  (15 when it has none; max 30) + wins (any closed_won deal 20, no closed deal 10, only losses 0) + coverage by
  contacts touched in the last 90 days (none 0, 1: 10, 2: 15, 3 or more: 20). NULL when it has no deals, no
  touched contacts and no touches of its own.

Incremental runs (`run.since` set) recompute only what a change can affect: rows a sync or import wrote since
(`core.pipeline.changed_since`: a contact only for a change of what the pipeline reads of it, not a new title); the
deals, contacts and accounts of activities and calls updated, created or linked since, and of conversations
created, moved in time or deleted (`conversations.timing_changed_at`, migration 0018), relinked or reclassified
since (a new title or participant moves no deal or account score); the contacts who joined or left a conversation
since the last run saw it, or are on one created, moved or deleted since (`seen_participants`, migration 0018;
found by the contact_scope step while the first steps run), and the participants of conversations relinked or
reclassified since; the deals of stage history and deal_contacts rows changed since, and the deals whose
deal_contacts or calls name a contact whose e-mail, account or deletion changed since (one deleted or restored
counts no more, or again); the contacts of deal_contacts rows changed since and of deals that opened, closed or
were deleted (the only deal change an engagement score reads: `deals.open_changed_at`, or noted by this run's stage
step); the accounts of deals a sync wrote or a step re-pointed or re-staged, of contacts whose e-mail, account or
deletion changed, and of the deals and contacts whose last activity (deals: or health) the deals and contacts
statements moved (they return them). Those rows come out exactly as a full run at the same as_of would write them
(an account reads the stored health of its unaffected deals). Time-based values (idle, days in stage, age, the
windows) drift daily without any change, and a touch that moved away from a deal, contact or account rescores that
one too (the ids it left: `left_deal_id` …, migration 0021, kept by a trigger whoever moves it). A hard delete,
like a value another step changes without touching updated_at (a new stage mapping), is not seen: a full run
refreshes all of these, and the daily scheduled sync does one.

Performance: each source table is scanned once per statement; deals aggregate their touches per (deal,
contact) and then per deal (distinct contacts without a sort); per-deal measures are materialized once before
the scoring expressions; window starts are parameters, not per-row interval arithmetic; an incremental run
filters every scan by the affected ids (`= ANY`, using the (workspace_id, deal_id/account_id/contact_id)
indexes). work_mem is raised for the step's transaction so the per-deal/per-contact hash aggregates stay in
memory.
"""
from __future__ import annotations

import re
from datetime import timedelta, timezone
from decimal import Decimal
from numbers import Real
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.context import DEFAULTS, lookup
from core.pipeline import PipelineRun, changed_since, deleted_ids, register_step
from core.db.planner import planner
from core.pipeline.lookups import rows_naming
from core.pipeline.participants import email_key
from core.stages import OPEN_STAGES, default_probability

_THRESHOLDS = DEFAULTS["goals_and_targets"]["thresholds"]
_WEIGHTS = DEFAULTS["definitions"]["activity_weights"]

# Rows of this workspace that are not deleted (touches also need a date at or before as_of).
_LIVE = "workspace_id = %(workspace_id)s AND deleted_at IS NULL"
_CV_LIVE = "cv.workspace_id = %(workspace_id)s AND cv.deleted_at IS NULL"
_EXTERNAL = "is_internal IS NOT TRUE"

_DEALS = f"""
WITH touch AS (  -- every touch of a deal, and (with no date) every contact deal_contacts puts on it
    SELECT deal_id, contact_id, occurred_at AS at, direction, 'activity' AS kind FROM activities
     WHERE {_LIVE} AND deal_id IS NOT NULL AND occurred_at <= %(as_of)s /*deals:deal_id*/
    UNION ALL
    SELECT deal_id, contact_id, started_at, NULL, 'conversation' FROM conversations
     WHERE {_LIVE} AND deal_id IS NOT NULL AND {_EXTERNAL} AND started_at <= %(as_of)s /*deals:deal_id*/
    UNION ALL
    SELECT deal_id, contact_id, occurred_at, direction, 'call' FROM calls
     WHERE {_LIVE} AND deal_id IS NOT NULL AND occurred_at <= %(as_of)s /*deals:deal_id*/
    UNION ALL
    SELECT deal_id, contact_id, NULL, NULL, NULL FROM deal_contacts
     WHERE workspace_id = %(workspace_id)s /*deals:deal_id*/
), by_contact AS (  -- two-level aggregation: distinct contacts per deal without a sort
    SELECT deal_id, contact_id, max(at) AS last_at, count(at) AS n,
           count(*) FILTER (WHERE at > %(days_30)s) AS n30,
           count(*) FILTER (WHERE kind = 'conversation' AND at > %(days_14)s) AS meetings14,
           count(*) FILTER (WHERE kind = 'activity' AND direction = 'outbound'
                              AND at > %(days_30)s) AS out30,
           count(*) FILTER (WHERE (kind = 'conversation' OR direction = 'inbound')
                              AND at > %(days_30)s) AS back30
      FROM touch GROUP BY deal_id, contact_id
), agg AS (
    SELECT deal_id, max(last_at) AS last_at, sum(n) AS n, sum(n30) AS n30, sum(meetings14) AS meetings14,
           sum(out30) AS out30, sum(back30) AS back30,
           count(contact_id) FILTER (WHERE contact_id NOT IN ({deleted_ids("contacts")})) AS contacts
      FROM by_contact GROUP BY deal_id
), hist AS (
    SELECT deal_id, stage_normalized, entered_at,
           lag(stage_normalized) OVER (PARTITION BY deal_id ORDER BY entered_at, id) AS prev_stage
      FROM deal_stage_history
     WHERE {_LIVE} AND deal_id IS NOT NULL AND entered_at <= %(as_of)s /*deals:deal_id*/
), entered AS (
    SELECT deal_id, stage_normalized, max(entered_at) AS entered_at FROM hist GROUP BY deal_id, stage_normalized
), regressed AS (
    SELECT DISTINCT ON (deal_id) deal_id, prev_stage, stage_normalized, entered_at
      FROM hist
     WHERE entered_at > %(days_90)s
       AND array_position(%(open_stages)s::text[], stage_normalized)
           < array_position(%(open_stages)s::text[], prev_stage)
     ORDER BY deal_id, entered_at DESC
), m AS MATERIALIZED (  -- materialized: each measure is computed once, not in every expression using it
    SELECT d.id, d.stage_normalized AS stage, d.close_date, d.amount, d.account_id,
           d.last_activity_at AS was_last, d.health_score AS was_health,
           d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost') AS is_open,
           g.last_at, floor(date_part('epoch', %(as_of)s - g.last_at) / 86400)::int AS idle,
           GREATEST(0, floor(date_part('epoch', %(as_of)s
               - COALESCE(d.stage_entered_at, e.entered_at, d.source_created_at, d.created_at)) / 86400))::int AS dis,
           GREATEST(0, floor(date_part('epoch', %(as_of)s
               - COALESCE(d.source_created_at, d.created_at)) / 86400))::int AS age,
           d.close_date - %(today)s::date AS to_close,
           COALESCE(d.probability, (%(stage_probability)s::jsonb ->> d.stage_normalized)::numeric) AS p,
           COALESCE(g.contacts, 0) AS contacts, COALESCE(g.n, 0) AS touches, COALESCE(g.n30, 0) AS touches30,
           COALESCE(g.meetings14, 0) AS meetings14, COALESCE(g.out30 >= 3 AND g.back30 = 0, false) AS unanswered,
           r.prev_stage AS regressed_from, r.stage_normalized AS regressed_to, r.entered_at AS regressed_at
      FROM deals d
      LEFT JOIN agg g ON g.deal_id = d.id
      LEFT JOIN entered e ON e.deal_id = d.id AND e.stage_normalized = d.stage_normalized
      LEFT JOIN regressed r ON r.deal_id = d.id
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL /*deals:d.id*/
), pts AS MATERIALIZED (
    SELECT m.*,
           CASE WHEN last_at IS NULL THEN 15 WHEN idle >= %(critical)s THEN 30 WHEN idle >= %(stale)s THEN 20
                ELSE 0 END AS p_stale,
           CASE WHEN to_close < 0 THEN 25 WHEN to_close < 7 THEN 10 ELSE 0 END AS p_close,
           CASE WHEN contacts < %(min_contacts)s THEN 15 ELSE 0 END AS p_thread,
           CASE WHEN regressed_at IS NOT NULL THEN 10 ELSE 0 END AS p_regress,
           CASE WHEN age > %(cycle)s THEN 15 ELSE 0 END AS p_cycle,
           CASE WHEN dis > 0.5 * %(cycle)s THEN 20 WHEN dis > 0.25 * %(cycle)s THEN 10 ELSE 0 END
               / CASE WHEN idle <= 7 THEN 2 ELSE 1 END AS p_stage,
           CASE WHEN p < 20 THEN 15 WHEN p < 40 THEN 5 ELSE 0 END AS p_prob,
           CASE WHEN touches < 3 THEN 10 ELSE 0 END AS p_thin
      FROM m
), calc AS (
    SELECT id, last_at, account_id, was_last, was_health,
           CASE WHEN is_open THEN dis END AS days_in_stage,
           CASE WHEN is_open THEN round(
               12.5 * LEAST(GREATEST(COALESCE(amount, 0), 0) / %(avg_deal)s, 2)
               + 25 * COALESCE(p, 0) / 100
               + 10 * LEAST(%(cycle)s::numeric / GREATEST(age, 1), 2)
               + CASE WHEN dis <= 7 THEN 10 WHEN dis <= 14 THEN 7 WHEN dis <= 30 THEN 4 ELSE 1 END
               + CASE WHEN to_close BETWEEN 1 AND 30 THEN 20 WHEN to_close BETWEEN 31 AND 60 THEN 12
                      WHEN to_close <= 0 THEN 2 ELSE 5 END, 2) END AS velocity,
           CASE WHEN is_open THEN LEAST(100, p_stale + p_close + p_thread + p_regress + p_cycle + p_stage + p_prob
                                             + p_thin) END AS risk,
           CASE WHEN is_open THEN to_jsonb(array_remove(ARRAY[
               CASE p_stale WHEN 15 THEN jsonb_build_object('factor', 'no_activity', 'points', 15,
                        'detail', 'no activity recorded on this deal')
                    WHEN 30 THEN jsonb_build_object('factor', 'critically_stale', 'points', 30,
                        'detail', 'no activity for ' || idle || ' days (critical at ' || %(critical)s || ')')
                    WHEN 20 THEN jsonb_build_object('factor', 'stale', 'points', 20,
                        'detail', 'no activity for ' || idle || ' days (stale at ' || %(stale)s || ')') END,
               CASE p_close WHEN 25 THEN jsonb_build_object('factor', 'past_close_date', 'points', 25,
                        'detail', 'close date ' || to_char(close_date, 'YYYY-MM-DD') || ' passed '
                                  || -to_close || ' days ago')
                    WHEN 10 THEN jsonb_build_object('factor', 'closing_soon', 'points', 10,
                        'detail', 'closes in ' || to_close || ' days ('
                                  || to_char(close_date, 'YYYY-MM-DD') || ')') END,
               CASE WHEN p_thread > 0 THEN jsonb_build_object('factor', 'single_threaded', 'points', p_thread,
                        'detail', contacts || ' engaged contact(s), fewer than ' || %(min_contacts)s) END,
               CASE WHEN p_regress > 0 THEN jsonb_build_object('factor', 'stage_regression', 'points', p_regress,
                        'detail', 'moved back from ' || regressed_from || ' to ' || regressed_to || ' on '
                                  || to_char(regressed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')) END,
               CASE WHEN p_cycle > 0 THEN jsonb_build_object('factor', 'long_cycle', 'points', p_cycle,
                        'detail', 'open ' || age || ' days; the sales cycle is ' || %(cycle)s || ' days') END,
               CASE WHEN p_stage > 0 THEN jsonb_build_object('factor', 'long_in_stage', 'points', p_stage,
                        'detail', dis || ' days in ' || COALESCE(stage, 'its stage') || ', over '
                                  || CASE WHEN dis > 0.5 * %(cycle)s THEN '50' ELSE '25' END
                                  || '%% of the ' || %(cycle)s || '-day cycle'
                                  || CASE WHEN idle <= 7 THEN ' (halved: active ' || idle || ' days ago)' ELSE '' END)
                    END,
               CASE WHEN p_prob > 0 THEN jsonb_build_object('factor', 'low_probability', 'points', p_prob,
                        'detail', 'probability ' || trim_scale(p) || '%% (below '
                                  || CASE WHEN p < 20 THEN '20' ELSE '40' END || '%%)') END,
               CASE WHEN p_thin > 0 THEN jsonb_build_object('factor', 'thin_activity', 'points', p_thin,
                        'detail', touches || ' activities in total, fewer than 3') END
           ]::jsonb[], NULL)) ELSE '[]'::jsonb END AS factors,
           CASE WHEN is_open THEN GREATEST(0, LEAST(100,
               100 - LEAST(100, p_stale + p_close + p_thread + p_regress + p_cycle + p_stage + p_prob + p_thin)
               + CASE WHEN meetings14 > 0 THEN 10 ELSE 0 END + CASE WHEN touches30 >= 3 THEN 5 ELSE 0 END
               - CASE WHEN unanswered THEN 10 ELSE 0 END)) END AS health
      FROM pts
)
UPDATE deals d
   SET last_activity_at = c.last_at, days_in_stage = c.days_in_stage, velocity_score = c.velocity,
       deal_risk = c.risk, deal_risk_factors = c.factors, health_score = c.health
  FROM calc c
 WHERE d.workspace_id = %(workspace_id)s AND d.id = c.id /*deals:d.id*/
   AND (d.last_activity_at, d.days_in_stage, d.velocity_score, d.deal_risk, d.deal_risk_factors, d.health_score)
       IS DISTINCT FROM (c.last_at, c.days_in_stage, c.velocity, c.risk, c.factors, c.health)
"""

# The contacts a conversation lists by e-mail: read from its participants (for a few conversations: no index
# leads from a conversation to its participant_emails rows)...
_PARTICIPANTS = f"""
    CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(cv.participants) WHEN 'array'
                                            THEN cv.participants ELSE '[]'::jsonb END) AS pa(v)
    JOIN contacts ct ON ct.workspace_id = %(workspace_id)s AND lower(ct.email) = {email_key("pa.v ->> 'email'")}
                    AND ct.deleted_at IS NULL
"""
# ... and, among its participants not marked internal, from participant_emails (the reverse lookup table, kept by
# triggers under the one rule of core.pipeline.participants, migrations 0024, 0028; its key leads from a contact's
# e-mail to the conversations). Over a whole workspace one join of that narrow table instead of unnesting every
# participants array: 1.5 s against 2.4 s on the bench workspace.
_LISTING = """
    JOIN participant_emails pe ON pe.workspace_id = %(workspace_id)s AND pe.entity = 'conversations' AND pe.row_id = cv.id
    JOIN contacts ct ON ct.workspace_id = %(workspace_id)s AND lower(ct.email) = pe.email AND ct.deleted_at IS NULL
"""

# Each contact whose values change, with the values `held` read (was_*), into an ANALYZEd temp table, so the UPDATE
# below is planned on their real number: none or a few (a full run over settled data, an incremental one) are
# reached by key, a first run's half million by one pass over contacts (by key: 1.4 s of its 7 on the bench).
_CONTACT_VALUES = f"""
CREATE TEMP TABLE _contact_values ON COMMIT DROP AS
WITH conv_people AS (  -- (contact, conversation) once, whether linked by contact_id or by a participant's email
    SELECT cv.contact_id, cv.id, cv.started_at FROM conversations cv
     WHERE {_CV_LIVE} AND cv.contact_id IS NOT NULL AND cv.{_EXTERNAL} AND cv.started_at <= %(as_of)s
           /*contacts:cv.contact_id*/
    UNION
    SELECT ct.id, cv.id, cv.started_at FROM conversations cv {_LISTING}
     WHERE {_CV_LIVE} AND cv.{_EXTERNAL} AND cv.started_at <= %(as_of)s /*contacts:ct.id*/ /*emails*/
), touch AS (  -- every touch, by kind: the activity type, call (calls rows) or meeting (conversations)
    SELECT contact_id, lower(activity_type) AS kind, occurred_at AS at FROM activities
     WHERE {_LIVE} AND contact_id IS NOT NULL AND occurred_at <= %(as_of)s /*contacts:contact_id*/
    UNION ALL
    SELECT contact_id, 'call', occurred_at FROM calls
     WHERE {_LIVE} AND contact_id IS NOT NULL AND occurred_at <= %(as_of)s /*contacts:contact_id*/
    UNION ALL
    SELECT contact_id, 'meeting', started_at FROM conv_people
), agg AS (
    SELECT contact_id, max(at) AS last_at,
           sum(CASE kind WHEN 'email' THEN %(w_email)s WHEN 'call' THEN %(w_call)s WHEN 'meeting' THEN %(w_meeting)s
                         ELSE COALESCE((%(weights)s::jsonb ->> kind)::float8, %(w_other)s) END)
               FILTER (WHERE at > %(days_90)s) AS volume,
           bit_count(bit_or(CASE kind WHEN 'email' THEN 1 WHEN 'call' THEN 2 WHEN 'meeting' THEN 4 ELSE 0 END::bit(3))
               FILTER (WHERE at > %(days_90)s)) AS channels
      FROM touch GROUP BY contact_id
), on_open AS (
    SELECT DISTINCT dc.contact_id FROM deal_contacts dc
      JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id AND d.deleted_at IS NULL
     WHERE dc.workspace_id = %(workspace_id)s
       AND (d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))
           /*contacts:dc.contact_id*/
), held AS (  -- contacts holding values: one that lost every touch is reset to NULL
    SELECT id, last_activity_at, engagement_score FROM contacts
     WHERE workspace_id = %(workspace_id)s AND (engagement_score IS NOT NULL OR last_activity_at IS NOT NULL)
           /*contacts:id*/
), scored AS (
    SELECT COALESCE(g.contact_id, o.contact_id, h.id) AS id, g.last_at, h.last_activity_at AS was_last,
           h.engagement_score AS was_score,
           CASE WHEN g.last_at IS NOT NULL OR o.contact_id IS NOT NULL THEN round(
               CASE WHEN g.last_at > %(days_7)s THEN 30
                    WHEN g.last_at > %(days_14)s THEN 20
                    WHEN g.last_at > %(days_30)s THEN 10 ELSE 0 END
               + LEAST(40, COALESCE(g.volume, 0))::numeric + 5 * COALESCE(g.channels, 0)
               + CASE WHEN o.contact_id IS NOT NULL THEN 15 ELSE 0 END, 2) END AS score
      FROM agg g
      FULL JOIN on_open o ON o.contact_id = g.contact_id
      FULL JOIN held h ON h.id = COALESCE(g.contact_id, o.contact_id)
)
SELECT * FROM scored WHERE (was_last, was_score) IS DISTINCT FROM (last_at, score)
"""
_CONTACTS = """
UPDATE contacts c SET last_activity_at = calc.last_at, engagement_score = calc.score
  FROM _contact_values calc
 WHERE c.workspace_id = %(workspace_id)s AND c.id = calc.id AND c.deleted_at IS NULL /*contacts:c.id*/
   AND (c.last_activity_at, c.engagement_score) IS DISTINCT FROM (calc.last_at, calc.score)
"""

_ACCOUNTS = f"""
WITH own AS (
    SELECT account_id, max(at) AS last_at FROM (
        SELECT account_id, occurred_at AS at FROM activities
         WHERE {_LIVE} AND account_id IS NOT NULL AND occurred_at <= %(as_of)s /*accounts:account_id*/
        UNION ALL
        SELECT account_id, started_at FROM conversations
         WHERE {_LIVE} AND account_id IS NOT NULL AND {_EXTERNAL} AND started_at <= %(as_of)s
               /*accounts:account_id*/
        UNION ALL
        SELECT account_id, occurred_at FROM calls
         WHERE {_LIVE} AND account_id IS NOT NULL AND occurred_at <= %(as_of)s /*accounts:account_id*/
    ) t GROUP BY account_id
), ct AS (
    SELECT account_id, max(last_activity_at) AS last_at,
           count(*) FILTER (WHERE last_activity_at > %(days_90)s) AS engaged
      FROM contacts
     WHERE {_LIVE} AND account_id IS NOT NULL AND last_activity_at IS NOT NULL /*accounts:account_id*/
     GROUP BY account_id
), dl AS (
    SELECT account_id, max(last_activity_at) AS last_at,
           avg(health_score) FILTER (WHERE stage_normalized IS NULL
                                        OR stage_normalized NOT IN ('closed_won', 'closed_lost')) AS open_health,
           count(*) FILTER (WHERE stage_normalized = 'closed_won') AS won,
           count(*) FILTER (WHERE stage_normalized = 'closed_lost') AS lost
      FROM deals
     WHERE {_LIVE} AND account_id IS NOT NULL /*accounts:account_id*/
     GROUP BY account_id
), m AS (
    SELECT a.id, own.account_id IS NOT NULL OR ct.account_id IS NOT NULL OR dl.account_id IS NOT NULL AS known,
           GREATEST(own.last_at, ct.last_at, dl.last_at) AS last_at,
           floor(date_part('epoch', %(as_of)s - GREATEST(own.last_at, ct.last_at, dl.last_at)) / 86400)::int AS idle,
           dl.open_health, COALESCE(dl.won, 0) AS won, COALESCE(dl.lost, 0) AS lost, COALESCE(ct.engaged, 0) AS engaged
      FROM accounts a
      LEFT JOIN own ON own.account_id = a.id
      LEFT JOIN ct ON ct.account_id = a.id
      LEFT JOIN dl ON dl.account_id = a.id
     WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL /*accounts:a.id*/
), calc AS (
    SELECT id, last_at,
           CASE WHEN known THEN round(
               CASE WHEN idle < 7 THEN 30 WHEN idle < 14 THEN 20 WHEN idle < 30 THEN 10 ELSE 0 END
               + COALESCE(0.3 * open_health, 15)
               + CASE WHEN won > 0 THEN 20 WHEN lost = 0 THEN 10 ELSE 0 END
               + CASE WHEN engaged >= 3 THEN 20 WHEN engaged = 2 THEN 15 WHEN engaged = 1 THEN 10 ELSE 0 END, 2)
           END AS score
      FROM m
)
UPDATE accounts a SET last_activity_at = calc.last_at, health_score = calc.score
  FROM calc
 WHERE a.workspace_id = %(workspace_id)s AND a.id = calc.id /*accounts:a.id*/
   AND (a.last_activity_at, a.health_score) IS DISTINCT FROM (calc.last_at, calc.score)
"""

# What computed_deals and computed_contacts return in an incremental run: per row written, its account and
# whether a value the account's own score reads moved (a deal's last activity or health, a contact's last activity).
_MOVED = {"deals": " RETURNING c.account_id, (c.was_last, c.was_health) IS DISTINCT FROM (c.last_at, c.health) AS moved",
          "contacts": " RETURNING c.account_id, calc.was_last IS DISTINCT FROM calc.last_at AS moved"}


def _changed(table: str, *also: str) -> str:
    """This workspace's rows of `table` written since the previous run (`changed_since`) or, `also`, that a later
    run than the previous complete one linked (`own_since`). An insert sets updated_at too, so new rows are found
    through the (workspace_id, updated_at) index."""
    return "workspace_id = %(workspace_id)s AND (" + " OR ".join(
        [changed_since(table)] + [f"{col} > %(own_since)s" for col in also]) + ")"


# A touch's deal, contact and account now, and those it last moved away from (migration 0021): both rescore.
_NOW_AND_LEFT = """CROSS JOIN LATERAL (VALUES (x.deal_id, x.contact_id, x.account_id),
                                          (x.left_deal_id, x.left_contact_id, x.left_account_id))
                           AS v(deal_id, contact_id, account_id)"""

# What an incremental run must recompute (see the module docstring); each source table is scanned once.
_AFFECTED = f"""
WITH act AS MATERIALIZED (
    SELECT v.* FROM activities x {_NOW_AND_LEFT} WHERE {_changed('activities', 'linked_at')}
    UNION ALL  -- activities whose ids earlier steps of this run set (resolve_references, associations)
    SELECT v.* FROM activities x {_NOW_AND_LEFT}
     WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_activities)s::uuid[])
), conv AS MATERIALIZED (  -- created, moved in time or deleted (migration 0018), relinked or reclassified since:
    -- a new title or participant changes no deal or account score (new participants: the contact_scope step)
    SELECT deal_id, contact_id, account_id FROM conversations
     WHERE workspace_id = %(workspace_id)s AND COALESCE(timing_changed_at, created_at) > %(since)s
    UNION ALL
    SELECT v.* FROM conversations x {_NOW_AND_LEFT}
     WHERE workspace_id = %(workspace_id)s AND linked_at > %(own_since)s
    UNION ALL
    SELECT v.* FROM conversations x {_NOW_AND_LEFT}
     WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_internal)s::uuid[])
), cl AS MATERIALIZED (
    SELECT v.* FROM calls x {_NOW_AND_LEFT} WHERE {_changed('calls')}
), moved AS MATERIALIZED (  -- contacts whose e-mail, account, references or deletion a sync changed since
    SELECT id, account_id FROM contacts WHERE {_changed('contacts')} AND links_changed_at > %(since)s
), d AS (
    SELECT id FROM deals WHERE {_changed('deals')}
    UNION SELECT deal_id FROM act UNION SELECT deal_id FROM conv UNION SELECT deal_id FROM cl
    -- a contact deleted or restored since counts on its deals no more, or again (its CRM associations and
    -- calls keep naming it; the linker re-decides the activities and conversations, found above)
    UNION SELECT deal_id FROM deal_contacts
           WHERE workspace_id = %(workspace_id)s AND contact_id IN (SELECT id FROM moved)
    UNION SELECT deal_id FROM calls WHERE workspace_id = %(workspace_id)s AND contact_id IN (SELECT id FROM moved)
    UNION SELECT deal_id FROM deal_stage_history WHERE {_changed('deal_stage_history')}
    UNION SELECT deal_id FROM deal_contacts WHERE {_changed('deal_contacts')}
    UNION SELECT deal_id FROM deal_stage_history
           WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_history)s::uuid[])
    UNION SELECT unnest(%(noted_deals)s::uuid[])
), c AS (
    SELECT id FROM contacts WHERE {_changed('contacts')}
    UNION SELECT contact_id FROM act UNION SELECT contact_id FROM conv UNION SELECT contact_id FROM cl
    UNION SELECT unnest(%(participants)s::uuid[])  -- joined or left since: the contact_scope step's
    UNION SELECT ct.id FROM conversations cv {_PARTICIPANTS}  -- of those relinked or reclassified by this run
           WHERE cv.workspace_id = %(workspace_id)s
             AND (cv.linked_at > %(own_since)s OR cv.id = ANY(%(noted_internal)s::uuid[]))
    UNION SELECT unnest(%(noted_contacts)s::uuid[])
    -- "on an open deal" moves for the contacts of deals that opened, closed or were deleted (by a sync or
    -- import: open_changed_at, migration 0017; by this run's stage step: noted), not of every affected deal
    UNION SELECT contact_id FROM deal_contacts WHERE {_changed('deal_contacts')}
    UNION SELECT contact_id FROM deal_contacts  -- (an OR of the two would read every link)
           WHERE workspace_id = %(workspace_id)s
             AND deal_id IN (SELECT id FROM deals WHERE {_changed('deals')} AND open_changed_at > %(since)s
                             UNION SELECT unnest(%(noted_open)s::uuid[]))
), a AS (
    SELECT id FROM accounts WHERE {_changed('accounts')}
    UNION SELECT account_id FROM act UNION SELECT account_id FROM conv UNION SELECT account_id FROM cl
    -- An account reads its deals' stage, account, deletion, last activity and health: the deals a sync wrote
    -- or a step re-pointed or re-staged; those whose last activity or health the deals statement moves it
    -- adds itself (computed_deals notes them). Likewise its contacts' last activity (computed_contacts notes
    -- those accounts): here only contacts whose account may have changed, not new ones (no activity yet).
    UNION SELECT account_id FROM deals WHERE {_changed('deals')}
    UNION SELECT left_account_id FROM deals  -- the account a deal moved away from (migration 0018)
           WHERE {_changed('deals')} AND links_changed_at > %(since)s
    UNION SELECT account_id FROM deals WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_deal_facts)s::uuid[])
    UNION SELECT account_id FROM moved
    UNION SELECT account_id FROM contacts WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_contacts)s::uuid[])
)
"""
# What each step selects (a WITH query nothing reads is not run). computed_deals also finds the accounts (they
# read its deals' scope) and notes them for computed_accounts, which then runs no query of its own to scope.
_AFFECTED_IDS = {
    "deals": _AFFECTED + "SELECT ARRAY(SELECT id FROM d WHERE id IS NOT NULL) AS ids,"
                         " ARRAY(SELECT id FROM a WHERE id IS NOT NULL) AS accounts",
    "contacts": _AFFECTED + "SELECT ARRAY(SELECT id FROM c WHERE id IS NOT NULL) AS ids",
}

# Also on each UPDATE's target: the same ids as an index condition, so the rows to write are looked up by id
# rather than hashed from a scan of the whole table (the planner cannot tell calc is small).
_SCOPE = re.compile(r"/\*(deals|contacts|accounts):([\w.]+)\*/")


# The conversations that list an affected contact's e-mail (found in participant_emails: core.pipeline.lookups).
_EMAILS = "AND cv.id = ANY(%(email_conversations)s::uuid[])"


# Up to this many e-mails, the conversations listing them are looked up by key (core.pipeline.lookups); past it,
# one pass over every conversation's participants (0.26 s on 200k conversations, growing with the workspace, not
# with the change). The limit was measured for the GIN index the key replaced (16,000 e-mails: 0.18 s); the key
# search takes 0.09 s for 20,000 and 0.23 s for 60,000 there, so it is now conservative: left where it was.
EMAIL_LOOKUP_MAX = 20_000


def _scoped(statement: str, incremental: bool, by_email: bool = False) -> str:
    """Turn the /*entity:column*/ markers into `AND column = ANY(the affected ids)` for an incremental run."""
    if not incremental:
        return statement.replace("/*emails*/", "")
    return _SCOPE.sub(lambda m: f"AND {m.group(2)} = ANY(%({m.group(1)})s::uuid[])", statement).replace(
        "/*emails*/", _EMAILS if by_email else "")


def _number(value: Any, default: int) -> Decimal:
    """A positive number from the context layer, else the default (booleans and text are not numbers); Decimal,
    so the SQL stays in numeric (round(…, 2) has no float8 form) and prints 14, not 14.0, in factor details."""
    if isinstance(value, Real) and not isinstance(value, bool) and value > 0:
        return Decimal(str(value)).normalize() if not isinstance(value, int) else Decimal(value)
    return Decimal(default)


def _weight(value: Any, default: int) -> Decimal:
    """An activity weight: a positive number or 0 (the type does not count), else the default."""
    return Decimal(0) if value == 0 and not isinstance(value, bool) else _number(value, default)


def knobs(context: dict[str, Any]) -> dict[str, Any]:
    """The named parameters the formulas read, from the context layer with core.context defaults."""
    thresholds = "goals_and_targets.thresholds."
    stale = _number(lookup(context, thresholds + "stale_deal_days"), _THRESHOLDS["stale_deal_days"])
    critical = _number(lookup(context, thresholds + "critical_stale_days"), _THRESHOLDS["critical_stale_days"])
    weights = lookup(context, "definitions.activity_weights", {})
    if not isinstance(weights, dict):
        weights = {}
    weights = {**_WEIGHTS, **{str(k).lower(): v for k, v in weights.items()}}
    weights = {k: _weight(v, _WEIGHTS.get(k, 1)) for k, v in weights.items()}
    return {
        "stale": stale,
        "critical": max(critical, stale),
        "min_contacts": _number(lookup(context, thresholds + "min_contacts_per_deal"),
                                _THRESHOLDS["min_contacts_per_deal"]),
        "cycle": _number(lookup(context, "business_model.sales_cycle_days"),
                         DEFAULTS["business_model"]["sales_cycle_days"]),
        "avg_deal": _number(lookup(context, "business_model.acv_range.avg"),
                            DEFAULTS["business_model"]["acv_range"]["avg"]),
        "weights": Jsonb({k: float(v) for k, v in weights.items()}),
        **{f"w_{kind}": float(weights.get(kind, 1)) for kind in ("email", "call", "meeting", "other")},
        "open_stages": list(OPEN_STAGES),
        "stage_probability": Jsonb({s: default_probability(s) for s in OPEN_STAGES}),
    }


def parameters(run: PipelineRun) -> dict[str, Any]:
    """Every named parameter of the statements: the run's, the knobs, and as_of's UTC date and window starts
    (N × 24 h before as_of, computed once here rather than per row in SQL)."""
    as_of = run.as_of.astimezone(timezone.utc)
    return {**run.params, **knobs(run.context), "today": as_of.date(),
            **{f"days_{n}": as_of - timedelta(days=n) for n in (7, 14, 30, 90)}}


_STATEMENTS = {"deals": _DEALS, "contacts": _CONTACTS, "accounts": _ACCOUNTS}


# The accounts an incremental run rescores, by what put them in scope: computed_deals notes those a change
# reaches ("affected") and those whose deals' values it moved; computed_contacts those whose contacts' last
# activity it moved.
_ACCOUNTS_OF_DEALS = ("accounts.affected", "accounts.deals_moved")
_ACCOUNTS_OF_CONTACTS = ("accounts.contacts_moved",)


def _affected(conn, run: PipelineRun, params: dict[str, Any], table: str,
              accounts: tuple[str, ...] = _ACCOUNTS_OF_DEALS + _ACCOUNTS_OF_CONTACTS) -> list:
    """The ids of `table` an incremental run recomputes (see the module docstring); accounts: those noted under
    `accounts`."""
    if table == "accounts":
        return run.noted(*accounts)
    noted = {"participants": run.noted("contacts.participant"), "noted_internal": run.noted("conversations.is_internal"),
             "noted_activities": run.noted("activities.account_id", "activities.contact_id", "activities.deal_id"),
             "noted_history": run.noted("deal_stage_history.deal_id", "deal_stage_history.stage_normalized"),
             "noted_deals": run.noted("deals.account_id", "deal_contacts.deal_id", "deals.stage_normalized"),
             "noted_deal_facts": run.noted("deals.account_id", "deals.stage_normalized"),
             "noted_contacts": run.noted("contacts.account_id", "deal_contacts.contact_id"),
             "noted_open": run.noted("deals.open")}
    row = conn.cursor(row_factory=dict_row).execute(_AFFECTED_IDS[table], {**params, **noted}).fetchone()
    if table == "deals":
        run.note("accounts.affected", row["accounts"])
    return row["ids"]


def _compute(conn, run: PipelineRun, table: str, **scope) -> dict[str, int]:
    """One table's statement; an incremental run first finds which of its rows to recompute."""
    params = parameters(run)
    incremental = run.since is not None
    by_email = False
    if incremental:
        params[table] = _affected(conn, run, params, table, **scope)
        if not params[table]:
            return {}
        if table == "contacts":
            # Conversations listing an affected contact's e-mail, looked up by key up to EMAIL_LOOKUP_MAX
            # addresses; past that one pass over the participants (the /*emails*/ marker left empty) is faster.
            # The contact_scope step looked up the participants' already; here the other contacts'.
            searched = set(run.noted("emails.searched"))  # empty: the participants' were too many to look up
            others = sorted(set(params[table]) - set(run.noted("contacts.participant") if searched else ()), key=str)
            emails = [e for e in conn.execute(
                "SELECT ARRAY(SELECT DISTINCT lower(email) FROM contacts WHERE workspace_id = %(workspace_id)s"
                " AND id = ANY(%(others)s::uuid[]) AND email IS NOT NULL) AS emails",
                {**params, "others": others}).fetchone()["emails"] if e not in searched]
            if len(searched) + len(emails) <= EMAIL_LOOKUP_MAX:
                params["email_conversations"] = run.noted("conversations.naming_searched") + rows_naming(
                    conn, "conversations", "emails", run.workspace_id, emails)
                by_email = True
    with conn.transaction():  # SET LOCAL and the temp table need one, even on an autocommit connection
        conn.execute("SET LOCAL work_mem = '64MB'")  # the per-deal/contact aggregates hash in memory, not on disk
        if table == "contacts":
            # The planner cannot count JSON array elements (it assumes 100 a conversation) and looks up every
            # participant's e-mail in the contacts index, one probe each (2 s for 500k participants); over the
            # whole workspace one hash join of the two is twice as fast.
            with planner(conn, **({} if incremental else {"enable_nestloop": "off"})):
                conn.execute(_scoped(_CONTACT_VALUES, incremental, by_email), params)
            conn.execute("ANALYZE _contact_values")
        statement = _scoped(_STATEMENTS[table], incremental, by_email)
        if incremental and table in ("deals", "contacts"):  # and the accounts whose rows' values it reads moved
            moved = conn.execute(statement + _MOVED[table], params).fetchall()
            run.note(f"accounts.{table}_moved", [r["account_id"] for r in moved if r["moved"]])
            n = len(moved)
        else:
            n = conn.execute(statement, params).rowcount
        if table == "contacts":
            conn.execute("DROP TABLE _contact_values")  # compute_fields may run the steps on one connection
    return {table: n} if n else {}


# The contacts an incremental run rescores because a conversation written since names them, and the
# conversations naming those contacts (the lookups, a third of computed_contacts' time on a 1 % sync): both
# read only what syncs write (participants, contacts' e-mails), so this runs while the first steps do, off the
# path to computed_contacts, which then looks up only the other contacts it rescores. Everyone on a conversation
# created, moved in time or deleted since; on one whose participants changed, those whose presence varied
# across the lists it had since the last run saw it and the current one (`seen_participants`, migration 0018):
# not everyone on a rescheduled invite.
_REACHED = f"""
WITH cv AS MATERIALIZED (
    SELECT id, CASE jsonb_typeof(participants) WHEN 'array' THEN participants ELSE '[]'::jsonb END AS now_on,
           CASE jsonb_typeof(seen_participants) WHEN 'array' THEN seen_participants END AS seen,
           COALESCE(timing_changed_at, created_at) > %(since)s AS everyone
      FROM conversations WHERE workspace_id = %(workspace_id)s AND {changed_since('conversations')}
), lists AS (  -- the lists seen since the last run, then the current one, numbered
    SELECT cv.id, l.k, l.list, jsonb_array_length(cv.seen) + 1 AS n
      FROM cv CROSS JOIN LATERAL jsonb_array_elements(cv.seen || jsonb_build_array(cv.now_on)) WITH ORDINALITY AS l(list, k)
     WHERE cv.seen IS NOT NULL AND NOT cv.everyone
), varied AS (  -- on some of those lists but not all: joined or left
    SELECT {email_key("e.v ->> 'email'")} AS email
      FROM lists CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(lists.list) WHEN 'array' THEN lists.list
                                                         ELSE '[]'::jsonb END) AS e(v)
     GROUP BY lists.id, {email_key("e.v ->> 'email'")}, lists.n
    HAVING count(DISTINCT lists.k) < lists.n
), moved AS (
    SELECT {email_key("e.v ->> 'email'")} AS email FROM cv CROSS JOIN LATERAL jsonb_array_elements(cv.now_on) AS e(v)
     WHERE cv.everyone
    UNION SELECT email FROM varied
)
SELECT DISTINCT ct.id, lower(ct.email) AS email
  FROM moved m
  JOIN contacts ct ON ct.workspace_id = %(workspace_id)s AND lower(ct.email) = m.email AND ct.deleted_at IS NULL
"""


# It reads none of what the steps before it write, so it runs whenever a slot is free (from the start of the
# run); of the steps after it only computed_contacts (and, through it, computed_accounts) waits for it.
@register_step("contact_scope", order=59, independent_of=("stage_normalization", "resolve_references",
                                                          "resolve_activity_references", "associations",
                                                          "internal_filter", "linker", "linker_activities",
                                                          "single_deal_inference", "cwd"), cost=0.1)
def find_contact_scope(conn, run: PipelineRun) -> dict[str, int]:
    """Incremental runs: note the contacts who joined or left a conversation written since, or are on one
    created, moved in time or deleted since ("contacts.participant"), their e-mails ("emails.searched") and the
    conversations listing those ("conversations.naming_searched", unless there are more than EMAIL_LOOKUP_MAX
    e-mails). It writes nothing."""
    if run.since is None:
        return {}
    rows = conn.execute(_REACHED, run.params).fetchall()
    emails = sorted({r["email"] for r in rows})
    run.note("contacts.participant", [r["id"] for r in rows])
    if len(emails) <= EMAIL_LOOKUP_MAX:
        run.note("emails.searched", emails)
        run.note("conversations.naming_searched", rows_naming(conn, "conversations", "emails", run.workspace_id, emails))
    return {}


# Deals and contacts read none of each other's scores and run at once; accounts read both. CWD writes only its
# own three conversation columns, which no score reads: it runs beside them. An incremental run rescores the
# accounts in two steps, so that most of that work runs beside computed_contacts instead of after it:
# computed_accounts_of_deals, once computed_deals is done, the accounts a change reaches or whose deals moved
# (reading their contacts' last activity as stored), then computed_accounts those whose contacts' last activity
# computed_contacts moved. A full run rescores every account in computed_accounts, after both.
@register_step("computed_deals", order=60, independent_of=("cwd", "contact_scope"), cost=5)
def compute_deals(conn, run: PipelineRun) -> dict[str, int]:
    return _compute(conn, run, "deals")


@register_step("computed_contacts", order=61, independent_of=("cwd", "computed_deals"), cost=7.4)
def compute_contacts(conn, run: PipelineRun) -> dict[str, int]:
    return _compute(conn, run, "contacts")


# (Nothing on a full run; on an incremental one about as long as CWD, with computed_accounts waiting on it: its
# cost ranks its chain above CWD for a workspace's first incremental runs, before they are timed.)
@register_step("computed_accounts_of_deals", order=62, independent_of=("cwd", "computed_contacts"), cost=0.5)
def compute_accounts_of_deals(conn, run: PipelineRun) -> dict[str, int]:
    if run.since is None:
        return {}
    return _compute(conn, run, "accounts", accounts=_ACCOUNTS_OF_DEALS)


@register_step("computed_accounts", order=63, independent_of=("cwd",), cost=1.4)
def compute_accounts(conn, run: PipelineRun) -> dict[str, int]:
    return _compute(conn, run, "accounts", accounts=_ACCOUNTS_OF_CONTACTS)


def compute_fields(conn, run: PipelineRun) -> dict[str, int]:
    """The steps' work in order on one connection (every account in scope at once), for callers outside the
    pipeline's scheduler."""
    find_contact_scope(conn, run)  # an incremental run's participants (nothing on a full run)
    changed: dict[str, int] = {}
    for table in ("deals", "contacts", "accounts"):
        changed.update(_compute(conn, run, table))
    return changed

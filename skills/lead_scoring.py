"""lead-scoring: a 0-100 score and an A-F grade for every open lead and contact, written to `lead_scores`.

Scope: live leads not yet converted (a converted lead lives on as its contact) and live contacts. Touches =
activities and external conversations up to today, linked by contact_id or by a participant email equal to the
lead's / contact's email. Days are UTC days against the run's pinned today.
Four pillars (the original's weights), each 0-100 = points / the maximum of the signals that apply × 100:
- fit .35 — needs the latest active icp_profile: for industry, employee band, country, revenue band (the
  contact's account, else its firmographic signal; a lead's own industry and headcount) and persona
  (`seniority:department`, the same key icp-profile writes), the profile's 0-10 weight of the record's value
  (0 for a value the profile never weighted). Only dimensions the record has a value for count.
- engagement .30 (the original's deal engagement points): last touch < 7 d 8, < 14 d 5, < 30 d 2; volume
  min(7, ⌊touches / 5⌋); channels among email / call / meeting (a conversation is a meeting) 3+ → 5, 2 → 3,
  1 → 1; active days min(5, ⌊days / 3⌋). Max 25.
- intent .25: an inbound touch 5; an `intent` account_signal on the account (a lead: the account with its
  domain) 5; a lead's rating hot 5 / warm 3; a contact on an open deal: furthest stage index / 4 × 5
  (awareness 0 … negotiation 4) and a champion / economic buyer / decision maker role 5.
- timing .10: created < 30 d ago 8, < 60 d 4; −2 per full idle week since the last touch (at most −8); a
  contact on an open deal: a close date set 3, one due within the next 180 days 4. Clamped to 0-100.
Simplifications and choices (the original scored deals with CRM fields leads don't have):
- A pillar with no data is left out and the others' weights renormalised: fit without an active profile or
  any known dimension; engagement when the workspace has no activities or conversations at all (once it has,
  a record never touched scores 0 — not knowing and not engaging differ); intent when there is nothing to go
  on (no rating, no open deal, no inbound touch, no intent signal); timing with no create date and no open
  deal. A record with no pillar at all is not scored.
- The idle-week penalty starts from the last touch only (a fresh, untouched lead isn't idle yet).
score = Σ pillar × weight / Σ weight, rounded to 2 decimals; grade A ≥ 80, B ≥ 60, C ≥ 40, D ≥ 20, else F.
WRITE: one set-based upsert — ON CONFLICT (workspace_id, entity_type, entity_id) DO UPDATE only WHERE the score,
grade, breakdown or profile changed — and scores of records now out of scope are deleted, so a re-run over
unchanged data on the same day writes nothing. SYNTHESIZE: Claude when a key is set; else a template.
"""
from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from psycopg.types.json import Jsonb

from core.pipeline.participants import email_key
from skills.icp_profile import ACCOUNT_FIRMOGRAPHICS, employee_band_sql, persona_sql, revenue_band_sql
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

PILLARS = {"fit": 0.35, "engagement": 0.30, "intent": 0.25, "timing": 0.10}
GRADES = ((80, "A"), (60, "B"), (40, "C"), (20, "D"))
FIT_DIMENSIONS = ("industry", "employee_band", "country", "revenue_band", "persona")
POWER_ROLES = ("champion", "economic_buyer", "decision_maker")
EVIDENCE_CAP = 50
_STAGE_INDEX = ("CASE d.stage_normalized WHEN 'qualification' THEN 1 WHEN 'evaluation' THEN 2 WHEN 'decision' THEN 3"
                " WHEN 'negotiation' THEN 4 ELSE 0 END")
_DAY = "(({}) AT TIME ZONE 'UTC')::date"

_FEATURES = f"""
WITH touch AS (
    SELECT 'a' || a.id::text AS touch_id, a.contact_id, a.occurred_at AS at, lower(a.activity_type) AS channel,
           lower(a.direction) AS direction, a.participants
      FROM activities a
     WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL AND {_DAY.format("a.occurred_at")} <= %(today)s
    UNION ALL
    SELECT 'c' || c.id::text, c.contact_id, c.started_at, 'meeting', NULL, c.participants
      FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL AND c.is_internal IS NOT TRUE
       AND {_DAY.format("c.started_at")} <= %(today)s
), touch_email AS (
    SELECT DISTINCT t.touch_id, {email_key("p->>'email'")} AS email
      FROM touch t
     CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(t.participants) WHEN 'array' THEN t.participants
                                                  ELSE '[]'::jsonb END) AS p
     WHERE NULLIF(btrim(p->>'email'), '') IS NOT NULL
), records AS (
    SELECT 'lead' AS entity_type, l.id AS entity_id, lower(btrim(l.email)) AS email,
           COALESCE(NULLIF(btrim(concat_ws(' ', l.first_name, l.last_name)), ''), l.email, l.company) AS label,
           lower(NULLIF(btrim(l.industry), '')) AS industry,
           lower({employee_band_sql("l.employee_count")}) AS employee_band,
           NULL::text AS country, NULL::text AS revenue_band,
           {persona_sql("NULL::text", "NULL::text", "l.title")} AS persona,
           lower(btrim(l.rating)) AS rating, {_DAY.format("l.source_created_at")} AS created_on,
           EXISTS (SELECT 1 FROM accounts a JOIN account_signals s ON s.workspace_id = a.workspace_id
                      AND s.account_id = a.id AND s.signal_type = 'intent'
                    WHERE a.workspace_id = l.workspace_id AND a.deleted_at IS NULL
                      AND lower(a.domain) = lower(l.domain)) AS intent_signal,
           false AS on_open_deal, NULL::int AS stage_index, false AS power_role, false AS close_date_set,
           false AS due_soon
      FROM leads l
     WHERE l.workspace_id = %(workspace_id)s AND l.deleted_at IS NULL AND NOT l.is_converted
    UNION ALL
    SELECT 'contact', c.id, lower(btrim(c.email)),
           COALESCE(NULLIF(btrim(concat_ws(' ', c.first_name, c.last_name)), ''), c.email),
           lower(NULLIF(f.industry, '')), lower({employee_band_sql("f.employees")}), lower(NULLIF(f.country, '')),
           lower({revenue_band_sql("f.revenue")}),
           {persona_sql("COALESCE(e.seniority, c.seniority)", "COALESCE(e.department, c.department)", "c.title")},
           NULL, {_DAY.format("c.source_created_at")},
           EXISTS (SELECT 1 FROM account_signals s WHERE s.workspace_id = c.workspace_id
                      AND s.account_id = c.account_id AND s.signal_type = 'intent'),
           od.n > 0, od.stage_index, COALESCE(od.power_role, false), COALESCE(od.close_date_set, false),
           COALESCE(od.due_soon, false)
      FROM contacts c
      LEFT JOIN ({ACCOUNT_FIRMOGRAPHICS}) f ON f.account_id = c.account_id
      LEFT JOIN LATERAL (
           SELECT max(dc.seniority) AS seniority, max(dc.department) AS department FROM deal_contacts dc
            WHERE dc.workspace_id = c.workspace_id AND dc.contact_id = c.id) e ON true
      LEFT JOIN LATERAL (
           SELECT count(*) AS n, max({_STAGE_INDEX}) AS stage_index,
                  bool_or(replace(lower(btrim(COALESCE(dc.buying_role, dc.role))), ' ', '_') = ANY(%(power)s))
                      AS power_role,
                  bool_or(d.close_date IS NOT NULL) AS close_date_set,
                  bool_or(d.close_date > %(today)s AND d.close_date <= %(today)s + 180) AS due_soon
             FROM deal_contacts dc
             JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id AND d.deleted_at IS NULL
            WHERE dc.workspace_id = c.workspace_id AND dc.contact_id = c.id
              AND COALESCE(d.stage_normalized, '') NOT IN ('closed_won', 'closed_lost')) od ON true
     WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL
), links AS (
    SELECT r.entity_type, r.entity_id, t.touch_id
      FROM records r JOIN touch t ON r.entity_type = 'contact' AND t.contact_id = r.entity_id
    UNION
    SELECT r.entity_type, r.entity_id, e.touch_id FROM records r JOIN touch_email e ON e.email = r.email
), engagement AS (
    SELECT k.entity_type, k.entity_id, count(*) AS touches, max({_DAY.format("t.at")}) AS last_touch,
           count(DISTINCT {_DAY.format("t.at")}) AS active_days,
           count(DISTINCT t.channel) FILTER (WHERE t.channel IN ('email', 'call', 'meeting')) AS channels,
           COALESCE(bool_or(t.direction = 'inbound'), false) AS inbound
      FROM links k JOIN touch t ON t.touch_id = k.touch_id
     GROUP BY k.entity_type, k.entity_id
)
SELECT r.*, COALESCE(g.touches, 0) AS touches, g.last_touch, COALESCE(g.active_days, 0) AS active_days,
       COALESCE(g.channels, 0) AS channels, COALESCE(g.inbound, false) AS inbound,
       EXISTS (SELECT 1 FROM activities WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL
               UNION ALL SELECT 1 FROM conversations WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL)
           AS engagement_source
  FROM records r LEFT JOIN engagement g ON g.entity_type = r.entity_type AND g.entity_id = r.entity_id
 ORDER BY r.entity_type, r.entity_id
"""

_PROFILE = """
SELECT id, version, weights FROM icp_profiles
 WHERE workspace_id = %(workspace_id)s AND status = 'active' ORDER BY version DESC LIMIT 1
"""

_WRITE = """
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s)
        AS r(entity_type text, entity_id uuid, score numeric, grade text, breakdown jsonb)
), stale AS (
    DELETE FROM lead_scores s
     WHERE s.workspace_id = %(workspace_id)s AND s.entity_type IN ('lead', 'contact')
       AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.entity_type = s.entity_type AND i.entity_id = s.entity_id)
    RETURNING 1
), up AS (
    INSERT INTO lead_scores AS t (workspace_id, entity_type, entity_id, score, grade, breakdown, icp_profile_id)
    SELECT %(workspace_id)s, entity_type, entity_id, score, grade, breakdown, %(profile_id)s::uuid FROM incoming
    ON CONFLICT (workspace_id, entity_type, entity_id) DO UPDATE
       SET score = EXCLUDED.score, grade = EXCLUDED.grade, breakdown = EXCLUDED.breakdown,
           icp_profile_id = EXCLUDED.icp_profile_id, scored_at = now(), updated_at = now()
     WHERE (t.score, t.grade, t.breakdown, t.icp_profile_id)
           IS DISTINCT FROM (EXCLUDED.score, EXCLUDED.grade, EXCLUDED.breakdown, EXCLUDED.icp_profile_id)
    RETURNING t.xmax = 0 AS inserted
)
SELECT (SELECT count(*) FROM up WHERE inserted) AS inserted, (SELECT count(*) FROM up WHERE NOT inserted) AS updated,
       (SELECT count(*) FROM stale) AS removed
"""


def grade(score: float) -> str:
    return next((g for floor, g in GRADES if score >= floor), "F")


def _pillar(points: dict[str, float], maximum: float) -> dict[str, Any]:
    total = sum(points.values())
    return {"score": round(max(0.0, min(100.0, total / maximum * 100)), 2), "points": points, "max": maximum}


def fit(r: dict[str, Any], weights: dict[str, Any] | None) -> dict[str, Any] | None:
    if not weights:
        return None
    tables = {**(weights.get("firmographics") or {}), "persona": weights.get("personas") or {}}
    points = {d: float(tables[d].get(r[d], 0)) for d in FIT_DIMENSIONS
              if tables.get(d) and r[d] is not None and not (d == "persona" and r[d] == "unknown:unknown")}
    return _pillar(points, 10.0 * len(points)) if points else None


def engagement(r: dict[str, Any], today: date) -> dict[str, Any] | None:
    if not r["engagement_source"]:
        return None
    days = (today - r["last_touch"]).days if r["last_touch"] else None
    recency = 0 if days is None else 8 if days < 7 else 5 if days < 14 else 2 if days < 30 else 0
    channels = {0: 0, 1: 1, 2: 3}.get(r["channels"], 5)
    return _pillar({"recency": recency, "volume": min(7, r["touches"] // 5), "channels": channels,
                    "active_days": min(5, r["active_days"] // 3)}, 25.0)


def intent(r: dict[str, Any]) -> dict[str, Any] | None:
    points: dict[str, float] = {"inbound": 5 if r["inbound"] else 0, "intent_signal": 5 if r["intent_signal"] else 0}
    if r["entity_type"] == "lead":
        points["rating"] = {"hot": 5, "warm": 3}.get(r["rating"] or "", 0)
    elif r["on_open_deal"]:
        points["stage"] = (r["stage_index"] or 0) / 4 * 5
        points["buying_role"] = 5 if r["power_role"] else 0
    if not (r["rating"] or r["on_open_deal"] or r["inbound"] or r["intent_signal"]):
        return None
    return _pillar(points, 5.0 * len(points))


def timing(r: dict[str, Any], today: date) -> dict[str, Any] | None:
    if r["created_on"] is None and not r["on_open_deal"]:
        return None
    age = (today - r["created_on"]).days if r["created_on"] else None
    idle_weeks = (today - r["last_touch"]).days // 7 if r["last_touch"] else 0
    points: dict[str, float] = {"recently_created": 0 if age is None else 8 if age < 30 else 4 if age < 60 else 0,
                                "idle_weeks": max(-8, -2 * idle_weeks)}
    maximum = 8.0
    if r["on_open_deal"]:
        points.update(close_date_set=3 if r["close_date_set"] else 0, close_within_180d=4 if r["due_soon"] else 0)
        maximum += 7
    return _pillar(points, maximum)


def score(r: dict[str, Any], weights: dict[str, Any] | None, today: date) -> dict[str, Any] | None:
    """The record's pillars, overall score, grade and breakdown; None when no pillar has data."""
    pillars = {k: p for k, p in (("fit", fit(r, weights)), ("engagement", engagement(r, today)),
                                 ("intent", intent(r)), ("timing", timing(r, today))) if p is not None}
    total = sum(PILLARS[k] for k in pillars)
    if not total:
        return None
    for k, p in pillars.items():
        p["weight"] = round(PILLARS[k] / total, 4)
    value = round(sum(p["score"] * PILLARS[k] for k, p in pillars.items()) / total, 2)
    return {"score": value, "grade": grade(value),
            "breakdown": {"pillars": pillars, "missing": [k for k in PILLARS if k not in pillars]}}


@register
class LeadScoring(Skill):
    name = "lead-scoring"
    description = "Score and grade open leads and contacts (fit to the ICP, engagement, intent, timing)"
    aliases = ("lead-scores",)

    def compute(self, ctx) -> dict[str, Any]:
        params = {"workspace_id": ctx.workspace_id, "today": ctx.today, "power": list(POWER_ROLES)}
        with ctx.conn() as conn:
            profile = conn.execute(_PROFILE, params).fetchone()
            rows = conn.execute(_FEATURES, params).fetchall()
            weights = profile["weights"] if profile else None
            scored = []
            for r in rows:
                s = score(r, weights, ctx.today)
                if s is not None:
                    scored.append({"entity_type": r["entity_type"], "entity_id": str(r["entity_id"]),
                                   "label": r["label"], **s})
            written = conn.execute(_WRITE, {
                "workspace_id": ctx.workspace_id, "profile_id": str(profile["id"]) if profile else None,
                "rows": Jsonb([{k: s[k] for k in ("entity_type", "entity_id", "score", "grade", "breakdown")}
                               for s in scored])}).fetchone()
        scored.sort(key=lambda s: (-s["score"], s["entity_type"], s["label"] or ""))
        grades = Counter(s["grade"] for s in scored)
        return {"profile": {"id": str(profile["id"]), "version": profile["version"]} if profile else None,
                "records": len(rows), "scored": scored, "unscored": len(rows) - len(scored),
                "by_type": Counter(s["entity_type"] for s in scored),
                "grades": {g: grades.get(g, 0) for g in ("A", "B", "C", "D", "F")},
                "average": sum(s["score"] for s in scored) / len(scored) if scored else None,
                "written": dict(written)}

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        scored, grades = c["scored"], c["grades"]
        profile = f"ICP profile v{c['profile']['version']}" if c["profile"] else "no ICP profile: fit left out"
        headline = f"Lead scores: {grades['A']} A and {grades['B']} B of {len(scored)} leads and contacts ({profile})"
        metrics = [Metric("scored", "Records scored", len(scored)),
                   Metric("leads", "Leads scored", c["by_type"].get("lead", 0)),
                   Metric("contacts", "Contacts scored", c["by_type"].get("contact", 0)),
                   Metric("average_score", "Average score", c["average"]),
                   *[Metric(f"grade_{g.lower()}", f"Grade {g}", n) for g, n in grades.items()],
                   Metric("written", "Scores written or changed", c["written"]["inserted"] + c["written"]["updated"])]
        table = Table("Top scores", ["Type", "Name", "Score", "Grade", "Fit", "Engagement", "Intent", "Timing"], [
            [s["entity_type"], s["label"] or "—", f"{s['score']:.0f}", s["grade"],
             *[_pillar_text(s, k) for k in PILLARS]] for s in scored[:15]])
        evidence = [Evidence(f"grade A {kind}s", f"{kind}s", ids, labels) for kind in ("lead", "contact")
                    for ids, labels in [_top(scored, kind)] if ids]
        text = ctx.synthesize(task="lead scoring summary",
                          instructions="Summarise this lead scoring run for a sales team: how many records are hot "
                                       "(A/B), who to call first and why (which pillars drive their scores). Use "
                                       "only the figures given.",
                          data={"scores": {"grades": grades, "average": c["average"], "profile": c["profile"],
                                           "top": [{k: s[k] for k in ("entity_type", "label", "score", "grade")}
                                                   for s in scored[:10]]}},
                          template=lambda: _template(c))
        notes = [] if c["profile"] else ["No active ICP profile: run icp-profile to add the fit pillar."]
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, [table], [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _pillar_text(s: dict[str, Any], key: str) -> str:
    p = s["breakdown"]["pillars"].get(key)
    return "—" if p is None else f"{p['score']:.0f}"


def _top(scored: list[dict[str, Any]], kind: str) -> tuple[list[str], list[str]]:
    top = [s for s in scored if s["entity_type"] == kind and s["grade"] == "A"][:EVIDENCE_CAP]
    return [s["entity_id"] for s in top], [s["label"] or "" for s in top]


def _template(c: dict[str, Any]) -> str:
    if not c["scored"]:
        return "Nothing to score: no open leads or contacts with data yet."
    g = c["grades"]
    lines = [f"Scored {len(c['scored'])} open leads and contacts: {g['A']} A, {g['B']} B, {g['C']} C, {g['D']} D, "
             f"{g['F']} F (average {c['average']:.0f})."]
    hot = [s for s in c["scored"] if s["grade"] == "A"][:5]
    if hot:
        lines.append("Call first: " + ", ".join(f"{s['label']} ({s['score']:.0f})" for s in hot) + ".")
    if c["unscored"]:
        lines.append(f"{c['unscored']} records had no data to score.")
    return " ".join(lines)

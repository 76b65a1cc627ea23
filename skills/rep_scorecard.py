"""rep-scorecard (alias `scorecard`): one 0-100 score per rep for the period, from six weighted components.

Period: the active quota period, else the current fiscal quarter. Reps: every owner of a (non-deleted) deal
in the workspace plus every rep with a quota in the period, minus definitions.excluded_owners. A rep is matched
by name everywhere (deals.owner, activities.owner, conversations.owner, rep quotas), the key quotas use.
COMPUTE (one SQL statement):
- won / lost = deals closed won / lost with a close date in the period; created = deals whose source create
  date (else our insert time) falls in the period; pipeline = open deals (NULL stage counts as open) with a
  close date in the period.
- win rate, narrow = won / (won + lost). Broad = won / the deals that closed (won or lost) in the period or were
  created in it (each deal once) — how much of the period's deal flow became revenue.
- activities / conversations = those the rep owns in the period up to today; internal meetings don't count.
Components and weights (the original's): attainment .30 = min(100, won $ / quota × 75); coverage .20 =
min(100, pipeline / (quota − won $) / 5 × 100); activity .15, win rate .15, pipeline generation .10 (new deals)
and conversations .10 = min(100, rep / team average × 60), win rate needing ≥ 3 closed deals.
Choices where the original was inconsistent or had no data:
- A component with no data for a rep is dropped and the other weights renormalised (the original scored a
  missing attainment or coverage as 50 while also dropping the attainment weight). No data: no quota
  (attainment, coverage); the rep has never appeared in activities / conversations (not tracked there); fewer
  than 3 closed deals (win rate); a team average of 0 (activity, pipeline generation, conversations).
- Team averages are over the reps with data only (BUG fixed: the original divided by every rep).
- Quota already met (nothing left to cover): coverage scores 100, the formula's limit.
- Conversations score on count only; we store no talk ratio, the original's second half of that component.
- Overall = Σ score × weight / Σ weight over the components present; no component → no score.
SYNTHESIZE: Claude writes the summary from the computed figures when a key is set; else a template.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.context import lookup
from core.quotas import fiscal_quarter
from skills.format import fmt, money
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

WEIGHTS = {"attainment": 0.30, "coverage": 0.20, "activity": 0.15, "win_rate": 0.15, "pipeline_generation": 0.10,
           "conversations": 0.10}
LABELS = {"attainment": "Attainment", "coverage": "Coverage", "activity": "Activity", "win_rate": "Win rate",
          "pipeline_generation": "Pipeline generation", "conversations": "Conversations"}
MIN_CLOSED = 3
EVIDENCE_CAP = 50

_SCORECARD = """
WITH reps AS (
    SELECT rep FROM (
        SELECT owner AS rep FROM deals
         WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL AND owner IS NOT NULL AND owner <> ''
        UNION
        SELECT unnest(%(quota_reps)s::text[])
    ) r
     WHERE rep <> ALL(%(excluded)s::text[])
), flagged AS (
    SELECT d.owner AS rep, d.id, d.name, d.amount,
           d.stage_normalized = 'closed_won' AND d.close_date BETWEEN %(start)s AND %(end)s AS won,
           d.stage_normalized = 'closed_lost' AND d.close_date BETWEEN %(start)s AND %(end)s AS lost,
           (COALESCE(d.source_created_at, d.created_at) AT TIME ZONE 'UTC')::date BETWEEN %(start)s AND %(end)s
               AS created,
           COALESCE(d.stage_normalized, '') NOT IN ('closed_won', 'closed_lost')
               AND d.close_date BETWEEN %(start)s AND %(end)s AS open_in_period
      FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
), by_rep AS (
    SELECT rep,
           count(*) FILTER (WHERE won) AS won, COALESCE(sum(amount) FILTER (WHERE won), 0) AS won_amount,
           count(*) FILTER (WHERE lost) AS lost,
           count(*) FILTER (WHERE created) AS created,
           COALESCE(sum(amount) FILTER (WHERE created), 0) AS created_amount,
           count(*) FILTER (WHERE won OR lost OR created) AS flow,
           COALESCE(sum(amount) FILTER (WHERE open_in_period), 0) AS pipeline,
           count(*) FILTER (WHERE open_in_period) AS open_deals,
           (array_agg(id::text ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE won))[1:%(cap)s] AS won_ids,
           (array_agg(name ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE won))[1:%(cap)s] AS won_names,
           (array_agg(id::text ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE lost))[1:%(cap)s] AS lost_ids,
           (array_agg(name ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE lost))[1:%(cap)s] AS lost_names,
           (array_agg(id::text ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE created))[1:%(cap)s] AS created_ids,
           (array_agg(name ORDER BY amount DESC NULLS LAST, id) FILTER (WHERE created))[1:%(cap)s] AS created_names
      FROM flagged GROUP BY rep
), acts AS (
    SELECT owner AS rep, count(*) FILTER (WHERE (occurred_at AT TIME ZONE 'UTC')::date
                                                 BETWEEN %(start)s AND %(until)s) AS n
      FROM activities
     WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL AND owner IS NOT NULL
     GROUP BY owner
), convs AS (
    SELECT owner AS rep, count(*) FILTER (WHERE (started_at AT TIME ZONE 'UTC')::date
                                                 BETWEEN %(start)s AND %(until)s) AS n
      FROM conversations
     WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL AND owner IS NOT NULL AND is_internal IS NOT TRUE
     GROUP BY owner
)
SELECT r.rep, COALESCE(b.won, 0) AS won, COALESCE(b.won_amount, 0) AS won_amount, COALESCE(b.lost, 0) AS lost,
       COALESCE(b.created, 0) AS created, COALESCE(b.created_amount, 0) AS created_amount,
       COALESCE(b.flow, 0) AS flow, COALESCE(b.pipeline, 0) AS pipeline, COALESCE(b.open_deals, 0) AS open_deals,
       a.n AS activities, c.n AS conversations,
       b.won_ids, b.won_names, b.lost_ids, b.lost_names, b.created_ids, b.created_names
  FROM reps r
  LEFT JOIN by_rep b ON b.rep = r.rep
  LEFT JOIN acts a ON a.rep = r.rep
  LEFT JOIN convs c ON c.rep = r.rep
 ORDER BY r.rep
"""


def _period(ctx):
    if ctx.quota.period is not None:
        return ctx.quota.period
    return fiscal_quarter(ctx.today, int(lookup(ctx.context, "business_model.fiscal_year_start_month", 1) or 1))


def _ratio(part, whole) -> float | None:
    return float(part) / float(whole) if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def components(rep: dict[str, Any], team: dict[str, float | None]) -> dict[str, float]:
    """The component scores (0-100) a rep has data for; see the module docstring."""
    out: dict[str, float] = {}
    quota = rep["quota"]
    if quota:
        out["attainment"] = min(100.0, float(rep["won_amount"]) / float(quota) * 75)
        remaining = float(quota) - float(rep["won_amount"])
        out["coverage"] = 100.0 if remaining <= 0 else min(100.0, float(rep["pipeline"]) / remaining / 5 * 100)
    for key, value in (("activity", rep["activities"]), ("win_rate", rep["win_rate"]),
                       ("pipeline_generation", rep["created"]), ("conversations", rep["conversations"])):
        avg = team[key]
        if value is not None and avg:
            out[key] = min(100.0, float(value) / avg * 60)
    return out


def overall(scores: dict[str, float]) -> tuple[float | None, dict[str, dict[str, float]]]:
    """Σ score × weight / Σ weight over the components present, and each one's renormalised weight."""
    total = sum(WEIGHTS[k] for k in scores)
    if not total:
        return None, {}
    breakdown = {k: {"score": s, "weight": WEIGHTS[k] / total, "contribution": s * WEIGHTS[k] / total}
                 for k, s in scores.items()}
    return sum(b["contribution"] for b in breakdown.values()), breakdown


@register
class RepScorecard(Skill):
    name = "rep-scorecard"
    description = "Each rep's 0-100 score: attainment, coverage, activity, win rate, pipeline generation, calls"
    aliases = ("scorecard",)
    schedule = "weekly mon 08:30"

    def compute(self, ctx) -> dict[str, Any]:
        period = _period(ctx)
        quota = ctx.quota
        rep_quotas = {k: v for k, v in (quota.rep_quotas or {}).items() if v and v > 0}
        excluded = [str(x) for x in (lookup(ctx.context, "definitions.excluded_owners", []) or [])]
        with ctx.conn() as conn:
            rows = conn.execute(_SCORECARD, {
                "workspace_id": ctx.workspace_id, "start": period.start_date, "end": period.end_date,
                "until": min(period.end_date, ctx.today), "quota_reps": list(rep_quotas), "excluded": excluded,
                "cap": EVIDENCE_CAP}).fetchall()
        reps = []
        for r in rows:
            closed = r["won"] + r["lost"]
            reps.append({**r, "quota": rep_quotas.get(r["rep"]), "closed": closed,
                         "win_rate": _ratio(r["won"], closed) if closed >= MIN_CLOSED else None,
                         "win_rate_narrow": _ratio(r["won"], closed), "win_rate_broad": _ratio(r["won"], r["flow"]),
                         "attainment": _ratio(r["won_amount"], rep_quotas.get(r["rep"])),
                         "coverage": _coverage(r, rep_quotas.get(r["rep"]))})
        team = {"activity": _mean([float(r["activities"]) for r in reps if r["activities"] is not None]),
                "win_rate": _mean([r["win_rate"] for r in reps if r["win_rate"] is not None]),
                "pipeline_generation": _mean([float(r["created"]) for r in reps]),
                "conversations": _mean([float(r["conversations"]) for r in reps if r["conversations"] is not None])}
        for rep in reps:
            rep["components"] = components(rep, team)
            rep["score"], rep["breakdown"] = overall(rep["components"])
        reps.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["rep"]))
        won = sum(r["won"] for r in reps)
        lost = sum(r["lost"] for r in reps)
        won_amount = sum((Decimal(r["won_amount"]) for r in reps), Decimal(0))
        return {
            "period": {"name": period.name, "start": period.start_date, "end": period.end_date},
            "quota_source": quota.source, "quota_hint": quota.hint, "team_quota": quota.team_quota,
            "reps": reps, "team_averages": team, "weights": WEIGHTS,
            "team": {"won": won, "lost": lost, "won_amount": won_amount,
                     "win_rate_narrow": _ratio(won, won + lost),
                     "win_rate_broad": _ratio(won, sum(r["flow"] for r in reps)),
                     "attainment": _ratio(won_amount, quota.team_quota),
                     "created": sum(r["created"] for r in reps)},
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        reps, team = c["reps"], c["team"]
        scored = [r for r in reps if r["score"] is not None]
        headline = f"{c['period']['name']} rep scorecard: " + (
            f"{scored[0]['rep']} leads at {scored[0]['score']:.0f}; team win rate {_pct(team['win_rate_narrow'])}"
            f" (broad {_pct(team['win_rate_broad'])})" if scored else "no rep has data to score")
        metrics = [
            Metric("reps_scored", "Reps scored", len(scored), "reps"),
            Metric("average_score", "Average score", _mean([r["score"] for r in scored]), ""),
            Metric("closed_won", "Closed won", team["won_amount"], "$"),
            Metric("win_rate_narrow", "Win rate (won / won + lost)", _pct100(team["win_rate_narrow"]), "%"),
            Metric("win_rate_broad", "Win rate (won / deals closed or created)", _pct100(team["win_rate_broad"]), "%"),
            Metric("attainment", "Team attainment (won / quota)", _pct100(team["attainment"]), "%"),
            Metric("new_deals", "New deals created", team["created"], "deals"),
        ]
        table = Table("Reps", ["Rep", "Score", "Attainment", "Coverage", "Activities", "Win rate", "Broad win rate",
                               "New deals", "Conversations"], [
            [r["rep"], f"{r['score']:.0f}" if r["score"] is not None else "—", _pct(r["attainment"]),
             "quota met" if r["quota"] and r["coverage"] is None else fmt(r["coverage"], "x"), fmt(r["activities"]),
             f"{_pct(r['win_rate_narrow'])} ({r['won']}W/{r['lost']}L)", _pct(r["win_rate_broad"]),
             r["created"], fmt(r["conversations"])] for r in reps],
            note="A dash means no data: that component's weight went to the others.")
        evidence = []
        for r in reps:
            for kind, label in (("won", "closed won"), ("lost", "closed lost"), ("created", "created")):
                if r[f"{kind}_ids"]:
                    evidence.append(Evidence(f"{r['rep']}: deals {label} in {c['period']['name']}", "deals",
                                             r[f"{kind}_ids"], r[f"{kind}_names"]))
        text = ctx.synthesize(task="rep scorecard",
                          instructions="Write a short rep scorecard summary for a sales manager: who leads and "
                                       "why, who needs coaching and on which component. Use only the figures given.",
                          data={"scorecard": _prompt_data(c)}, template=lambda: _template(c))
        notes = [c["quota_hint"]] if c["quota_hint"] else []
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, [table], [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _coverage(r, quota) -> float | None:
    if not quota:
        return None
    remaining = Decimal(quota) - Decimal(r["won_amount"])
    return float(Decimal(r["pipeline"]) / remaining) if remaining > 0 else None


def _pct(v) -> str:
    return "—" if v is None else f"{v * 100:.0f}%"


def _pct100(v) -> float | None:
    return None if v is None else v * 100


def _prompt_data(c: dict[str, Any]) -> dict[str, Any]:
    keep = ("rep", "score", "components", "won", "lost", "won_amount", "quota", "attainment", "coverage",
            "activities", "win_rate_narrow", "win_rate_broad", "created", "conversations")
    return {"period": c["period"], "team": c["team"], "team_averages": c["team_averages"],
            "reps": [{k: r[k] for k in keep} for r in c["reps"]]}


def _template(c: dict[str, Any]) -> str:
    reps = [r for r in c["reps"] if r["score"] is not None]
    if not reps:
        return f"No rep has scorecard data for {c['period']['name']} yet."
    lines = [f"{c['period']['name']}: {len(reps)} reps scored; closed won {money(c['team']['won_amount'])}, "
             f"win rate {_pct(c['team']['win_rate_narrow'])} narrow, {_pct(c['team']['win_rate_broad'])} broad."]
    top = reps[0]
    lines.append(f"{top['rep']} leads at {top['score']:.0f}" + _strongest(top) + ".")
    if len(reps) > 1:
        low = reps[-1]
        weakest = min(low["components"].items(), key=lambda kv: kv[1])
        lines.append(f"{low['rep']} trails at {low['score']:.0f}; weakest on "
                     f"{LABELS[weakest[0]].lower()} ({weakest[1]:.0f}/100).")
    return " ".join(lines)


def _strongest(rep: dict[str, Any]) -> str:
    if not rep["components"]:
        return ""
    key, score = max(rep["components"].items(), key=lambda kv: kv[1])
    return f", strongest on {LABELS[key].lower()} ({score:.0f}/100)"


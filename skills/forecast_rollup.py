"""forecast-rollup: where the period will land, team and rep by rep.

COMPUTE (one SQL pass over the period's deals):
- the period is the active quota period, else the current fiscal quarter;
- closed won = deals closed won with a close date in the period (the close date, not `closed_at`, dates a win,
  as in every other period figure);
- open deals closing in the period fall into commit / best case / pipeline by their forecast category; a deal
  with no category gets one from its probability (≥ 90 commit, ≥ 60 best case, > 0 pipeline; probability
  defaults to its stage's typical one) — `core.stages.forecast_category_for`, mirrored in SQL: a deal with
  neither a probability nor a known stage is not forecasted (the SQL once guessed 10 % and called it pipeline);
- bear = closed won + commit, base = bear + best case, bull = base + pipeline;
- weighted = closed won + Σ open amount × probability / 100 over the forecast categories;
- attainment = base / quota, for the team and for each rep with a quota (the original used (won + commit) /
  quota for reps and base for the team; one definition for both reads less surprising — documented choice);
  a rep with a quota but no deal in the period is listed at 0 % (off track) rather than left out;
- rep bands on attainment: ≥ 120 % crushing, ≥ 90 % on track, ≥ 70 % at risk, ≥ 50 % behind, else off track;
- week-over-week: the change of each figure against the previous successful run, when there is one and it
  measured the same period (a run from last quarter is no baseline for this one).
SYNTHESIZE: Claude writes the narrative from the computed figures when a key is set; else a template. The
waterfall chart (closed won → commit → best case → pipeline, quota line) is attached; if it cannot be drawn the
result says so in a note and is otherwise unchanged.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.quotas import fiscal_quarter
from core.stages import STAGE_ORDER, default_probability
from skills import charts
from skills.format import money
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

BANDS = ((Decimal("1.2"), "crushing"), (Decimal("0.9"), "on_track"), (Decimal("0.7"), "at_risk"),
         (Decimal("0.5"), "behind"))
CATEGORIES = ("commit", "best_case", "pipeline")
_COMPARED = ("closed_won", "commit", "best_case", "pipeline", "bear", "base", "bull", "weighted", "attainment")

# Probability defaults per stage, and the category rule, in SQL (kept equal to core.stages by a test): a deal
# with neither a probability nor a known stage is not forecasted; with no stage at all, 100 % reads closed.
_PROB_DEFAULT = "CASE d.stage_normalized " + " ".join(
    f"WHEN '{s}' THEN {default_probability(s)}" for s in STAGE_ORDER) + " END"
_PROB = f"COALESCE(d.probability, {_PROB_DEFAULT})"
CATEGORY_SQL = f"""
CASE WHEN d.stage_normalized = 'closed_won' THEN 'closed'
     WHEN d.stage_normalized = 'closed_lost' THEN 'not_forecasted'
     WHEN d.forecast_category IN ('commit', 'best_case', 'pipeline', 'not_forecasted') THEN d.forecast_category
     WHEN {_PROB} IS NULL THEN 'not_forecasted'
     WHEN d.stage_normalized IS NULL AND {_PROB} >= 100 THEN 'closed'
     WHEN {_PROB} >= 90 THEN 'commit'
     WHEN {_PROB} >= 60 THEN 'best_case'
     WHEN {_PROB} > 0 THEN 'pipeline'
     ELSE 'not_forecasted' END"""

_ROLLUP = f"""
WITH period_deals AS (
    SELECT d.id, d.name, d.owner, d.amount, d.stage_normalized,
           COALESCE({_PROB}, 0) AS probability, {CATEGORY_SQL} AS category
      FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
       AND d.close_date BETWEEN %(start)s AND %(end)s AND d.amount IS NOT NULL
)
SELECT owner, GROUPING(owner) = 1 AS is_team, category,
       sum(amount) AS amount, count(*) AS deals,
       sum(amount * probability / 100) AS weighted,
       (array_agg(id::text ORDER BY amount DESC))[1:10] AS top_ids,
       (array_agg(name ORDER BY amount DESC))[1:10] AS top_names
  FROM period_deals
 GROUP BY GROUPING SETS ((owner, category), (category))
"""


_CATEGORY_LABEL = {"closed": "closed won", "commit": "commit", "best_case": "best case", "pipeline": "pipeline"}


def band(attainment: Decimal | None) -> str:
    if attainment is None:
        return "unknown"
    for floor, name in BANDS:
        if attainment >= floor:
            return name
    return "off_track"


def report_period(ctx):
    """The period every period skill measures: the active quota period, else the current fiscal quarter."""
    quota = ctx.quota
    if quota.period is not None:
        return quota.period
    fy = int(ctx.context.get("business_model", {}).get("fiscal_year_start_month") or 1)
    return fiscal_quarter(ctx.today, fy)


@register
class ForecastRollup(Skill):
    name = "forecast-rollup"
    description = "Closed won, commit, best case and pipeline vs quota: bear/base/bull, weighted, rep by rep"
    aliases = ("forecast",)
    schedule = "weekly mon 08:00"

    def compute(self, ctx) -> dict[str, Any]:
        period = report_period(ctx)
        with ctx.conn() as conn:
            rows = conn.execute(_ROLLUP, {"workspace_id": ctx.workspace_id, "start": period.start_date,
                                          "end": period.end_date}).fetchall()
        zero = Decimal(0)
        team = {c: zero for c in ("closed", *CATEGORIES)}
        weighted = zero
        evidence: dict[str, dict[str, list[str]]] = {}
        reps: dict[str, dict[str, Decimal]] = {}
        for r in rows:  # GROUPING SETS: one row per (owner, category) plus team totals per category
            cat = r["category"]
            if cat not in team:
                continue  # not_forecasted
            if r["is_team"]:
                team[cat] = r["amount"]
                weighted += r["amount"] if cat == "closed" else r["weighted"]
                evidence[cat] = {"ids": r["top_ids"] or [], "names": r["top_names"] or []}
            else:
                figures = reps.setdefault(r["owner"] or "Unassigned", {c: zero for c in team})
                figures[cat] += r["amount"]
        bear = team["closed"] + team["commit"]
        base = bear + team["best_case"]
        bull = base + team["pipeline"]
        quota = ctx.quota
        team_quota = quota.team_quota
        attainment = (base / team_quota) if team_quota else None
        for rep in quota.rep_quotas or {}:  # a rep with a quota and nothing in the period is 0 %, not absent
            reps.setdefault(rep, {c: zero for c in team})
        rep_rows = []
        for owner, figures in sorted(reps.items()):
            rep_base = figures["closed"] + figures["commit"] + figures["best_case"]
            rep_quota = (quota.rep_quotas or {}).get(owner)
            att = (rep_base / rep_quota) if rep_quota else None
            rep_rows.append({"rep": owner, "closed_won": figures["closed"], "commit": figures["commit"],
                             "best_case": figures["best_case"], "pipeline": figures["pipeline"], "base": rep_base,
                             "quota": rep_quota, "attainment": att, "band": band(att)})
        previous = (ctx.previous_output(self.name) or {}).get("data") or {}
        if (previous.get("period") or {}).get("start") != period.start_date.isoformat():
            previous = {}  # the last run measured another period: nothing to compare with
        return {
            "period": {"name": period.name, "start": period.start_date, "end": period.end_date},
            "quota_source": quota.source, "quota_hint": quota.hint, "quota": team_quota,
            "closed_won": team["closed"], "commit": team["commit"], "best_case": team["best_case"],
            "pipeline": team["pipeline"], "bear": bear, "base": base, "bull": bull, "weighted": weighted,
            "attainment": attainment, "band": band(attainment), "reps": rep_rows,
            "evidence": evidence,
            "previous": {k: previous.get(k) for k in _COMPARED if previous.get(k) is not None},
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        def change(key):
            prev = c["previous"].get(key)
            if prev is None or c[key] is None:
                return None
            # the previous figures come back from JSON as floats: round off their noise (and a negative zero)
            delta = (Decimal(str(c[key])) - Decimal(str(prev))).quantize(Decimal("0.000001" if key == "attainment" else "0.01"))
            return delta if delta else Decimal(0)

        pct = f"{c['attainment'] * 100:.0f}% of quota, {c['band'].replace('_', ' ')}" if c["attainment"] is not None \
            else "no quota set"
        headline = f"{c['period']['name']} forecast: base {money(c['base'])} ({pct}); bull {money(c['bull'])}"
        metrics = [
            Metric("closed_won", "Closed won", c["closed_won"], "$", change("closed_won")),
            Metric("commit", "Commit", c["commit"], "$", change("commit")),
            Metric("best_case", "Best case", c["best_case"], "$", change("best_case")),
            Metric("pipeline", "Pipeline", c["pipeline"], "$", change("pipeline")),
            Metric("bear", "Bear (won + commit)", c["bear"], "$", change("bear")),
            Metric("base", "Base (bear + best case)", c["base"], "$", change("base")),
            Metric("bull", "Bull (base + pipeline)", c["bull"], "$", change("bull")),
            Metric("weighted", "Weighted forecast", c["weighted"], "$", change("weighted")),
            Metric("quota", "Quota", c["quota"], "$"),
            Metric("attainment", "Attainment (base / quota)",
                   c["attainment"] * 100 if c["attainment"] is not None else None, "%",
                   change("attainment") * 100 if change("attainment") is not None else None, status=c["band"]),
        ]
        table = Table("Reps", ["Rep", "Closed won", "Commit", "Best case", "Base", "Quota", "Attainment", "Band"], [
            [r["rep"], money(r["closed_won"]), money(r["commit"]), money(r["best_case"]), money(r["base"]),
             money(r["quota"]), f"{r['attainment'] * 100:.0f}%" if r["attainment"] is not None else "—",
             r["band"].replace("_", " ")] for r in c["reps"]])
        evidence = [Evidence(f"largest {_CATEGORY_LABEL[cat]} deals", "deals", e["ids"], e["names"])
                    for cat, e in c["evidence"].items() if e["ids"]]
        template = lambda: _template(c)  # noqa: E731
        text = ctx.synthesize(task="forecast narrative",
                          instructions="Write a short forecast update for a CRO: where the quarter lands (bear, "
                                       "base, bull vs quota), what changed since last week, which reps need "
                                       "attention and why. Use only the figures given.",
                          data={"forecast": {k: v for k, v in c.items() if k != "evidence"}}, template=template)
        notes = [c["quota_hint"]] if c["quota_hint"] else []
        chart = charts.forecast_waterfall(f"{c['period']['name']} forecast", c["closed_won"], c["commit"],
                                          c["best_case"], c["pipeline"], c["quota"])
        failed = charts.render(ctx, chart)
        notes += [failed] if failed else []
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, [table], [chart], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _template(c: dict[str, Any]) -> str:
    lines = [f"{c['period']['name']}: closed won {money(c['closed_won'])}, commit {money(c['commit'])}, "
             f"best case {money(c['best_case'])}, pipeline {money(c['pipeline'])}."]
    if c["quota"]:
        lines.append(f"Base {money(c['base'])} is {c['attainment'] * 100:.0f}% of the {money(c['quota'])} quota "
                     f"({c['band'].replace('_', ' ')}); bear {money(c['bear'])}, bull {money(c['bull'])}.")
    else:
        lines.append(f"Bear {money(c['bear'])}, base {money(c['base'])}, bull {money(c['bull'])}; no quota is set.")
    if c["previous"].get("base") is not None:
        delta = Decimal(str(c["base"])) - Decimal(str(c["previous"]["base"]))
        lines.append(f"Base moved {'+' if delta >= 0 else ''}{money(delta)} since the last run.")
    watch = [r for r in c["reps"] if r["band"] in ("behind", "off_track")]
    if watch:
        lines.append("Needs attention: " + ", ".join(f"{r['rep']} ({r['attainment'] * 100:.0f}%)" for r in watch) + ".")
    return " ".join(lines)

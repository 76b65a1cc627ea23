"""pipeline-coverage: is there enough open pipeline to make the rest of the number, team and rep by rep?

COMPUTE (one SQL pass over the period's deals, grouped by owner and for the team):
- the period is the forecast's (the active quota period, else the current fiscal quarter);
- pipeline = the amount of open deals (no stage counts as open) with a close date in the period, overdue ones
  included — they are still open and still expected this period; a missing amount counts 0;
- closed won = deals closed won with a close date in the period; remaining = quota − closed won;
- coverage = pipeline ÷ remaining, None when there is no quota or the quota is already met (remaining ≤ 0);
- status against the coverage target (context goals_and_targets.thresholds.coverage_target, else
  goals_and_targets.pipeline_coverage_target, else 3.0; a number or a map with a `default` key):
  ≥ target on_track, ≥ 0.6 × target at_risk, else behind; no quota → unknown; remaining ≤ 0 → quota_met (the
  original reported a null coverage with a computed status; a met quota is neither at risk nor unknown);
- gap = max(0, remaining × target − pipeline): the pipeline still to find to reach the target;
- early-stage share = (awareness + qualification + no stage) ÷ pipeline: > 70 % early_heavy, < 30 % late_heavy,
  else balanced;
- alert when coverage < 1.5 and fewer than 6 weeks (42 days, counted from today to the period's last day) remain;
  risk high below 1.0, else medium. Applied to the team and to every rep with a quota;
- a rep with a quota but no deal in the period is listed (pipeline 0); the original's fake-pipeline check and its
  email-keyed rep quotas (BUG: name-keyed in forecast-rollup) are not carried over: rep quotas are by name here too;
- week-over-week: pipeline and coverage change against the previous successful run of the same period.
SYNTHESIZE: Claude (or the template) writes the summary; the coverage-by-rep bar chart with the target line is
attached, and a chart that cannot be drawn only adds a note.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.context import lookup
from skills import charts
from skills.format import money
from skills.forecast_rollup import report_period
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

ALERT_COVERAGE = Decimal("1.5")
HIGH_RISK_COVERAGE = Decimal("1")
ALERT_DAYS = 42  # "fewer than 6 weeks remain"
AT_RISK_SHARE = Decimal("0.6")
DEFAULT_TARGET = Decimal("3")

_COVERAGE = """
WITH period_deals AS (
    SELECT d.id, d.name, d.owner, COALESCE(d.amount, 0) AS amount,
           d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost') AS is_open,
           d.stage_normalized IS NULL OR d.stage_normalized IN ('awareness', 'qualification') AS is_early,
           d.stage_normalized = 'closed_won' AS is_won
      FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
       AND d.close_date BETWEEN %(start)s AND %(end)s
       AND d.stage_normalized IS DISTINCT FROM 'closed_lost'
)
SELECT owner, GROUPING(owner) = 1 AS is_team,
       COALESCE(sum(amount) FILTER (WHERE is_open), 0) AS pipeline,
       count(*) FILTER (WHERE is_open) AS open_deals,
       COALESCE(sum(amount) FILTER (WHERE is_open AND is_early), 0) AS early,
       COALESCE(sum(amount) FILTER (WHERE is_won), 0) AS closed_won,
       (array_agg(id::text ORDER BY amount DESC, id) FILTER (WHERE is_open))[1:10] AS top_ids,
       (array_agg(name ORDER BY amount DESC, id) FILTER (WHERE is_open))[1:10] AS top_names
  FROM period_deals
 GROUP BY GROUPING SETS ((owner), ())
"""


def coverage_target(context: dict[str, Any]) -> Decimal:
    value = lookup(context, "goals_and_targets.thresholds.coverage_target")
    if value is None:
        value = lookup(context, "goals_and_targets.pipeline_coverage_target", DEFAULT_TARGET)
    if isinstance(value, dict):
        value = value.get("default", DEFAULT_TARGET)
    try:
        target = Decimal(str(value))
    except ArithmeticError:
        return DEFAULT_TARGET
    return target if target.is_finite() and target > 0 else DEFAULT_TARGET


def assess(pipeline: Decimal, closed_won: Decimal, quota: Decimal | None, target: Decimal,
           days_left: int) -> dict[str, Any]:
    """Coverage, status, gap and alert for one rep or the team (see the module docstring)."""
    if not quota:
        return {"quota": None, "remaining": None, "coverage": None, "status": "unknown", "gap": None,
                "alert": False, "risk": None}
    remaining = quota - closed_won
    if remaining <= 0:
        return {"quota": quota, "remaining": remaining, "coverage": None, "status": "quota_met",
                "gap": Decimal(0), "alert": False, "risk": None}
    coverage = pipeline / remaining
    status = "on_track" if coverage >= target else "at_risk" if coverage >= AT_RISK_SHARE * target else "behind"
    alert = coverage < ALERT_COVERAGE and days_left < ALERT_DAYS
    return {"quota": quota, "remaining": remaining, "coverage": coverage, "status": status,
            "gap": max(Decimal(0), remaining * target - pipeline), "alert": alert,
            "risk": ("high" if coverage < HIGH_RISK_COVERAGE else "medium") if alert else None}


def _mix(pipeline: Decimal, early: Decimal) -> tuple[Decimal | None, str | None]:
    if not pipeline:
        return None, None
    share = early / pipeline
    return share, "early_heavy" if share > Decimal("0.7") else "late_heavy" if share < Decimal("0.3") else "balanced"


@register
class PipelineCoverage(Skill):
    name = "pipeline-coverage"
    description = "Open pipeline ÷ quota still to close, team and rep by rep, against the coverage target"
    aliases = ("coverage",)
    schedule = "weekly mon 08:00"

    def compute(self, ctx) -> dict[str, Any]:
        period = report_period(ctx)
        with ctx.conn() as conn:
            rows = conn.execute(_COVERAGE, {"workspace_id": ctx.workspace_id, "start": period.start_date,
                                            "end": period.end_date}).fetchall()
        target = coverage_target(ctx.context)
        days_left = (period.end_date - ctx.today).days
        quota = ctx.quota
        zero = Decimal(0)
        empty = {"pipeline": zero, "open_deals": 0, "early": zero, "closed_won": zero, "top_ids": [], "top_names": []}
        team_row = next((r for r in rows if r["is_team"]), None) or empty
        by_owner = {r["owner"] or "Unassigned": r for r in rows if not r["is_team"]}
        for rep in quota.rep_quotas or {}:
            by_owner.setdefault(rep, empty)
        reps = []
        for owner, r in sorted(by_owner.items()):
            share, mix = _mix(r["pipeline"], r["early"])
            reps.append({"rep": owner, "pipeline": r["pipeline"], "open_deals": r["open_deals"],
                         "closed_won": r["closed_won"], "early_share": share, "mix": mix,
                         **assess(r["pipeline"], r["closed_won"], (quota.rep_quotas or {}).get(owner), target,
                                  days_left),
                         "top_ids": r["top_ids"] or [], "top_names": r["top_names"] or []})
        share, mix = _mix(team_row["pipeline"], team_row["early"])
        team = {"pipeline": team_row["pipeline"], "open_deals": team_row["open_deals"],
                "closed_won": team_row["closed_won"], "early_share": share, "mix": mix,
                **assess(team_row["pipeline"], team_row["closed_won"], quota.team_quota, target, days_left),
                "top_ids": team_row["top_ids"] or [], "top_names": team_row["top_names"] or []}
        previous = (ctx.previous_output(self.name) or {}).get("data") or {}
        if (previous.get("period") or {}).get("start") != period.start_date.isoformat():
            previous = {}
        prev_team = previous.get("team") or {}
        return {
            "period": {"name": period.name, "start": period.start_date, "end": period.end_date},
            "days_left": days_left, "weeks_left": Decimal(days_left) / 7, "target": target,
            "quota_source": quota.source, "quota_hint": quota.hint,
            "team": team, "reps": reps,
            "alerts": [{"rep": r["rep"], "coverage": r["coverage"], "risk": r["risk"]} for r in reps if r["alert"]],
            "previous": {k: prev_team[k] for k in ("pipeline", "coverage") if prev_team.get(k) is not None},
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        team, target = c["team"], c["target"]

        def change(key):
            prev, now = c["previous"].get(key), team[key]
            if prev is None or now is None:
                return None
            delta = (Decimal(str(now)) - Decimal(str(prev))).quantize(Decimal("0.0001" if key == "coverage" else "0.01"))
            return delta if delta else Decimal(0)

        if team["coverage"] is not None:
            state = f"{team['coverage']:.2f}x of the {money(team['remaining'])} still to close " \
                    f"(target {target:g}x, {team['status'].replace('_', ' ')})"
        elif team["status"] == "quota_met":
            state = f"quota met; {money(team['pipeline'])} more open"
        else:
            state = f"{money(team['pipeline'])} open, no quota set"
        headline = f"{c['period']['name']} pipeline coverage: {state}"
        if c["alerts"]:
            headline += f"; {len(c['alerts'])} coverage alert{'s' if len(c['alerts']) != 1 else ''}"
        metrics = [
            Metric("pipeline", "Open pipeline in period", team["pipeline"], "$", change("pipeline")),
            Metric("closed_won", "Closed won", team["closed_won"], "$"),
            Metric("quota", "Quota", team["quota"], "$"),
            Metric("remaining", "Remaining to close", team["remaining"], "$"),
            Metric("coverage", "Coverage (pipeline ÷ remaining)", team["coverage"], "x", change("coverage"),
                   status=team["status"]),
            Metric("target", "Coverage target", target, "x"),
            Metric("gap", "Pipeline gap to target", team["gap"], "$"),
            Metric("early_share", "Early-stage share", team["early_share"] * 100 if team["early_share"] is not None
                   else None, "%", status=team["mix"]),
            Metric("weeks_left", "Weeks left in period", c["weeks_left"], "weeks"),
        ]
        table = Table("Reps", ["Rep", "Pipeline", "Closed won", "Quota", "Remaining", "Coverage", "Gap", "Status",
                               "Alert"], [
            [r["rep"], money(r["pipeline"]), money(r["closed_won"]), money(r["quota"]), money(r["remaining"]),
             f"{r['coverage']:.2f}x" if r["coverage"] is not None else "—", money(r["gap"]),
             r["status"].replace("_", " "), r["risk"] or ""] for r in c["reps"]],
            note=f"alert: coverage < {ALERT_COVERAGE}x with fewer than 6 weeks left ({c['days_left']} days left)")
        evidence = []
        if team["top_ids"]:
            evidence.append(Evidence("largest open deals in the period's pipeline", "deals", team["top_ids"],
                                     team["top_names"]))
        for r in c["reps"]:
            if (r["alert"] or r["status"] in ("at_risk", "behind")) and r["top_ids"]:
                evidence.append(Evidence(f"{r['rep']}'s open pipeline ({r['coverage']:.2f}x, "
                                         f"{r['status'].replace('_', ' ')})", "deals", r["top_ids"], r["top_names"]))
        bullets = [f"{a['rep']}: {a['coverage']:.2f}x with {c['days_left']} days left ({a['risk']} risk)"
                   for a in c["alerts"]]
        if team["alert"]:
            bullets.insert(0, f"Team: {team['coverage']:.2f}x with {c['days_left']} days left ({team['risk']} risk)")
        text = ctx.synthesize(task="pipeline coverage summary",
                          instructions="Write a short pipeline-coverage update for a sales leader: coverage vs the "
                                       "target for the team, which reps lack pipeline for what they still have to "
                                       "close, how much pipeline must be found, and any alerts. Use only the "
                                       "figures given.",
                          data={"coverage": _for_prompt(c)}, template=lambda: _template(c))
        sections = [Section("Summary", text.text)]
        if bullets:
            sections.append(Section("Alerts", bullets=bullets))
        notes = [c["quota_hint"]] if c["quota_hint"] else []
        chart = charts.coverage_by_rep(f"{c['period']['name']} coverage by rep", c["reps"], float(target),
                                       float(ALERT_COVERAGE) if c["days_left"] < ALERT_DAYS else None)
        failed = charts.render(ctx, chart)
        notes += [failed] if failed else []
        return SkillResult(self.name, headline, sections, metrics, [table], [chart], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _for_prompt(c: dict[str, Any]) -> dict[str, Any]:
    strip = lambda r: {k: v for k, v in r.items() if k not in ("top_ids", "top_names")}  # noqa: E731
    return {**{k: v for k, v in c.items() if k not in ("team", "reps")}, "team": strip(c["team"]),
            "reps": [strip(r) for r in c["reps"]]}


def _template(c: dict[str, Any]) -> str:
    team, target = c["team"], c["target"]
    lines = [f"{c['period']['name']}: {money(team['pipeline'])} open pipeline across {team['open_deals']} deals, "
             f"{money(team['closed_won'])} closed won, {c['days_left']} days left."]
    if team["coverage"] is not None:
        lines.append(f"Coverage is {team['coverage']:.2f}x of the {money(team['remaining'])} still to close against "
                     f"a {target:g}x target ({team['status'].replace('_', ' ')})"
                     + (f"; {money(team['gap'])} more pipeline would reach it." if team["gap"] else "."))
    elif team["status"] == "quota_met":
        lines.append("The team quota is already met.")
    else:
        lines.append("No quota is set, so coverage cannot be measured.")
    if team["mix"] in ("early_heavy", "late_heavy"):
        lines.append(f"{team['early_share'] * 100:.0f}% of the pipeline is in early stages "
                     f"({team['mix'].replace('_', ' ')}).")
    short = [r for r in c["reps"] if r["status"] in ("at_risk", "behind")]
    if short:
        lines.append("Short of target: " + ", ".join(f"{r['rep']} ({r['coverage']:.2f}x)" for r in short) + ".")
    if c["alerts"]:
        lines.append("Alerts (under 1.5x with under 6 weeks left): " + ", ".join(a["rep"] for a in c["alerts"]) + ".")
    return " ".join(lines)

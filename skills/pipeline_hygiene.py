"""pipeline-hygiene (alias `hygiene`): the open deals that need a rep's attention, with the money on each finding.

COMPUTE (one SQL statement; open = stage_normalized NULL or not closed_won / closed_lost; deleted deals and
deleted history rows never count; "today" is the run's pinned day, dates compare in UTC):
- days quiet = today − the date of `last_activity_at` (filled by the post-sync pipeline); a deal with no activity
  at all is quiet since its creation (source_created_at, else created_at); never negative.
  The original's stale query included closed deals and skipped deals with no activity date (BUG): here only
  open deals count, and a deal never touched is the stalest of all, not invisible.
- stale = days quiet ≥ thresholds.stale_deal_days (S, default 14; exactly S days is stale).
- severity, the original's boundaries 7 / 14 / 30, which are S/2, S and C (thresholds.critical_stale_days,
  default 30, at least S) at the defaults and move with the context: watch < S/2, warning S/2 … S−1 (going
  quiet, not stale yet), serious S … C−1, critical ≥ C. Every open deal falls in one bucket; stale deals are
  serious or critical. (The original applied the fixed 7/14/30 scale to stale deals only, so with a 14-day
  threshold its watch and warning buckets could never fill.)
- past close date = close_date < today (a deal due today is not past due); closing soon = today … today + 30.
- missing fields: amount (NULL or 0: a $0 open deal forecasts nothing either), close date, owner (no owner name
  and no owner email), next step (NULL or blank).
- stage regression = the deal's stage history (ordered by entered_at; rows without a normalized stage skipped)
  enters an earlier open stage than the one before it, on or after today − 90 days; the latest such move is
  reported. Moving out of a closed stage (a reopened deal) is not a regression — the same rule as the
  computed field's stage_regression factor.
- flagged = deals with at least one finding above (closing soon is information, not a finding).
- parking lot (the original's): at least 10 stale deals and one stage holding more than 40 % of them.
Each finding has its deal count, $ at stake (the sum of its deals' amounts, a missing amount counting 0), a top
list (largest amount first) and, as evidence, the ids of its deals (largest first, at most 500).
SYNTHESIZE: Claude writes the summary from the computed figures when a key is set; else a template.
It never writes to the CRM and never reads a source API.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.context import lookup
from core.stages import OPEN_STAGES
from skills.format import money
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

TOP = 20                  # rows per top list kept in the computed output (tables show fewer)
EVIDENCE_CAP = 500        # ids per claim (the runtime's output cap keeps 500 records)
SOON_DAYS = 30
REGRESSION_DAYS = 90
PARKING_LOT_MIN, PARKING_LOT_SHARE = 10, Decimal("0.4")
FINDINGS = ("stale", "past_close_date", "missing_amount", "missing_close_date", "missing_owner",
            "missing_next_step", "stage_regression")
BUCKETS = ("watch", "warning", "serious", "critical")
LEAD_METRICS = ("stale_deals", "stale_amount", "past_close_date_deals", "flagged_pct")  # a digest shows the first four
LABELS = {"stale": "Stale (no activity)", "past_close_date": "Past close date", "closing_soon": "Closing in 30 days",
          "missing_amount": "No amount", "missing_close_date": "No close date", "missing_owner": "No owner",
          "missing_next_step": "No next step", "stage_regression": "Moved back a stage", "flagged": "Any finding"}

_OPEN = "(d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))"
_UTC_DAY = "(({col}) AT TIME ZONE 'UTC')::date"

_HYGIENE = f"""
WITH hist AS (
    SELECT h.deal_id, h.stage_normalized AS stage, h.entered_at,
           lag(h.stage_normalized) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at, h.id) AS prev
      FROM deal_stage_history h
     WHERE h.workspace_id = %(workspace_id)s AND h.deleted_at IS NULL AND h.deal_id IS NOT NULL
       AND h.stage_normalized IS NOT NULL AND {_UTC_DAY.format(col="h.entered_at")} <= %(today)s
       AND h.deal_id IN (SELECT d.id FROM deals d WHERE d.workspace_id = %(workspace_id)s  -- open deals only
                            AND d.deleted_at IS NULL AND {_OPEN})
), reg AS (
    SELECT DISTINCT ON (deal_id) deal_id, prev AS regressed_from, stage AS regressed_to,
           {_UTC_DAY.format(col="entered_at")} AS regressed_on
      FROM hist
     WHERE {_UTC_DAY.format(col="entered_at")} >= %(today)s - %(regression_days)s::int
       AND array_position(%(open_stages)s::text[], stage) < array_position(%(open_stages)s::text[], prev)
     ORDER BY deal_id, entered_at DESC, stage
), o AS (
    SELECT d.id, d.name, d.amount, d.stage_normalized AS stage, d.owner, d.close_date,
           COALESCE(a.name, d.account_name) AS account, d.last_activity_at IS NULL AS never_active,
           GREATEST(0, %(today)s - {_UTC_DAY.format(col="COALESCE(d.last_activity_at, d.source_created_at, d.created_at)")})
               AS days_quiet,
           d.close_date < %(today)s AS past_close,
           d.close_date BETWEEN %(today)s AND %(today)s + %(soon_days)s::int AS closing_soon,
           d.amount IS NULL OR d.amount = 0 AS no_amount,
           d.close_date IS NULL AS no_close_date,
           NULLIF(btrim(d.owner), '') IS NULL AND NULLIF(btrim(d.owner_email), '') IS NULL AS no_owner,
           NULLIF(btrim(d.next_step), '') IS NULL AS no_next_step,
           r.regressed_from, r.regressed_to, r.regressed_on
      FROM deals d
      LEFT JOIN accounts a ON a.workspace_id = d.workspace_id AND a.id = d.account_id AND a.deleted_at IS NULL
      LEFT JOIN reg r ON r.deal_id = d.id
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN}
), f AS (   -- one row per (finding, deal); measure orders a finding's deals after their amount
    SELECT 'open' AS finding, o.*, days_quiet AS measure FROM o
    UNION ALL
    SELECT 'bucket:' || CASE WHEN days_quiet < %(warn)s THEN 'watch' WHEN days_quiet < %(stale)s THEN 'warning'
                             WHEN days_quiet < %(critical)s THEN 'serious' ELSE 'critical' END, o.*, days_quiet FROM o
    UNION ALL SELECT 'stale', o.*, days_quiet FROM o WHERE days_quiet >= %(stale)s
    UNION ALL SELECT 'stale_in:' || COALESCE(stage, ''), o.*, days_quiet FROM o WHERE days_quiet >= %(stale)s
    UNION ALL SELECT 'past_close_date', o.*, %(today)s - close_date FROM o WHERE past_close
    UNION ALL SELECT 'closing_soon', o.*, %(today)s - close_date FROM o WHERE closing_soon
    UNION ALL SELECT 'missing_amount', o.*, days_quiet FROM o WHERE no_amount
    UNION ALL SELECT 'missing_close_date', o.*, days_quiet FROM o WHERE no_close_date
    UNION ALL SELECT 'missing_owner', o.*, days_quiet FROM o WHERE no_owner
    UNION ALL SELECT 'missing_next_step', o.*, days_quiet FROM o WHERE no_next_step
    UNION ALL SELECT 'stage_regression', o.*, regressed_on - %(today)s FROM o WHERE regressed_to IS NOT NULL
    UNION ALL
    SELECT 'flagged', o.*, days_quiet FROM o
     WHERE days_quiet >= %(stale)s OR past_close OR no_amount OR no_close_date OR no_owner OR no_next_step
        OR regressed_to IS NOT NULL
), ranked AS (  -- rank once per finding, so only the top rows are ever turned into JSON
    SELECT f.*, row_number() OVER (PARTITION BY finding ORDER BY amount DESC NULLS LAST, measure DESC, id) AS rn
      FROM f
)
SELECT finding, count(*) AS deals, COALESCE(sum(amount), 0) AS amount,
       COALESCE(array_agg(id::text ORDER BY rn) FILTER (WHERE rn <= %(evidence_cap)s), '{{}}') AS ids,
       COALESCE(array_agg(COALESCE(name, '') ORDER BY rn) FILTER (WHERE rn <= %(evidence_cap)s), '{{}}') AS names,
       COALESCE(array_agg(jsonb_build_object(
            'id', id::text, 'name', name, 'amount', amount, 'stage', stage, 'owner', owner, 'account', account,
            'close_date', close_date, 'days_quiet', days_quiet, 'never_active', never_active,
            'days_past_close', CASE WHEN past_close THEN %(today)s - close_date END,
            'regressed_from', regressed_from, 'regressed_to', regressed_to, 'regressed_on', regressed_on)
        ORDER BY rn) FILTER (WHERE rn <= %(top)s), '{{}}') AS top
  FROM ranked
 GROUP BY finding
"""


def thresholds(context: dict[str, Any]) -> dict[str, int]:
    """S (stale), C (critical, at least S) and the warning start S/2, from the context layer."""
    stale = _positive_int(lookup(context, "goals_and_targets.thresholds.stale_deal_days"), 14)
    critical = max(_positive_int(lookup(context, "goals_and_targets.thresholds.critical_stale_days"), 30), stale)
    return {"stale": stale, "critical": critical, "warn": max(1, stale // 2)}


def severity(days_quiet: int, t: dict[str, int]) -> str:
    if days_quiet >= t["critical"]:
        return "critical"
    if days_quiet >= t["stale"]:
        return "serious"
    return "warning" if days_quiet >= t["warn"] else "watch"


def _positive_int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else default


@register
class PipelineHygiene(Skill):
    name = "pipeline-hygiene"
    description = "Stale deals, past close dates, missing amount/close date/owner/next step, stage regressions"
    aliases = ("hygiene",)
    schedule = "weekly mon 08:30"

    def compute(self, ctx) -> dict[str, Any]:
        t = thresholds(ctx.context)
        params = {"workspace_id": ctx.workspace_id, "today": ctx.today, "soon_days": SOON_DAYS,
                  "regression_days": REGRESSION_DAYS, "open_stages": list(OPEN_STAGES), "top": TOP,
                  "evidence_cap": EVIDENCE_CAP, **t}
        with ctx.conn() as conn:
            rows = {r["finding"]: r for r in conn.execute(_HYGIENE, params).fetchall()}

        def finding(key: str) -> dict[str, Any]:
            r = rows.get(key)
            if r is None:
                return {"deals": 0, "amount": Decimal(0), "ids": [], "names": [], "top": []}
            top = [dict(x, severity=severity(x["days_quiet"], t)) for x in r["top"]]
            return {"deals": r["deals"], "amount": r["amount"], "ids": r["ids"], "names": r["names"], "top": top}

        findings = {k: finding(k) for k in (*FINDINGS, "closing_soon", "flagged")}
        opened = finding("open")
        buckets = {b: {"deals": finding(f"bucket:{b}")["deals"], "amount": finding(f"bucket:{b}")["amount"]}
                   for b in BUCKETS}
        stale_by_stage = sorted(((k.removeprefix("stale_in:") or None, r["deals"]) for k, r in rows.items()
                                 if k.startswith("stale_in:")), key=lambda x: (-x[1], x[0] or ""))
        parking = None
        stale_n = findings["stale"]["deals"]
        if stale_n >= PARKING_LOT_MIN and stale_by_stage and stale_by_stage[0][1] > PARKING_LOT_SHARE * stale_n:
            parking = {"stage": stale_by_stage[0][0], "deals": stale_by_stage[0][1]}
        return {
            "today": ctx.today, "thresholds": t,
            "open_deals": opened["deals"], "open_amount": opened["amount"],
            "findings": findings, "buckets": buckets,
            "critical_stale": buckets["critical"]["deals"],
            "stale_by_stage": [{"stage": s, "deals": n} for s, n in stale_by_stage],
            "parking_lot": parking,
            "flagged_pct": _pct(findings["flagged"]["deals"], opened["deals"]),
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        f, t = c["findings"], c["thresholds"]
        headline = _headline(c)
        metrics = [
            Metric("open_deals", "Open deals", c["open_deals"], "deals"),
            Metric("open_amount", "Open pipeline", c["open_amount"], "$"),
            Metric("flagged_deals", "Deals with a finding", f["flagged"]["deals"], "deals"),
            Metric("flagged_pct", "Share of open deals with a finding", c["flagged_pct"], "%"),
            Metric("critical_stale_deals", f"Critically stale (≥ {t['critical']} days)", c["critical_stale"], "deals"),
        ]
        for key in FINDINGS + ("closing_soon",):
            metrics.append(Metric(f"{key}_deals", LABELS[key], f[key]["deals"], "deals"))
            if key != "missing_amount":  # always $0: those deals have no amount
                metrics.append(Metric(f"{key}_amount", f"{LABELS[key]} ($)", f[key]["amount"], "$"))
        metrics.sort(key=lambda mt: LEAD_METRICS.index(mt.key) if mt.key in LEAD_METRICS else len(LEAD_METRICS))
        tables = [
            Table("Findings", ["Finding", "Deals", "$ at stake"],
                  [[LABELS[k], f[k]["deals"], "—" if k == "missing_amount" else money(f[k]["amount"])]
                   for k in FINDINGS + ("closing_soon",)]),
            Table("Days since last activity (open deals)", ["Bucket", "Days", "Deals", "Amount"], [
                ["watch", f"< {t['warn']}", c["buckets"]["watch"]["deals"], money(c["buckets"]["watch"]["amount"])],
                ["warning", f"{t['warn']}–{t['stale'] - 1}", c["buckets"]["warning"]["deals"],
                 money(c["buckets"]["warning"]["amount"])],
                ["serious (stale)", f"{t['stale']}–{t['critical'] - 1}", c["buckets"]["serious"]["deals"],
                 money(c["buckets"]["serious"]["amount"])],
                ["critical (stale)", f"≥ {t['critical']}", c["buckets"]["critical"]["deals"],
                 money(c["buckets"]["critical"]["amount"])]]),
        ]
        if f["stale"]["top"]:
            tables.append(Table("Stale deals", ["Deal", "Amount", "Stage", "Owner", "Days quiet", "Severity"], [
                [d["name"], money(d["amount"]), d["stage"] or "—", d["owner"] or "—",
                 f"{d['days_quiet']}{' (never active)' if d['never_active'] else ''}", d["severity"]]
                for d in f["stale"]["top"]], note=_more(f["stale"])))
        if f["past_close_date"]["top"]:
            tables.append(Table("Past close date", ["Deal", "Amount", "Close date", "Days past", "Owner"], [
                [d["name"], money(d["amount"]), d["close_date"], d["days_past_close"], d["owner"] or "—"]
                for d in f["past_close_date"]["top"][:10]], note=_more(f["past_close_date"], 10)))
        if f["stage_regression"]["top"]:
            tables.append(Table("Moved back a stage", ["Deal", "Amount", "From", "To", "On", "Owner"], [
                [d["name"], money(d["amount"]), d["regressed_from"], d["regressed_to"], d["regressed_on"],
                 d["owner"] or "—"] for d in f["stage_regression"]["top"][:10]], note=_more(f["stage_regression"], 10)))
        evidence = [Evidence(_claim(k, f[k]), "deals", f[k]["ids"], f[k]["names"])
                    for k in FINDINGS + ("closing_soon",) if f[k]["ids"]]
        text = ctx.synthesize(task="pipeline hygiene summary",
                          instructions="Write a short pipeline hygiene update for a sales manager: which problems "
                                       "put the most money at risk (stale deals, past close dates, missing fields, "
                                       "stage regressions), which deals to fix first and what to do. Use only the "
                                       "figures and deals given.",
                          data={"hygiene": _prompt_data(c)}, template=lambda: _template(c))
        notes = []
        if c["parking_lot"]:
            p = c["parking_lot"]
            notes.append(f"Parking lot: {p['deals']} of {f['stale']['deals']} stale deals sit in "
                         f"{p['stage'] or 'no stage'}.")
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, tables, [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _headline(c: dict[str, Any]) -> str:
    f = c["findings"]
    if not c["open_deals"]:
        return "Pipeline hygiene: no open deals"
    parts = [f"{f['stale']['deals']} of {c['open_deals']} open deals stale ({money(f['stale']['amount'])})",
             f"{f['past_close_date']['deals']} past close date ({money(f['past_close_date']['amount'])})"]
    if f["stage_regression"]["deals"]:
        parts.append(f"{f['stage_regression']['deals']} moved back a stage")
    return "Pipeline hygiene: " + ", ".join(parts)


def _template(c: dict[str, Any]) -> str:
    f, t = c["findings"], c["thresholds"]
    if not c["open_deals"]:
        return "There are no open deals to check."
    lines = [f"{c['open_deals']} open deals worth {money(c['open_amount'])}; {f['flagged']['deals']} "
             f"({c['flagged_pct']:.0f}%) have at least one finding."]
    if f["stale"]["deals"]:
        worst = f["stale"]["top"][0]
        lines.append(f"{f['stale']['deals']} deals ({money(f['stale']['amount'])}) have had no activity for "
                     f"{t['stale']}+ days, {c['critical_stale']} of them for {t['critical']}+; the largest is "
                     f"{worst['name']} ({money(worst['amount'])}, {worst['days_quiet']} days quiet).")
    if f["past_close_date"]["deals"]:
        lines.append(f"{f['past_close_date']['deals']} deals ({money(f['past_close_date']['amount'])}) are past "
                     "their close date: update the date or close them.")
    missing = [f"{f[k]['deals']} without {LABELS[k].removeprefix('No ').lower()}"
               for k in ("missing_amount", "missing_close_date", "missing_owner", "missing_next_step") if f[k]["deals"]]
    if missing:
        lines.append("Missing fields: " + ", ".join(missing) + ".")
    if f["stage_regression"]["deals"]:
        lines.append(f"{f['stage_regression']['deals']} deals ({money(f['stage_regression']['amount'])}) moved back "
                     f"to an earlier stage in the last {REGRESSION_DAYS} days.")
    if c["parking_lot"]:
        lines.append(f"{c['parking_lot']['deals']} stale deals are parked in {c['parking_lot']['stage'] or 'no stage'}.")
    if len(lines) == 1:
        lines.append("No stale deals, past close dates, missing fields or stage regressions.")
    return " ".join(lines)


def _prompt_data(c: dict[str, Any]) -> dict[str, Any]:
    """The computed figures without the long id lists (the top rows carry what the narrative needs)."""
    findings = {k: {"deals": v["deals"], "amount": v["amount"], "top": v["top"][:10]} for k, v in c["findings"].items()}
    return {**{k: v for k, v in c.items() if k != "findings"}, "findings": findings}


def _claim(key: str, f: dict[str, Any]) -> str:
    at_stake = "" if key == "missing_amount" else f" ({money(f['amount'])})"
    return f"{f['deals']} open deals: {LABELS[key].lower()}{at_stake}"


def _more(f: dict[str, Any], shown: int = TOP) -> str | None:
    return f"{f['deals'] - shown} more in the evidence" if f["deals"] > shown else None


def _pct(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1")) if whole else None


"""monte-carlo-forecast: the range the period's bookings can land in, and the chance of making quota.

COMPUTE:
- period and quota are the forecast's (the active quota period, else the current fiscal quarter; the original
  simulated to 31 December against annual targets — BUG-adjacent, and at odds with every other period figure);
- booked = closed won with a close date in the period (counted in every trial as is);
- win rate per open stage, from closed deals' stage history: among closed deals with at least one open-stage
  entry in `deal_stage_history`, the share won of those that reached the stage or a later one (a won deal has
  passed every stage; a lost deal reached up to its furthest recorded stage). With fewer than 20 such closed
  deals the stage default probabilities (`core.stages`) are used instead, and the result says so; a stage no
  closed deal reached takes its default too. A deal with no (or an unknown) stage takes the awareness rate;
- slippage = closed deals' actual close day (`closed_at`, UTC) − expected close day (`close_date`), in days.
  `slippage` param: auto (default) uses that history when ≥ 20 closed deals have both dates and not all of them
  are 0 — all-zero slips mean the CRM rewrites the close date on closing, which says nothing about drift — else
  the original's default, N(14, 21) days rounded to whole days; history / default force one; none = no slip;
- simulated = each open deal (no stage counts as open) with an amount and a close date in the period: won with
  its stage's win rate p; its close day = max(close date, today) + slip (an overdue deal can close no earlier
  than today, and an early slip no earlier than today either); counted if that day is still in the period. Win
  and slip are independent, so a deal counts with probability q = p × P(slip ≤ days from its expected day to
  period end); each trial draws one Bernoulli(q) per deal — the same distribution as drawing win and slip
  separately, at half the cost. Deals expected after the period are not pulled in by early slips (a forecast
  does not count on deals nobody expects this period). Amounts are taken as they are (the original's lognormal
  amount noise, deal multipliers and new-pipeline ramp are left out: simpler, and every input is visible);
- `trials` (default 10,000) seeded by `seed` (default 1): the same data and seed give the same figures;
  vectorised with numpy in chunks of ~2M draws (10k trials × 5k deals well under a second);
- P10 / P50 / P90 (linear-interpolated percentiles of the trial totals, rounded to cents), mean, and
  P(hit quota) = share of trials with total ≥ quota (None without a quota).
SYNTHESIZE: Claude (or the template) writes the summary from the figures. Never writes to the database.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np

from core.errors import InputError
from core.stages import OPEN_STAGES, default_probability
from skills.format import money
from skills.forecast_rollup import report_period
from skills.registry import Param, Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

MIN_CLOSED = 20              # closed deals needed before history beats the stage defaults
SLIP_MEAN, SLIP_SD = 14, 21  # the original's default slip, days
SLIPPAGE_MODES = ("auto", "history", "default", "none")
CHUNK_DRAWS = 2_000_000

_CLOSED_WON = """
SELECT COALESCE(sum(d.amount), 0) AS amount, count(*) AS deals,
       (array_agg(d.id::text ORDER BY d.amount DESC NULLS LAST, d.id))[1:10] AS top_ids,
       (array_agg(d.name ORDER BY d.amount DESC NULLS LAST, d.id))[1:10] AS top_names
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND d.stage_normalized = 'closed_won'
   AND d.close_date BETWEEN %(start)s AND %(end)s
"""

_OPEN = """
SELECT d.id::text AS id, d.name, d.owner, d.amount, d.stage_normalized AS stage, d.close_date
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
   AND (d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))
   AND d.amount > 0 AND d.close_date BETWEEN %(start)s AND %(end)s
 ORDER BY d.id
"""

# Furthest open stage each closed deal reached (1 = awareness … 5 = negotiation), counted by outcome. Joining
# closed deals to their history before grouping reads the history once (grouping all of it first, then joining,
# took twice as long at 400k history rows).
_REACHED = """
SELECT won, top, count(*) AS deals
  FROM (SELECT d.stage_normalized = 'closed_won' AS won,
               max(array_position(%(open_stages)s::text[], h.stage_normalized)) AS top
          FROM deals d
          JOIN deal_stage_history h ON h.workspace_id = d.workspace_id AND h.deal_id = d.id
         WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
           AND d.stage_normalized IN ('closed_won', 'closed_lost')
           AND h.workspace_id = %(workspace_id)s AND h.deleted_at IS NULL
           AND h.stage_normalized = ANY(%(open_stages)s::text[])
         GROUP BY d.id, d.stage_normalized) per_deal
 GROUP BY won, top
"""

_SLIPS = """
SELECT (d.closed_at AT TIME ZONE 'UTC')::date - d.close_date AS slip, count(*) AS deals
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
   AND d.stage_normalized IN ('closed_won', 'closed_lost')
   AND d.closed_at IS NOT NULL AND d.close_date IS NOT NULL
 GROUP BY 1
 ORDER BY 1
"""


def stage_win_rates(reached: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int]:
    """{stage: {reached, won, rate, source}} from (won, top, deals) counts, and the number of closed deals used."""
    total = sum(r["deals"] for r in reached)
    won = sum(r["deals"] for r in reached if r["won"])
    rates = {}
    for index, stage in enumerate(OPEN_STAGES, start=1):
        n = won + sum(r["deals"] for r in reached if not r["won"] and r["top"] >= index)
        if total >= MIN_CLOSED and n:
            rates[stage] = {"reached": n, "won": won, "rate": won / n, "source": "history"}
        else:
            rates[stage] = {"reached": n, "won": won if n else 0, "rate": default_probability(stage) / 100,
                            "source": "default"}
    return rates, total


def slip_model(rows: list[dict[str, Any]], mode: str):
    """(basis, P(slip ≤ h) as a vectorised function of whole days h, summary)."""
    days = np.array([r["slip"] for r in rows], dtype=float)
    counts = np.array([r["deals"] for r in rows], dtype=float)
    n = int(counts.sum())
    informative = n >= MIN_CLOSED and bool(np.any(days != 0))
    if mode == "history" and n == 0:
        raise InputError("slippage=history needs closed deals with both a close date and a closed date; none found",
                         field="slippage")
    basis = {"auto": "history" if informative else "default"}.get(mode, mode)
    summary: dict[str, Any] = {"basis": basis, "closed_deals_with_dates": n}
    if n:
        order = np.argsort(days)
        cum = np.cumsum(counts[order])
        summary.update(mean_days=float((days * counts).sum() / n),
                       median_days=float(days[order][np.searchsorted(cum, n / 2)]),
                       late_share=float(counts[days > 0].sum() / n))
    if basis == "none":
        return basis, lambda h: (np.asarray(h) >= 0).astype(float), summary
    if basis == "history":
        sorted_days, below = days[order], np.concatenate([[0.0], cum / n])  # below[k]: share of the k smallest
        return basis, lambda h: below[np.searchsorted(sorted_days, np.asarray(h, dtype=float), side="right")], summary
    erf = np.vectorize(math.erf)

    def rounded_normal(h):  # P(round(X) ≤ h) for X ~ N(14, 21) = Φ((h + 0.5 − 14) / 21)
        return 0.5 * (1 + erf((np.asarray(h, dtype=float) + 0.5 - SLIP_MEAN) / (SLIP_SD * math.sqrt(2))))

    return basis, rounded_normal, summary


def simulate(amounts: np.ndarray, q: np.ndarray, trials: int, seed: int) -> np.ndarray:
    """Trial totals of Σ amount × Bernoulli(q): float32 uniforms (exact at q = 0 and q = 1), chunked."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(trials)
    if not len(amounts):
        return totals
    q32 = q.astype(np.float32)
    chunk = max(1, CHUNK_DRAWS // len(amounts))
    for start in range(0, trials, chunk):
        k = min(chunk, trials - start)
        hits = rng.random((k, len(amounts)), dtype=np.float32) < q32
        totals[start:start + k] = hits.astype(np.float64) @ amounts  # explicit cast: BLAS, 4x faster than bool @
    return totals


@register
class MonteCarloForecast(Skill):
    name = "monte-carlo-forecast"
    description = "P10/P50/P90 of the period's bookings and the chance of making quota, from win rates and slippage"
    aliases = ("monte-carlo", "montecarlo", "mc")
    params = (Param("trials", int, 10_000, "number of simulated periods (100–100,000)"),
              Param("seed", int, 1, "random seed: the same data and seed give the same figures"),
              Param("slippage", str, "auto", "auto | history | default | none"))

    def compute(self, ctx) -> dict[str, Any]:
        trials, seed, mode = ctx.params["trials"], ctx.params["seed"], (ctx.params["slippage"] or "auto").lower()
        if not 100 <= trials <= 100_000:
            raise InputError(f"trials must be between 100 and 100,000, got {trials:,}", field="trials")
        if mode not in SLIPPAGE_MODES:
            raise InputError(f"slippage must be one of {', '.join(SLIPPAGE_MODES)}, got {mode!r}", field="slippage")
        period = report_period(ctx)
        params = {"workspace_id": ctx.workspace_id, "start": period.start_date, "end": period.end_date,
                  "open_stages": list(OPEN_STAGES)}
        with ctx.conn() as conn:
            won = conn.execute(_CLOSED_WON, params).fetchone()
            deals = conn.execute(_OPEN, params).fetchall()
            reached = conn.execute(_REACHED, params).fetchall()
            slips = conn.execute(_SLIPS, params).fetchall()
        rates, closed_used = stage_win_rates(reached)
        basis, slip_cdf, slip_summary = slip_model(slips, mode)

        stages = [d["stage"] if d["stage"] in rates else "awareness" for d in deals]  # no / unknown stage: the first
        amounts = np.array([float(d["amount"]) for d in deals])
        p = np.array([rates[stage]["rate"] for stage in stages])
        headroom = np.array([(period.end_date - max(d["close_date"], ctx.today)).days for d in deals], dtype=float)
        lands = slip_cdf(headroom) if len(deals) else np.zeros(0)
        q = p * lands
        booked = float(won["amount"])
        totals = np.round(booked + simulate(amounts, q, trials, seed), 2)
        p10, p50, p90 = (Decimal(f"{v:.2f}") for v in np.percentile(totals, [10, 50, 90]))
        quota = ctx.quota.team_quota
        p_hit = float(np.mean(totals >= float(quota))) if quota else None

        expected = amounts * q
        by_contribution = np.argsort(-expected, kind="stable")[:10]
        slipping = [i for i in np.argsort(-amounts, kind="stable") if lands[i] < 0.5][:10]
        for stage, r in rates.items():
            in_stage = [i for i, s in enumerate(stages) if s == stage]
            r.update(open_deals=len(in_stage), open_amount=Decimal(f"{amounts[in_stage].sum():.2f}"))
        return {
            "period": {"name": period.name, "start": period.start_date, "end": period.end_date},
            "trials": trials, "seed": seed, "quota": quota, "quota_source": ctx.quota.source,
            "quota_hint": ctx.quota.hint,
            "closed_won": won["amount"], "closed_won_deals": won["deals"],
            "open_deals": len(deals), "open_amount": Decimal(f"{amounts.sum():.2f}"),
            "expected": Decimal(f"{booked + expected.sum():.2f}"), "mean": Decimal(f"{totals.mean():.2f}"),
            "p10": p10, "p50": p50, "p90": p90, "p_hit_quota": p_hit,
            "win_rates": rates, "win_rate_basis": "history" if closed_used >= MIN_CLOSED else "default",
            "closed_deals_with_history": closed_used, "slippage": slip_summary,
            "evidence": {
                "closed_won": {"ids": won["top_ids"] or [], "names": won["top_names"] or []},
                "contributors": {"ids": [deals[i]["id"] for i in by_contribution if expected[i] > 0],
                                 "names": [deals[i]["name"] for i in by_contribution if expected[i] > 0]},
                "slipping": {"ids": [deals[i]["id"] for i in slipping], "names": [deals[i]["name"] for i in slipping]},
            },
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        chance = f"{c['p_hit_quota'] * 100:.0f}% chance to make the {money(c['quota'])} quota" \
            if c["p_hit_quota"] is not None else "no quota set"
        headline = (f"{c['period']['name']} Monte Carlo: P50 {money(c['p50'])} (P10 {money(c['p10'])} – "
                    f"P90 {money(c['p90'])}); {chance}")
        metrics = [
            Metric("p10", "P10 (9 in 10 periods beat this)", c["p10"], "$"),
            Metric("p50", "P50 (median)", c["p50"], "$"),
            Metric("p90", "P90 (1 in 10 periods beat this)", c["p90"], "$"),
            Metric("mean", "Mean of trials", c["mean"], "$"),
            Metric("p_hit_quota", "P(hit quota)", c["p_hit_quota"] * 100 if c["p_hit_quota"] is not None else None, "%"),
            Metric("quota", "Quota", c["quota"], "$"),
            Metric("closed_won", "Closed won so far", c["closed_won"], "$"),
            Metric("open_amount", "Open pipeline simulated", c["open_amount"], "$"),
            Metric("open_deals", "Open deals simulated", c["open_deals"], "deals"),
        ]
        table = Table("Win rate by stage", ["Stage", "Closed deals reached", "Won", "Win rate", "Source",
                                            "Open deals", "Open amount"], [
            [stage.replace("_", " "), r["reached"], r["won"], f"{r['rate'] * 100:.0f}%", r["source"],
             r["open_deals"], money(r["open_amount"])] for stage, r in c["win_rates"].items()])
        labels = {"closed_won": "closed won so far (counted in every trial)",
                  "contributors": "open deals that add most to the expected outcome (amount × win rate × "
                                  "chance to land in the period)",
                  "slipping": "largest open deals more likely than not to slip out of the period"}
        evidence = [Evidence(labels[k], "deals", e["ids"], e["names"]) for k, e in c["evidence"].items() if e["ids"]]
        notes = _notes(c)
        text = ctx.synthesize(task="monte carlo forecast summary",
                          instructions="Explain this simulated forecast range to a CRO in a few sentences: where the "
                                       "period likely lands (P10/P50/P90), the chance of making quota, and which "
                                       "assumptions (win rates, slippage) drive it. Use only the figures given.",
                          data={"simulation": {k: v for k, v in c.items() if k != "evidence"}},
                          template=lambda: _template(c))
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, [table], [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _notes(c: dict[str, Any]) -> list[str]:
    notes = []
    if c["win_rate_basis"] == "default":
        notes.append(f"Only {c['closed_deals_with_history']} closed deals have stage history (fewer than "
                     f"{MIN_CLOSED}): win rates are the stage default probabilities, not this team's history.")
    s = c["slippage"]
    if s["basis"] == "default":
        why = "no closed deal has both dates" if not s["closed_deals_with_dates"] else \
            f"only {s['closed_deals_with_dates']} closed deals have both dates" \
            if s["closed_deals_with_dates"] < MIN_CLOSED else \
            "every closed deal closed exactly on its close date (the CRM likely rewrites it on closing)"
        notes.append(f"Close-date slippage uses the default N({SLIP_MEAN}, {SLIP_SD}) days: {why}.")
    elif s["basis"] == "none":
        notes.append("Close-date slippage is off (slippage=none): every won deal closes on its expected date.")
    if c["quota_hint"]:
        notes.append(c["quota_hint"])
    return notes


def _template(c: dict[str, Any]) -> str:
    s = c["slippage"]
    lines = [f"Across {c['trials']:,} simulated {c['period']['name']} periods (seed {c['seed']}), bookings land "
             f"between {money(c['p10'])} (P10) and {money(c['p90'])} (P90), median {money(c['p50'])}: "
             f"{money(c['closed_won'])} already closed won plus {c['open_deals']:,} open deals worth "
             f"{money(c['open_amount'])}."]
    if c["p_hit_quota"] is not None:
        lines.append(f"{c['p_hit_quota'] * 100:.0f}% of the trials reach the {money(c['quota'])} quota.")
    lines.append("Win rates come from " + ("this team's closed deals" if c["win_rate_basis"] == "history"
                                           else "default stage probabilities") + "; slippage from "
                 + {"history": f"closed deals (mean {s.get('mean_days', 0):.0f} days late)",
                    "default": f"a default of {SLIP_MEAN} ± {SLIP_SD} days", "none": "nowhere (off)"}[s["basis"]] + ".")
    return " ".join(lines)

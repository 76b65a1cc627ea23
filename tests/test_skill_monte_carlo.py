"""monte-carlo-forecast against hand-made histories whose answers follow from the definitions
(skills/monte_carlo.py docstring): certain outcomes where the win rates are 1 or 0, exact expected values where
the slippage distribution is known, and a Bernoulli share within a few standard errors.

Period FY2026 Q2 (1 April – 30 June 2026), today 15 May 2026: 46 days from today to the period's end.
"""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from core.db.upsert import upsert_rows
from core.errors import InputError
from core.quotas import upsert_quota_period
from core.settings import Settings
from skills.runtime import run_skill

TODAY = date(2026, 5, 15)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


@pytest.fixture
def settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, pandora_home=tmp_path / "home", secret_key="test-secret-key")
OPEN_STAGES = ["awareness", "qualification", "evaluation", "decision", "negotiation"]


def closed(sid, won, top=None, close=date(2025, 6, 2), slip=0, amount=1000):
    """A closed deal (its stage history reaching `top`, if given), closed `slip` days after its close date."""
    row = {"source_id": sid, "name": sid, "owner": "Ana", "amount": amount, "close_date": close,
           "stage_normalized": "closed_won" if won else "closed_lost",
           "closed_at": datetime.combine(close + timedelta(days=slip), time(12), timezone.utc)}
    return row, OPEN_STAGES[:OPEN_STAGES.index(top) + 1] if top else []


def opened(sid, amount, stage, close):
    return {"source_id": sid, "name": sid, "owner": "Ben", "amount": amount, "stage_normalized": stage,
            "close_date": close}, []


def write(db, ws, deals, quota=None) -> None:
    """Deals, then their stage history (entered a day apart), through the upsert path; optionally a team quota."""
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws["id"], [{"source": "crm", **row} for row, _ in deals])
        ids = {r["source_id"]: r["id"] for r in conn.execute(
            "SELECT source_id, id FROM deals WHERE workspace_id = %(workspace_id)s", {"workspace_id": ws["id"]})}
        history = [{"source": "crm", "source_id": f"{row['source_id']}-{i}", "deal_id": ids[row["source_id"]],
                    "deal_source_id": row["source_id"], "stage": stage, "stage_normalized": stage,
                    "entered_at": datetime(2025, 1, 1 + i, tzinfo=timezone.utc)}
                   for row, stages in deals for i, stage in enumerate(stages)]
        if history:
            upsert_rows(conn, "deal_stage_history", ws["id"], history)
        if quota is not None:
            upsert_quota_period(conn, ws["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), quota)


def run(db, settings, ws, **params):
    return run_skill(db, settings, ws["id"], "monte-carlo-forecast", params, today=TODAY).data


# Open deals every scenario below shares: 60,000 counted, the rest out of the simulation.
OPEN = [
    opened("o_aware", 10000, "awareness", date(2026, 6, 1)),
    opened("o_eval_overdue", 20000, "evaluation", date(2026, 5, 1)),
    opened("o_nego_last_day", 30000, "negotiation", date(2026, 6, 30)),
    opened("o_next_quarter", 40000, "negotiation", date(2026, 7, 1)),
    opened("o_no_amount", None, "decision", date(2026, 6, 1)),
    opened("o_zero", 0, "decision", date(2026, 6, 1)),
]
WON_NOW = closed("won_now", True, close=date(2026, 4, 20), amount=50000)  # this period, no history
LOST_NOW = closed("lost_now", False, close=date(2026, 4, 21), amount=7000)


def test_certain_wins_without_slippage_land_on_closed_won_plus_every_open_deal(db, settings, workspace):
    history = [closed(f"won{i}", True, top="negotiation") for i in range(20)]
    write(db, workspace, history + OPEN + [WON_NOW, LOST_NOW], quota=110000)
    c = run(db, settings, workspace, slippage="none")
    assert c["win_rate_basis"] == "history" and c["closed_deals_with_history"] == 20
    assert {s: r["rate"] for s, r in c["win_rates"].items()} == dict.fromkeys(OPEN_STAGES, 1.0)
    assert (c["closed_won"], c["open_deals"], c["open_amount"]) == (50000, 3, 60000)
    assert c["p10"] == c["p50"] == c["p90"] == c["mean"] == c["expected"] == Decimal("110000.00")
    assert c["p_hit_quota"] == 1.0  # a total equal to the quota makes it


def test_certain_losses_leave_only_closed_won(db, settings, workspace):
    history = [closed(f"lost{i}", False, top="negotiation") for i in range(20)]
    write(db, workspace, history + OPEN + [WON_NOW], quota=50001)
    c = run(db, settings, workspace)
    assert {s: r["rate"] for s, r in c["win_rates"].items()} == dict.fromkeys(OPEN_STAGES, 0.0)
    assert c["p10"] == c["p50"] == c["p90"] == Decimal("50000.00")
    assert c["p_hit_quota"] == 0.0


def test_win_rate_is_the_won_share_of_closed_deals_that_reached_the_stage_or_beyond(db, settings, workspace):
    deals = [closed(f"won{i}", True, top="negotiation" if i < 8 else "decision") for i in range(12)]
    deals += [closed(f"lost_aw{i}", False, top="awareness") for i in range(4)]
    deals += [closed(f"lost_qu{i}", False, top="qualification") for i in range(3)]
    deals += [closed(f"lost_ev{i}", False, top="evaluation") for i in range(2)]
    skipper, _ = closed("lost_skipped_to_decision", False)
    deals += [(skipper, ["awareness", "decision"])]
    deals += [closed("lost_without_history", False), (opened("open_with_history", 5000, "evaluation",
                                                             date(2026, 6, 1))[0], ["awareness", "evaluation"])]
    write(db, workspace, deals)
    rates = run(db, settings, workspace)["win_rates"]
    # reached: every won deal (12) + lost deals whose furthest stage is at or past the stage
    assert {s: (r["reached"], r["won"], r["rate"], r["source"]) for s, r in rates.items()} == {
        "awareness": (22, 12, 12 / 22, "history"),
        "qualification": (18, 12, 12 / 18, "history"),
        "evaluation": (15, 12, 12 / 15, "history"),
        "decision": (13, 12, 12 / 13, "history"),
        "negotiation": (12, 12, 1.0, "history"),
    }


def test_fewer_than_20_closed_deals_use_stage_defaults_and_say_so(db, settings, workspace):
    deals = [closed(f"won{i}", True, top="decision") for i in range(3)]
    deals += [closed(f"lost{i}", False, top="awareness") for i in range(2)]
    deals += [opened("eval", 100000, "evaluation", date(2026, 6, 1))]
    write(db, workspace, deals, quota=100000)
    result = run_skill(db, settings, workspace["id"], "monte-carlo-forecast", {"slippage": "none"}, today=TODAY)
    c = result.data
    assert c["win_rate_basis"] == "default" and c["closed_deals_with_history"] == 5
    assert c["win_rates"]["evaluation"]["rate"] == 0.4 and c["win_rates"]["evaluation"]["source"] == "default"
    assert any("Only 5 closed deals have stage history" in n for n in result.notes)
    # one deal, won 40 % of the time: 0 or 100,000; P(hit 100,000) ≈ 0.40 (standard error 0.005 over 10k trials)
    assert c["expected"] == Decimal("40000.00")
    assert (c["p10"], c["p90"]) == (0, 100000)
    assert abs(c["p_hit_quota"] - 0.4) < 0.02


def test_the_same_seed_gives_the_same_figures(db, settings, workspace):
    write(db, workspace, [opened(f"o{i}", 1000 * (i + 1), OPEN_STAGES[i % 5], date(2026, 6, 1 + i))
                          for i in range(25)], quota=70000)
    figures = ("p10", "p50", "p90", "mean", "p_hit_quota")
    first = run(db, settings, workspace, seed=3)
    again = run(db, settings, workspace, seed=3)
    other = run(db, settings, workspace, seed=4)
    assert [first[k] for k in figures] == [again[k] for k in figures]
    assert first["mean"] != other["mean"]
    assert 0 < first["p_hit_quota"] < 1


def test_history_slippage_counts_a_won_deal_only_if_it_still_lands_in_the_period(db, settings, workspace):
    # slips: 0 days ×10, +3 ×5, +50 ×5 → P(slip ≤ h) = .5 for 0 ≤ h < 3, .75 for 3 ≤ h < 50, 1 beyond
    deals = [closed(f"on_time{i}", True, top="awareness") for i in range(10)]
    deals += [closed(f"late3_{i}", True, top="awareness", slip=3) for i in range(5)]
    deals += [closed(f"late50_{i}", True, top="awareness", slip=50) for i in range(5)]
    deals += [opened("two_days_left", 100000, "decision", date(2026, 6, 28)),    # lands with P .5
              opened("five_days_left", 20000, "decision", date(2026, 6, 25)),    # .75
              opened("overdue", 1000, "decision", date(2026, 4, 20))]            # from today: 46 days → .75
    write(db, workspace, deals)
    c = run(db, settings, workspace)
    assert c["slippage"] == {"basis": "history", "closed_deals_with_dates": 20, "mean_days": 13.25,
                             "median_days": 0.0, "late_share": 0.5}
    assert c["expected"] == Decimal("65750.00")  # 100,000 × .5 + 20,000 × .75 + 1,000 × .75
    assert abs(float(c["mean"]) - 65750) < 3000   # standard error ≈ 510
    assert c["p_hit_quota"] is None  # no quota


def test_close_dates_rewritten_on_closing_fall_back_to_the_default_slip(db, settings, workspace):
    deals = [closed(f"won{i}", True, top="negotiation") for i in range(20)]  # every slip 0
    deals += [opened("last_day", 100000, "negotiation", date(2026, 6, 30))]
    write(db, workspace, deals)
    result = run_skill(db, settings, workspace["id"], "monte-carlo-forecast", today=TODAY)
    assert result.data["slippage"]["basis"] == "default"
    assert any("rewrites it on closing" in n for n in result.notes)
    # won for sure, lands only if the rounded N(14, 21) slip is ≤ 0 days
    land = 0.5 * (1 + math.erf((0 + 0.5 - 14) / (21 * math.sqrt(2))))
    assert result.data["expected"] == Decimal(f"{100000 * land:.2f}")


@pytest.mark.parametrize("params", [{"trials": 5}, {"slippage": "sometimes"}])
def test_bad_parameters_are_input_errors(db, settings, workspace, params):
    with pytest.raises(InputError):
        run_skill(db, settings, workspace["id"], "monte-carlo-forecast", params, today=TODAY)

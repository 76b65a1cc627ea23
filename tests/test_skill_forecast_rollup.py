"""forecast-rollup against figures worked out by hand from the definitions (skills/forecast_rollup.py docstring).

The period is FY2026 Q2 (1 April – 30 June 2026), today is pinned to 15 May 2026; data goes in through
`upsert_rows` and the quota API only.

Hand calculation for DEALS below (in the period, not lost, with an amount):
  closed won  w1 100,000 (Ana) + w2 30,000 (Ben)                                  = 130,000
  commit      c1 60,000 (Ana, category commit) + c2 20,000 (Ben, no category, p 95) =  80,000
  best case   b1 50,000 (Ana, no category, p 60)                                  =  50,000
  pipeline    p1 25,000 (Ben, evaluation, no p → 40) + p2 10,000 (Ana, p 10, due 30 June) = 35,000
  left out    w_old (won in Q1), l1 (lost), nf (not_forecasted), late (due 1 July), nostage (no stage, no p)
  bear 210,000 · base 260,000 · bull 295,000
  weighted 130,000 + 60,000×.80 + 20,000×.95 + 50,000×.60 + 25,000×.40 + 10,000×.10 = 238,000
  team attainment 260,000 / 500,000 = 52 % → behind
  Ana base 100,000 + 60,000 + 50,000 = 210,000 / 175,000 = 120 % → crushing (boundary)
  Ben base 30,000 + 20,000 = 50,000 / 100,000 = 50 % → behind (boundary)
  Cleo no deals, quota 40,000 → 0 % → off track
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from core.db.upsert import upsert_rows
from core.quotas import set_rep_quota, upsert_quota_period
from core.settings import Settings
from core.stages import STAGES, forecast_category_for
from skills.forecast_rollup import CATEGORY_SQL, band
from skills.runtime import run_skill

TODAY = date(2026, 5, 15)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


@pytest.fixture
def settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, pandora_home=tmp_path / "home", secret_key="test-secret-key")

DEALS = [
    {"source_id": "w1", "name": "Won 1", "owner": "Ana", "amount": 100000, "stage_normalized": "closed_won",
     "close_date": date(2026, 4, 20), "closed_at": datetime(2026, 4, 20, 15, tzinfo=timezone.utc)},
    {"source_id": "w2", "name": "Won 2", "owner": "Ben", "amount": 30000, "stage_normalized": "closed_won",
     "close_date": date(2026, 5, 2)},
    {"source_id": "w_old", "name": "Won last quarter", "owner": "Ana", "amount": 50000,
     "stage_normalized": "closed_won", "close_date": date(2026, 3, 20)},
    {"source_id": "l1", "name": "Lost", "owner": "Ben", "amount": 40000, "stage_normalized": "closed_lost",
     "close_date": date(2026, 5, 1)},
    {"source_id": "c1", "name": "Commit 1", "owner": "Ana", "amount": 60000, "stage_normalized": "negotiation",
     "probability": 80, "forecast_category": "commit", "close_date": date(2026, 6, 10)},
    {"source_id": "c2", "name": "Commit 2", "owner": "Ben", "amount": 20000, "stage_normalized": "decision",
     "probability": 95, "close_date": date(2026, 6, 1)},
    {"source_id": "b1", "name": "Best case 1", "owner": "Ana", "amount": 50000, "stage_normalized": "decision",
     "probability": 60, "close_date": date(2026, 6, 15)},
    {"source_id": "p1", "name": "Pipeline 1", "owner": "Ben", "amount": 25000, "stage_normalized": "evaluation",
     "close_date": date(2026, 5, 30)},
    {"source_id": "p2", "name": "Pipeline 2", "owner": "Ana", "amount": 10000, "stage_normalized": "awareness",
     "probability": 10, "forecast_category": "pipeline", "close_date": date(2026, 6, 30)},
    {"source_id": "nf", "name": "Not forecasted", "owner": "Ana", "amount": 70000,
     "stage_normalized": "qualification", "probability": 20, "forecast_category": "not_forecasted",
     "close_date": date(2026, 6, 5)},
    {"source_id": "late", "name": "Next quarter", "owner": "Ben", "amount": 90000, "stage_normalized": "negotiation",
     "forecast_category": "commit", "close_date": date(2026, 7, 1)},
    {"source_id": "nostage", "name": "No stage", "owner": "Ben", "amount": 5000, "close_date": date(2026, 6, 2)},
]


def write_deals(db, ws, rows) -> None:
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws["id"], [{"source": "crm", **r} for r in rows])


def set_quotas(db, ws, team=500000, reps=(("Ana", 175000), ("Ben", 100000), ("Cleo", 40000))) -> None:
    with db.connection() as conn:
        period = upsert_quota_period(conn, ws["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), team)
        for name, amount in reps:
            set_rep_quota(conn, ws["id"], period, name, None, amount)


def run(db, settings, ws, today=TODAY):
    return run_skill(db, settings, ws["id"], "forecast-rollup", today=today)


@pytest.fixture
def seeded(db, workspace):
    write_deals(db, workspace, DEALS)
    set_quotas(db, workspace)
    return workspace


def values(result) -> dict:
    return {m.key: m.value for m in result.metrics}


def test_category_totals_and_scenarios_match_the_hand_calculation(db, settings, seeded):
    m = values(run(db, settings, seeded))
    assert (m["closed_won"], m["commit"], m["best_case"], m["pipeline"]) == (130000, 80000, 50000, 35000)
    assert (m["bear"], m["base"], m["bull"]) == (210000, 260000, 295000)


def test_weighted_forecast_is_closed_won_plus_probability_weighted_open_amounts(db, settings, seeded):
    assert values(run(db, settings, seeded))["weighted"] == Decimal("238000")


def test_team_attainment_is_base_over_quota(db, settings, seeded):
    result = run(db, settings, seeded)
    assert result.metric("quota").value == 500000
    assert result.metric("attainment").value == Decimal("52")
    assert result.metric("attainment").status == "behind"
    assert result.data["period"]["name"] == "FY2026 Q2"


def test_rep_bands_at_their_boundaries_and_a_quota_without_deals(db, settings, seeded):
    reps = {r["rep"]: r for r in run(db, settings, seeded).data["reps"]}
    assert (reps["Ana"]["base"], reps["Ana"]["attainment"], reps["Ana"]["band"]) == (210000, Decimal("1.2"), "crushing")
    assert (reps["Ben"]["base"], reps["Ben"]["attainment"], reps["Ben"]["band"]) == (50000, Decimal("0.5"), "behind")
    assert (reps["Cleo"]["base"], reps["Cleo"]["attainment"], reps["Cleo"]["band"]) == (0, 0, "off_track")
    assert reps["Ben"]["pipeline"] == 25000  # p1; the no-stage deal is not forecasted


@pytest.mark.parametrize("attainment, expected", [
    ("1.2", "crushing"), ("1.1999", "on_track"), ("0.9", "on_track"), ("0.8999", "at_risk"), ("0.7", "at_risk"),
    ("0.6999", "behind"), ("0.5", "behind"), ("0.4999", "off_track"), ("0", "off_track"), (None, "unknown"),
])
def test_band_boundaries(attainment, expected):
    assert band(Decimal(attainment) if attainment is not None else None) == expected


def test_week_over_week_change_on_a_second_run_after_a_deal_grew(db, settings, seeded):
    first = run(db, settings, seeded)
    assert first.metric("base").change is None
    write_deals(db, seeded, [{**next(d for d in DEALS if d["source_id"] == "b1"), "amount": 80000}])
    second = run(db, settings, seeded)
    changes = {m.key: m.change for m in second.metrics}
    # best case 50k → 80k: base and bull +30k, weighted +30k × .60 = +18k, attainment 52 % → 58 %
    assert changes["best_case"] == 30000 and changes["base"] == 30000 and changes["bull"] == 30000
    assert changes["closed_won"] == 0 and changes["commit"] == 0 and changes["bear"] == 0
    assert changes["weighted"] == 18000
    assert changes["attainment"] == 6


def test_a_previous_run_of_another_period_is_not_a_baseline(db, settings, seeded):
    run(db, settings, seeded)
    later = run(db, settings, seeded, today=date(2026, 7, 10))  # FY2026 Q3: no quota period covers it
    assert later.data["period"]["name"] == "FY2026 Q3"
    assert all(m.change is None for m in later.metrics)


def test_without_a_quota_attainment_is_none_and_the_result_says_how_to_set_one(db, settings, workspace):
    write_deals(db, workspace, DEALS)
    result = run(db, settings, workspace)
    assert result.metric("attainment").value is None
    assert result.metric("attainment").status == "unknown"
    assert result.metric("base").value == 260000
    assert any("pandora quota set" in n for n in result.notes)
    assert "no quota set" in result.headline
    assert all(r["attainment"] is None and r["band"] == "unknown" for r in result.data["reps"])


def test_evidence_names_the_deals_behind_each_category(db, settings, seeded):
    with db.connection() as conn:
        ids = {r["source_id"]: str(r["id"]) for r in conn.execute(
            "SELECT source_id, id FROM deals WHERE workspace_id = %(workspace_id)s", {"workspace_id": seeded["id"]})}
    evidence = {e.claim: e.ids for e in run(db, settings, seeded).evidence}
    assert evidence["largest closed won deals"] == [ids["w1"], ids["w2"]]
    assert evidence["largest commit deals"] == [ids["c1"], ids["c2"]]
    assert evidence["largest best case deals"] == [ids["b1"]]
    assert evidence["largest pipeline deals"] == [ids["p1"], ids["p2"]]


def test_the_run_is_recorded_with_its_output(db, settings, seeded):
    result = run(db, settings, seeded)
    with db.connection() as conn:
        row = conn.execute("SELECT status, output, timings FROM skill_runs WHERE workspace_id = %(workspace_id)s"
                           " AND id = %(id)s", {"workspace_id": seeded["id"], "id": result.run_id}).fetchone()
    assert row["status"] == "succeeded"
    assert row["output"]["headline"] == result.headline
    assert row["output"]["data"]["base"] == 260000
    assert "compute" in row["timings"]


def test_the_sql_category_rule_matches_core_stages(db):
    with db.connection() as conn:
        for stage in (*STAGES, None, "mystery"):
            for probability in (None, 0, 5, 59.99, 60, 89.99, 90, 100):
                sql_category = conn.execute(
                    f"SELECT {CATEGORY_SQL} AS c FROM (SELECT %(stage)s::text AS stage_normalized,"
                    " %(p)s::numeric AS probability, NULL::text AS forecast_category) d",
                    {"stage": stage, "p": probability}).fetchone()["c"]
                assert sql_category == forecast_category_for(stage, probability), (stage, probability)

"""pipeline-coverage against figures worked out by hand from the definitions (skills/pipeline_coverage.py).

Period FY2026 Q2 (1 April – 30 June 2026); today 20 May 2026 → 41 days left (< 42: alerts are on); target 3.0.
Hand calculation (pipeline = open deals due in the period; remaining = quota − closed won):
  rep   quota    won     pipeline                          remaining coverage  status    gap = 3×rem − pipe  alert
  Ana   100,000  40,000  60k + 30k + 90k (overdue) = 180k   60,000   3.0       on_track  0
  Ben   200,000  20,000  100k + 62k (+ no amount) = 162k    180,000  0.9       behind    378,000            high
  Cleo   30,000  30,000  5,000                              0        —         quota_met 0
  Dan   —        0       40,000                             —        —         unknown   —
  Eve   100,000  0       150,000                            100,000  1.5       behind    150,000            no (not < 1.5)
  Fay    50,000  10,000  72,000                             40,000   1.8       at_risk   48,000
  Hal    20,000  0       0                                  20,000   0         behind    60,000             high
  (none) —       0       10,000                             —        —         unknown
  team  600,000  100,000 619,000                            500,000  1.238     behind    881,000            medium
Early stage (awareness, qualification, no stage): Ana 30k of 180k; team 30k + 62k + 40k (Dan, no stage) = 132k.
Left out: Ben's lost 70k, Ben's 500k due next quarter.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from core.context import update_section
from core.db.upsert import upsert_rows
from core.quotas import set_rep_quota, upsert_quota_period
from core.settings import Settings
from skills.pipeline_coverage import assess
from skills.runtime import run_skill

TODAY = date(2026, 5, 20)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


@pytest.fixture
def settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, pandora_home=tmp_path / "home", secret_key="test-secret-key")
JUNE = date(2026, 6, 15)


def deal(sid, owner, amount, stage, close=JUNE):
    return {"source": "crm", "source_id": sid, "name": sid, "owner": owner, "amount": amount,
            "stage_normalized": stage, "close_date": close}


DEALS = [
    deal("ana_won", "Ana", 40000, "closed_won", date(2026, 4, 10)),
    deal("ana_eval", "Ana", 60000, "evaluation"),
    deal("ana_aware", "Ana", 30000, "awareness"),
    deal("ana_overdue", "Ana", 90000, "negotiation", date(2026, 5, 1)),
    deal("ben_won", "Ben", 20000, "closed_won", date(2026, 5, 5)),
    deal("ben_decision", "Ben", 100000, "decision"),
    deal("ben_qual", "Ben", 62000, "qualification"),
    deal("ben_no_amount", "Ben", None, "awareness"),
    deal("ben_lost", "Ben", 70000, "closed_lost"),
    deal("ben_next_quarter", "Ben", 500000, "negotiation", date(2026, 7, 2)),
    deal("cleo_won", "Cleo", 30000, "closed_won", date(2026, 4, 30)),
    deal("cleo_open", "Cleo", 5000, "decision"),
    deal("dan_open", "Dan", 40000, None),
    deal("eve_open", "Eve", 150000, "evaluation"),
    deal("fay_won", "Fay", 10000, "closed_won", date(2026, 6, 30)),
    deal("fay_open", "Fay", 72000, "negotiation", date(2026, 6, 30)),
    deal("nobody", None, 10000, "decision"),
]
QUOTAS = {"Ana": 100000, "Ben": 200000, "Cleo": 30000, "Eve": 100000, "Fay": 50000, "Hal": 20000}


@pytest.fixture
def seeded(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], DEALS)
        period = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1),
                                     date(2026, 6, 30), 600000)
        for name, amount in QUOTAS.items():
            set_rep_quota(conn, workspace["id"], period, name, None, amount)
    return workspace


def run(db, settings, ws, today=TODAY):
    return run_skill(db, settings, ws["id"], "pipeline-coverage", today=today)


def reps(result) -> dict:
    return {r["rep"]: r for r in result.data["reps"]}


def test_rep_coverage_status_and_gap_match_the_hand_calculation(db, settings, seeded):
    got = {name: (r["pipeline"], r["closed_won"], r["remaining"], r["coverage"], r["status"], r["gap"])
           for name, r in reps(run(db, settings, seeded)).items()}
    assert got == {
        "Ana": (180000, 40000, 60000, 3, "on_track", 0),
        "Ben": (162000, 20000, 180000, Decimal("0.9"), "behind", 378000),
        "Cleo": (5000, 30000, 0, None, "quota_met", 0),
        "Dan": (40000, 0, None, None, "unknown", None),
        "Eve": (150000, 0, 100000, Decimal("1.5"), "behind", 150000),
        "Fay": (72000, 10000, 40000, Decimal("1.8"), "at_risk", 48000),
        "Hal": (0, 0, 20000, 0, "behind", 60000),
        "Unassigned": (10000, 0, None, None, "unknown", None),
    }


def test_team_coverage_metrics(db, settings, seeded):
    m = {x.key: x for x in run(db, settings, seeded).metrics}
    assert (m["pipeline"].value, m["closed_won"].value, m["quota"].value, m["remaining"].value) == \
        (619000, 100000, 600000, 500000)
    assert m["coverage"].value == Decimal(619000) / Decimal(500000)
    assert m["coverage"].status == "behind"
    assert m["gap"].value == 881000
    assert m["target"].value == 3
    assert m["early_share"].value == Decimal(132000) / Decimal(619000) * 100
    assert m["early_share"].status == "late_heavy"
    assert m["weeks_left"].value == Decimal(41) / 7


def test_alerts_below_one_and_a_half_with_under_six_weeks_left(db, settings, seeded):
    result = run(db, settings, seeded)
    assert result.data["days_left"] == 41
    assert {a["rep"]: a["risk"] for a in result.data["alerts"]} == {"Ben": "high", "Hal": "high"}  # Eve at 1.5: no
    assert (result.data["team"]["alert"], result.data["team"]["risk"]) == (True, "medium")
    assert [s.bullets for s in result.sections if s.title == "Alerts"] == [[
        "Team: 1.24x with 41 days left (medium risk)", "Ben: 0.90x with 41 days left (high risk)",
        "Hal: 0.00x with 41 days left (high risk)"]]


def test_no_alert_with_exactly_six_weeks_left(db, settings, seeded):
    result = run(db, settings, seeded, today=date(2026, 5, 19))
    assert result.data["days_left"] == 42
    assert result.data["alerts"] == [] and result.data["team"]["alert"] is False
    assert reps(result)["Ben"]["coverage"] == Decimal("0.9")  # same figures, only the clock moved


def test_coverage_target_comes_from_the_context_layer(db, settings, seeded):
    with db.connection() as conn:
        update_section(conn, seeded["id"], "goals_and_targets", {"pipeline_coverage_target": 2})
    result = run(db, settings, seeded)
    statuses = {name: r["status"] for name, r in reps(result).items()}
    # ≥ 2 on track, ≥ 1.2 at risk
    assert (statuses["Ana"], statuses["Eve"], statuses["Fay"], statuses["Ben"]) == \
        ("on_track", "at_risk", "at_risk", "behind")
    assert result.data["team"]["status"] == "at_risk"
    assert result.data["team"]["gap"] == 381000  # 2 × 500,000 − 619,000


def test_rep_early_stage_share_and_mix(db, settings, seeded):
    r = reps(run(db, settings, seeded))
    assert (r["Ana"]["early_share"], r["Ana"]["mix"]) == (Decimal(30000) / Decimal(180000), "late_heavy")
    assert (r["Dan"]["early_share"], r["Dan"]["mix"]) == (1, "early_heavy")
    assert (r["Eve"]["early_share"], r["Eve"]["mix"]) == (0, "late_heavy")
    assert (r["Hal"]["early_share"], r["Hal"]["mix"]) == (None, None)


def test_evidence_lists_the_deals_behind_a_short_rep(db, settings, seeded):
    with db.connection() as conn:
        ids = {r["source_id"]: str(r["id"]) for r in conn.execute(
            "SELECT source_id, id FROM deals WHERE workspace_id = %(workspace_id)s", {"workspace_id": seeded["id"]})}
    evidence = {e.claim: e.ids for e in run(db, settings, seeded).evidence}
    assert evidence["Ben's open pipeline (0.90x, behind)"] == [ids["ben_decision"], ids["ben_qual"],
                                                                   ids["ben_no_amount"]]
    assert evidence["largest open deals in the period's pipeline"][:2] == [ids["eve_open"], ids["ben_decision"]]
    assert not any(claim.startswith("Ana") for claim in evidence)


def test_week_over_week_change_of_pipeline_and_coverage(db, settings, seeded):
    run(db, settings, seeded)
    with db.connection() as conn:
        upsert_rows(conn, "deals", seeded["id"], [deal("new_deal", "Eve", 50000, "decision")])
    m = {x.key: x for x in run(db, settings, seeded).metrics}
    assert m["pipeline"].change == 50000
    assert m["coverage"].change == Decimal("0.1")  # 669,000 / 500,000 − 619,000 / 500,000


def test_without_a_quota_everything_is_unknown_and_the_hint_is_shown(db, settings, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], DEALS)
    result = run(db, settings, workspace)
    assert result.data["team"]["status"] == "unknown" and result.data["team"]["coverage"] is None
    assert result.metric("pipeline").value == 619000
    assert result.data["alerts"] == []
    assert any("pandora quota set" in n for n in result.notes)


@pytest.mark.parametrize("pipeline, won, quota, days, expected", [
    (300, 0, 100, 10, ("on_track", False, None)),       # 3.0 = target
    (180, 0, 100, 10, ("at_risk", False, None)),        # 1.8 = 0.6 × target
    (179, 0, 100, 10, ("behind", False, None)),         # 1.79, but ≥ 1.5: no alert
    (149, 0, 100, 41, ("behind", True, "medium")),      # 1.49 with 41 days
    (149, 0, 100, 42, ("behind", False, None)),         # 1.49 with 42 days
    (99, 0, 100, 0, ("behind", True, "high")),          # 0.99
    (100, 0, 100, 0, ("behind", True, "medium")),       # 1.0 is medium
    (50, 100, 100, 0, ("quota_met", False, None)),
    (50, 0, None, 0, ("unknown", False, None)),
])
def test_status_and_alert_boundaries(pipeline, won, quota, days, expected):
    out = assess(Decimal(pipeline), Decimal(won), Decimal(quota) if quota else None, Decimal(3), days)
    assert (out["status"], out["alert"], out["risk"]) == expected

"""rep-scorecard against hand-made data in FY2026 Q1 (Jan 1 – Mar 31 2026, today pinned to Feb 15).

Every expected number below is worked out by hand from the definitions in the skill's docstring.
Ann (quota 100k): won A1 60k + A2 20k, lost A3; A4 50k open closing in the quarter; A5 open closing after it;
  A6 won last quarter; A7 won but deleted. Created in the quarter: A2, A4, A5.
Bob (quota 200k): won B1 50k; lost B2, B3, B4; B5 100k open closing in the quarter. Created in the quarter: B3.
Cy (no quota): won C1; C2 open. Created in the quarter: C1, C2. Never in activities; 3 conversations.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timezone
from functools import partial

import pytest

from core.quotas import set_rep_quota, upsert_quota_period
from core.workspaces import create_workspace
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="test")

TODAY = date(2026, 2, 15)


def at(y, m, d):
    return datetime(y, m, d, 12, tzinfo=timezone.utc)


def deal(sid, owner, stage, amount, close, created, **extra):
    return {"source_id": sid, "name": sid, "owner": owner, "stage_normalized": stage, "amount": amount,
            "close_date": close, "source_created_at": created, **extra}


DEALS = [
    deal("A1", "Ann", "closed_won", 60000, date(2026, 1, 20), at(2025, 11, 1)),
    deal("A2", "Ann", "closed_won", 20000, date(2026, 2, 1), at(2026, 1, 5)),
    deal("A3", "Ann", "closed_lost", 10000, date(2026, 2, 5), at(2025, 12, 1)),
    deal("A4", "Ann", "negotiation", 50000, date(2026, 3, 15), at(2026, 1, 10)),
    deal("A5", "Ann", "evaluation", 30000, date(2026, 5, 1), at(2026, 2, 1)),
    deal("A6", "Ann", "closed_won", 99000, date(2025, 12, 15), at(2025, 9, 1)),
    deal("A7", "Ann", "closed_won", 500000, date(2026, 1, 30), at(2025, 9, 1), deleted_at=at(2026, 2, 1)),
    deal("B1", "Bob", "closed_won", 50000, date(2026, 1, 15), at(2025, 10, 1)),
    deal("B2", "Bob", "closed_lost", 20000, date(2026, 1, 25), at(2025, 11, 1)),
    deal("B3", "Bob", "closed_lost", 30000, date(2026, 2, 10), at(2026, 1, 2)),
    deal("B4", "Bob", "closed_lost", 5000, date(2026, 3, 1), at(2025, 12, 1)),
    deal("B5", "Bob", "decision", 100000, date(2026, 3, 20), at(2025, 12, 20)),
    deal("C1", "Cy", "closed_won", 40000, date(2026, 2, 10), at(2026, 1, 20)),
    deal("C2", "Cy", "qualification", 10000, date(2026, 3, 30), at(2026, 2, 1)),
]


def seed(db) -> str:
    """A fresh workspace with the deals, activities, conversations and quotas described above."""
    with db.connection() as conn:
        ws = str(create_workspace(conn, f"Scorecard {os.urandom(3).hex()}")["id"])
    write(db, ws, "deals", DEALS)
    acts = [{"source_id": f"a-ann-{i}", "owner": "Ann", "activity_type": "email", "occurred_at": at(2026, 1, 5 + i)}
            for i in range(6)]
    acts += [{"source_id": "a-ann-old", "owner": "Ann", "activity_type": "call", "occurred_at": at(2025, 12, 1)},
             {"source_id": "a-bob-1", "owner": "Bob", "activity_type": "call", "occurred_at": at(2026, 1, 8)},
             {"source_id": "a-bob-2", "owner": "Bob", "activity_type": "meeting", "occurred_at": at(2026, 2, 9)},
             {"source_id": "a-bob-future", "owner": "Bob", "activity_type": "meeting", "occurred_at": at(2026, 3, 9)}]
    write(db, ws, "activities", acts)
    write(db, ws, "conversations", [
        {"source_id": "cv-ann", "owner": "Ann", "started_at": at(2026, 1, 12), "is_internal": False},
        {"source_id": "cv-ann-internal", "owner": "Ann", "started_at": at(2026, 1, 13), "is_internal": True},
        *[{"source_id": f"cv-cy-{i}", "owner": "Cy", "started_at": at(2026, 2, 1 + i)} for i in range(3)]])
    with db.connection() as conn:
        period = upsert_quota_period(conn, ws, "FY2026 Q1", "quarter", date(2026, 1, 1), date(2026, 3, 31), 300000)
        set_rep_quota(conn, ws, period, "Ann", None, 100000)
        set_rep_quota(conn, ws, period, "Bob", None, 200000)
    return ws


def scorecard(db, settings, ws):
    result = run_skill(db, settings, ws, "scorecard", today=TODAY)
    return result, {r["rep"]: r for r in result.data["reps"]}


@pytest.fixture(scope="module")
def run(module_db, module_settings):
    return scorecard(module_db, module_settings, seed(module_db))


def test_rep_figures_follow_the_period_and_skip_deleted_and_other_quarters(run):
    _, reps = run
    ann, bob, cy = reps["Ann"], reps["Bob"], reps["Cy"]
    assert (ann["won"], float(ann["won_amount"]), ann["lost"], float(ann["pipeline"])) == (2, 80000, 1, 50000)
    assert (bob["won"], float(bob["won_amount"]), bob["lost"], float(bob["pipeline"])) == (1, 50000, 3, 100000)
    assert (ann["created"], bob["created"], cy["created"]) == (3, 1, 2)
    assert (ann["activities"], bob["activities"], cy["activities"]) == (6, 2, None)  # Bob's March call is after today
    assert (ann["conversations"], bob["conversations"], cy["conversations"]) == (1, None, 3)


def test_narrow_and_broad_win_rates(run):
    result, reps = run
    assert reps["Ann"]["win_rate_narrow"] == pytest.approx(2 / 3)
    assert reps["Ann"]["win_rate_broad"] == pytest.approx(2 / 5)   # closed {A1,A2,A3} ∪ created {A2,A4,A5}
    assert reps["Bob"]["win_rate_narrow"] == pytest.approx(1 / 4)
    assert reps["Bob"]["win_rate_broad"] == pytest.approx(1 / 4)   # closed {B1..B4} ∪ created {B3}
    assert reps["Cy"]["win_rate_broad"] == pytest.approx(1 / 2)    # closed {C1} ∪ created {C1,C2}
    assert reps["Cy"]["win_rate"] is None                          # 1 closed deal < 3
    assert result.metric("win_rate_narrow").value == pytest.approx(100 * 4 / 8)
    assert result.metric("win_rate_broad").value == pytest.approx(100 * 4 / 11)


WR_AVG = (2 / 3 + 1 / 4) / 2


def test_component_scores_use_team_averages_over_reps_with_data(run):
    result, reps = run
    team = result.data["team_averages"]
    assert team["activity"] == pytest.approx((6 + 2) / 2)            # Cy is not tracked in activities
    assert team["conversations"] == pytest.approx((1 + 3) / 2)       # Bob is not tracked in conversations
    assert team["win_rate"] == pytest.approx(WR_AVG)                 # only reps with ≥ 3 closed deals
    assert team["pipeline_generation"] == pytest.approx((3 + 1 + 2) / 3)
    assert reps["Ann"]["components"] == pytest.approx({
        "attainment": 0.8 * 75, "coverage": 50000 / 20000 / 5 * 100, "activity": 6 / 4 * 60,
        "win_rate": (2 / 3) / WR_AVG * 60, "pipeline_generation": 3 / 2 * 60, "conversations": 1 / 2 * 60})
    assert reps["Bob"]["components"] == pytest.approx({
        "attainment": 0.25 * 75, "coverage": 100000 / 150000 / 5 * 100, "activity": 2 / 4 * 60,
        "win_rate": 0.25 / WR_AVG * 60, "pipeline_generation": 1 / 2 * 60})


def test_overall_score_renormalises_the_weights_of_missing_components(run):
    _, reps = run
    ann = (0.30 * 60 + 0.20 * 50 + 0.15 * 90 + 0.15 * (2 / 3) / WR_AVG * 60 + 0.10 * 90 + 0.10 * 30) / 1.0
    bob = (0.30 * 18.75 + 0.20 * 100000 / 150000 / 5 * 100 + 0.15 * 30 + 0.15 * 0.25 / WR_AVG * 60
           + 0.10 * 30) / 0.90                                       # no conversations: weights over 0.90
    cy = (0.10 * 60 + 0.10 * 90) / 0.20                                # only pipeline generation and calls
    assert (reps["Ann"]["score"], reps["Bob"]["score"], reps["Cy"]["score"]) == pytest.approx((ann, bob, cy))
    assert reps["Cy"]["breakdown"]["conversations"]["weight"] == pytest.approx(0.5)
    assert set(reps["Cy"]["breakdown"]) == {"pipeline_generation", "conversations"}


def test_result_reads_as_a_scorecard_with_evidence(run):
    result, _ = run
    assert result.headline.startswith("FY2026 Q1 rep scorecard: Cy leads at 75")
    assert result.metric("closed_won").value == 80000 + 50000 + 40000
    assert result.metric("attainment").value == pytest.approx(100 * 170000 / 300000)
    assert [row[0] for row in result.tables[0].rows] == ["Cy", "Ann", "Bob"]
    won = next(e for e in result.evidence if e.claim.startswith("Ann: deals closed won"))
    assert won.labels == ["A1", "A2"]
    assert not result.ai_written and "Written from a template" in result.sections[0].text


def test_a_met_quota_scores_full_coverage(module_db, module_settings):
    ws = seed(module_db)
    write(module_db, ws, "deals", [deal("A8", "Ann", "closed_won", 30000, date(2026, 2, 12), at(2025, 10, 1))])
    _, reps = scorecard(module_db, module_settings, ws)
    assert reps["Ann"]["components"]["attainment"] == pytest.approx(min(100, 1.1 * 75))
    assert reps["Ann"]["components"]["coverage"] == 100


def test_another_workspace_never_counts(module_db, module_settings):
    ws = seed(module_db)
    with module_db.connection() as conn:
        other = create_workspace(conn, f"Other {os.urandom(3).hex()}")["id"]
    write(module_db, other, "deals", [deal("X1", "Ann", "closed_won", 900000, date(2026, 1, 20), at(2026, 1, 2)),
                                deal("X2", "Zed", "closed_won", 1000, date(2026, 1, 20), at(2026, 1, 2))])
    _, reps = scorecard(module_db, module_settings, ws)
    assert set(reps) == {"Ann", "Bob", "Cy"} and float(reps["Ann"]["won_amount"]) == 80000

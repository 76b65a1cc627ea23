"""icp-profile on 24 hand-made closed deals (each at its own account); expected figures worked out by hand.

  Software S1-S8: S1-S6 won, S7-S8 lost; 300 employees, country US.
  Retail   R1-R8: R1-R2 won, R3-R8 lost; 40 employees, country us.
  Health   H1-H8: H1-H2 won, H3-H8 lost; H1's account has no industry but a firmographic signal saying Health.
  Plus an open Software deal and a deleted won Retail deal, which never count.
  Baseline win rate 10 / 24. Contacts: "VP of Sales" (seniority VP, department Sales) on S1-S6 and R3;
  "IT Manager" (no seniority or department: read from the title) on R1, R2, R4-R8.
"""
from __future__ import annotations

from functools import partial

import pytest

from core.errors import SkillError
from core.pipeline import run_post_sync
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="csv_import")
new_workspace = partial(support.new_workspace_id, label="ICP")


def seed_deals(db, ws, plan):
    """plan: (deal id, stage, industry, employees, country); one account per deal."""
    write(db, ws, "accounts", [{"source_id": f"acc-{d}", "name": f"Acct {d}", "industry": ind,
                                "employee_count": emp, "country": country} for d, _, ind, emp, country in plan])
    write(db, ws, "deals", [{"source_id": d, "name": d, "stage_normalized": stage, "amount": 10000,
                             "account_source_id": f"acc-{d}"} for d, stage, *_ in plan])


PLAN = ([(f"S{i}", "closed_won" if i <= 6 else "closed_lost", "Software", 300, "US") for i in range(1, 9)]
        + [(f"R{i}", "closed_won" if i <= 2 else "closed_lost", "Retail", 40, "us") for i in range(1, 9)]
        + [(f"H{i}", "closed_won" if i <= 2 else "closed_lost", None if i == 1 else "Health", None, None)
           for i in range(1, 9)]
        + [("S9", "negotiation", "Software", 300, "US")])


def seed(db) -> str:
    ws = new_workspace(db)
    seed_deals(db, ws, PLAN)
    write(db, ws, "deals", [{"source_id": "X1", "name": "X1", "stage_normalized": "closed_won", "amount": 1,
                             "account_source_id": "acc-R1", "deleted_at": "2026-01-01T00:00:00Z"}])
    write(db, ws, "contacts", [
        {"source_id": "vp1", "email": "vp@x.io", "title": "VP of Sales", "seniority": "VP", "department": "Sales",
         "custom_fields": {"associated_deals": [f"S{i}" for i in range(1, 7)] + ["R3"]}},
        {"source_id": "m1", "email": "it@x.io", "title": "IT Manager",
         "custom_fields": {"associated_deals": ["R1", "R2", "R4", "R5", "R6", "R7", "R8"]}}])
    run_post_sync(db, ws)
    with db.connection() as conn:  # no write path for account signals exists yet
        h1 = conn.execute("SELECT id FROM accounts WHERE workspace_id = %s AND source_id = 'acc-H1'", (ws,)).fetchone()
        conn.execute("INSERT INTO account_signals (workspace_id, account_id, signal_type, source, value)"
                     " VALUES (%s, %s, 'firmographic', 'manual', '{\"industry\": \"Health\"}')", (ws, h1["id"]))
    return ws


@pytest.fixture(scope="module")
def result(module_db, module_settings):
    return run_skill(module_db, module_settings, seed(module_db), "icp")


def values(result, dimension):
    return {v["value"]: v for v in result.data["firmographics"][dimension]}


def test_firmographic_lift_win_rate_and_weight_per_value(result):
    assert (result.data["closed"], result.data["won"], result.data["lost"]) == (24, 10, 14)
    assert result.data["baseline_win_rate"] == pytest.approx(10 / 24)
    industry = values(result, "industry")
    assert (industry["software"]["won"], industry["software"]["lost"]) == (6, 2)
    assert (industry["health"]["won"], industry["health"]["lost"]) == (2, 6)      # H1 via its signal
    assert industry["software"]["win_rate"] == pytest.approx(6 / 8)
    assert industry["software"]["lift"] == pytest.approx((6 / 10) / (2 / 14))
    assert industry["retail"]["lift"] == pytest.approx((2 / 10) / (6 / 14))
    assert industry["software"]["weight"] == 10                                    # min(10, 3 × 4.2)
    assert industry["retail"]["weight"] == pytest.approx(3 * (2 / 10) / (6 / 14))
    band = values(result, "employee_band")
    assert band["201-1000"]["lift"] == pytest.approx((6 / 8) / (2 / 8))             # Health has no headcount
    assert band["1-50"]["weight"] == pytest.approx(3 * (2 / 8) / (6 / 8))
    assert values(result, "country")["us"]["deals"] == 16                          # US and us are one value


def test_sweet_spots_beat_the_baseline_by_a_fifth_with_five_deals(result):
    spots = {(s["dimension"], s["value"]) for s in result.data["sweet_spots"]}
    # 0.75 > 1.2 × 10/24 = 0.5; country us wins exactly 0.5, which is not more than 1.2 × baseline
    assert spots == {("industry", "software"), ("employee_band", "201-1000")}
    assert result.headline.startswith("ICP profile v1 (descriptive, 24 closed deals): industry Software (75% win rate)")
    assert sorted(next(e for e in result.evidence if "industry Software" in e.claim).ids) == sorted(
        values(result, "industry")["software"]["won_ids"])


def test_personas_are_keyed_seniority_department_with_lift_and_weight(result):
    personas = {p["key"]: p for p in result.data["personas"]}
    assert set(personas) == {"vp:sales", "manager:it"}
    vp, it = personas["vp:sales"], personas["manager:it"]
    assert (vp["won"], vp["lost"], it["won"], it["lost"]) == (6, 1, 2, 5)
    assert vp["lift"] == pytest.approx((6 / 8) / (1 / 6)) and vp["weight"] == 10
    assert it["lift"] == pytest.approx((2 / 8) / (5 / 6)) and it["weight"] == pytest.approx(3 * (2 / 8) / (5 / 6))
    assert vp["top_titles"] == ["VP of Sales"]
    assert result.data["weights"]["personas"] == {"vp:sales": 10, "manager:it": pytest.approx(0.9)}


def test_a_second_run_supersedes_the_first_version(module_db, module_settings):
    ws = seed(module_db)
    first = run_skill(module_db, module_settings, ws, "icp")
    second = run_skill(module_db, module_settings, ws, "icp-profile")
    with module_db.connection() as conn:
        rows = conn.execute("SELECT version, status, method, sample_size, skill_run_id::text AS run, weights"
                            " FROM icp_profiles WHERE workspace_id = %s ORDER BY version", (ws,)).fetchall()
    assert [(r["version"], r["status"]) for r in rows] == [(1, "superseded"), (2, "active")]
    assert [r["run"] for r in rows] == [first.run_id, second.run_id]
    assert (rows[1]["method"], rows[1]["sample_size"]) == ("descriptive", 24)
    assert rows[1]["weights"]["firmographics"]["industry"]["software"] == 10
    assert second.data["version"] == 2 and second.notes == ["Superseded 1 earlier profile version."]


def test_fewer_than_twenty_closed_deals_stop_with_a_clear_message(module_db, module_settings):
    ws = new_workspace(module_db)
    seed_deals(module_db, ws, [(f"D{i}", "closed_won" if i < 10 else "closed_lost", "Software", 100, "US")
                         for i in range(19)])
    run_post_sync(module_db, ws)
    with pytest.raises(SkillError, match=r"needs at least 20 closed deals .* has 19 \(10 won, 9 lost\)"):
        run_skill(module_db, module_settings, ws, "icp")
    with module_db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM icp_profiles WHERE workspace_id = %s", (ws,)).fetchone()["n"] == 0

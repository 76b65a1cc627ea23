"""lead-scoring with today pinned to 2026-03-01; expected scores worked out by hand from the skill's docstring."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import partial

import pytest

from core.pipeline import run_post_sync
from skills.lead_scoring import grade
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="csv_import")
new_workspace = partial(support.new_workspace_id, label="Leads")

TODAY = date(2026, 3, 1)
CHANNELS = ("email", "call", "meeting")


def ago(days: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), datetime.min.time(), timezone.utc) + timedelta(hours=12)


def touches(who: str, days: list[int], channels: int, **extra) -> list[dict]:
    """Activities on the given days ago, cycling through the first `channels` channels."""
    return [{"source_id": f"{who}-{i}", "activity_type": CHANNELS[i % channels], "occurred_at": ago(d),
             "direction": "outbound", "participants": [{"email": f"{who}@x.io"}], **extra}
            for i, d in enumerate(days)]


def scores(db, ws_id) -> dict[str, dict]:
    with db.connection() as conn:
        return {r["name"]: r for r in conn.execute(
            "SELECT COALESCE(l.email, c.email) AS name, s.score::float AS score, s.grade, s.breakdown,"
            "       s.icp_profile_id, s.updated_at FROM lead_scores s"
            "  LEFT JOIN leads l ON l.workspace_id = s.workspace_id AND l.id = s.entity_id AND s.entity_type = 'lead'"
            "  LEFT JOIN contacts c ON c.workspace_id = s.workspace_id AND c.id = s.entity_id"
            "   AND s.entity_type = 'contact' WHERE s.workspace_id = %s", (ws_id,)).fetchall()}


def test_grade_boundaries():
    assert [grade(s) for s in (100, 80, 79.99, 60, 59.99, 40, 39.99, 20, 19.99, 0)] == \
        ["A", "A", "B", "B", "C", "C", "D", "D", "F", "F"]


def test_engagement_points_give_grades_at_their_boundaries(module_db, module_settings):
    # No ICP profile, no rating, no create date, nothing inbound: engagement (max 25 points) is the only pillar.
    db, settings, ws = module_db, module_settings, new_workspace(module_db)
    write(db, ws, "leads", [{"source_id": n, "email": f"{n}@x.io"} for n in ("ace", "bea", "cal", "dee", "eve", "fay")])
    write(db, ws, "activities", [
        # recency 8 (2 d) + volume ⌊15/5⌋ 3 + 3 channels 5 + ⌊12 days/3⌋ 4 = 20 → 80
        *touches("ace", [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 2, 3, 4], 3),
        # 8 + 3 + 5 + ⌊9/3⌋ 3 = 19 → 76
        *touches("bea", [2, 3, 4, 5, 6, 7, 8, 9, 10, 2, 3, 4, 5, 6, 7], 3),
        # recency 5 (10 d) + 3 + 5 + ⌊6/3⌋ 2 = 15 → 60
        *touches("cal", [10, 11, 12, 13, 14, 15, 10, 11, 12, 13, 14, 15, 10, 11, 12], 3),
        # 5 + ⌊5/5⌋ 1 + 2 channels 3 + ⌊5/3⌋ 1 = 10 → 40
        *touches("dee", [10, 11, 12, 13, 14], 2),
        # recency 2 (20 d) + 0 + 2 channels 3 + ⌊2/3⌋ 0 = 5 → 20
        *touches("eve", [20, 21], 2)])
    result = run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    got = {name: (s["score"], s["grade"]) for name, s in scores(db, ws).items()}
    assert got == {"ace@x.io": (80, "A"), "bea@x.io": (76, "B"), "cal@x.io": (60, "B"), "dee@x.io": (40, "C"),
                   "eve@x.io": (20, "D"), "fay@x.io": (0, "F")}     # fay: never touched, so 0 engagement
    ace = scores(db, ws)["ace@x.io"]["breakdown"]
    assert ace["pillars"]["engagement"]["points"] == {"recency": 8, "volume": 3, "channels": 5, "active_days": 4}
    assert ace["missing"] == ["fit", "intent", "timing"] and ace["pillars"]["engagement"]["weight"] == 1
    assert result.data["grades"] == {"A": 1, "B": 2, "C": 1, "D": 1, "F": 1}
    assert result.evidence[0].ids == [r["entity_id"] for r in result.data["scored"] if r["label"] == "ace@x.io"]


def icp_workspace(db) -> str:
    """20 closed deals (10 Software / 300 staff won, 10 Retail / 40 staff lost) for an ICP profile, plus:
    kim — a contact at a Software account with 300 staff, on open deal K1 (decision, closing in 30 days), created
    10 days ago, one inbound email 3 days ago; lou — a Hot Retail lead with 40 staff, created 45 days ago."""
    ws = new_workspace(db)
    closed = [(f"S{i}", "closed_won", "Software", 300) for i in range(10)] + \
             [(f"R{i}", "closed_lost", "Retail", 40) for i in range(10)]
    write(db, ws, "accounts", [{"source_id": f"a-{d}", "name": f"Acct {d}", "industry": ind, "employee_count": emp}
                               for d, _, ind, emp in closed]
          + [{"source_id": "kimco", "name": "Kimco", "industry": "software", "employee_count": 300}])
    write(db, ws, "deals", [{"source_id": d, "name": d, "stage_normalized": st, "amount": 1000,
                             "account_source_id": f"a-{d}"} for d, st, *_ in closed]
          + [{"source_id": "K1", "name": "K1", "stage_normalized": "decision", "amount": 5000,
              "close_date": TODAY + timedelta(days=30), "account_source_id": "kimco"}])
    write(db, ws, "contacts", [{"source_id": "kim", "email": "kim@x.io", "account_source_id": "kimco",
                                "source_created_at": ago(10), "custom_fields": {"associated_deals": ["K1"]}}])
    write(db, ws, "leads", [{"source_id": "lou", "email": "lou@x.io", "industry": "Retail", "employee_count": 40,
                             "title": "VP of Sales", "rating": "Hot", "source_created_at": ago(45)}])
    write(db, ws, "activities", [{"source_id": "kim-1", "activity_type": "email", "direction": "inbound",
                                  "occurred_at": ago(3), "contact_source_id": "kim"}])
    run_post_sync(db, ws)
    return ws


def test_pillars_combine_and_a_missing_fit_pillar_is_redistributed(module_db, module_settings):
    db, settings, ws = module_db, module_settings, icp_workspace(module_db)
    engagement = (8 + 0 + 1 + 0) / 25 * 100          # 1 touch 3 days ago, one channel, one active day
    intent = (5 + 0 + 3 / 4 * 5 + 0) / 20 * 100        # inbound + decision stage (index 3)
    timing = (8 + 0 + 3 + 4) / 15 * 100                # created 10 d ago, close date set, due within 180 d
    run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    kim = scores(db, ws)["kim@x.io"]
    assert kim["score"] == pytest.approx((0.30 * engagement + 0.25 * intent + 0.10 * timing) / 0.65, abs=0.01)
    assert kim["breakdown"]["missing"] == ["fit"] and kim["icp_profile_id"] is None

    icp = run_skill(db, settings, ws, "icp")
    result = run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    got = scores(db, ws)
    kim, lou = got["kim@x.io"], got["lou@x.io"]
    fit = (10 + 10) / 20 * 100                          # industry software and 201-1000 staff both weigh 10
    assert kim["breakdown"]["pillars"]["fit"]["points"] == {"industry": 10, "employee_band": 10}
    assert kim["score"] == pytest.approx(0.35 * fit + 0.30 * engagement + 0.25 * intent + 0.10 * timing, abs=0.01)
    assert kim["grade"] == "B" and str(kim["icp_profile_id"]) == icp.data["profile_id"]
    # lou: retail and 1-50 staff weigh 0; never touched; Hot rating 5 of 15; created 45 d ago 4 of 8
    assert lou["score"] == pytest.approx(0.35 * 0 + 0.30 * 0 + 0.25 * (5 / 15 * 100) + 0.10 * 50, abs=0.01)
    assert lou["grade"] == "F"
    assert result.headline.startswith("Lead scores: 0 A and 1 B of 2 leads and contacts (ICP profile v1)")


def test_a_rerun_writes_nothing_and_out_of_scope_scores_go(module_db, module_settings):
    db, settings, ws = module_db, module_settings, icp_workspace(module_db)
    first = run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    before = scores(db, ws)
    again = run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    assert first.data["written"] == {"inserted": 2, "updated": 0, "removed": 0}
    assert again.data["written"] == {"inserted": 0, "updated": 0, "removed": 0}
    assert scores(db, ws) == before
    write(db, ws, "leads", [{"source_id": "lou", "email": "lou@x.io", "industry": "Retail", "employee_count": 40,
                             "title": "VP of Sales", "rating": "Hot", "source_created_at": ago(45),
                             "is_converted": True}])
    write(db, ws, "activities", [{"source_id": "kim-2", "activity_type": "call", "occurred_at": ago(1),
                                  "contact_source_id": "kim"}])
    run_post_sync(db, ws)
    changed = run_skill(db, settings, ws, "lead-scoring", today=TODAY)
    assert changed.data["written"] == {"inserted": 0, "updated": 1, "removed": 1}
    assert set(scores(db, ws)) == {"kim@x.io"}

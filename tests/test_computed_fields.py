"""The computed-fields step against hand calculations from the formulas in core/pipeline/computed.py.

The step is run on its own (a PipelineRun with a pinned as_of) so other steps (the linker, internal-meeting
classification) cannot move the hand-made links; references are written as ids through the upsert path."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.context import get_context, update_section
from core.db.upsert import upsert_rows
from core.pipeline import PipelineRun, run_post_sync
from core.pipeline.associations import infer_associations
from core.pipeline.computed import compute_fields

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
REP = {"name": "Rita Rep", "email": "rita@democo.io", "affiliation": "internal"}


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


def ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def day(offset: int) -> str:
    return (AS_OF.date() + timedelta(days=offset)).isoformat()


def write(db, ws, table, rows):
    with db.connection() as conn:
        upsert_rows(conn, table, ws["id"], [{"source": "crm", **r} for r in rows])


def ids(db, ws, table) -> dict[str, str]:
    with db.connection() as conn:
        return {r["source_id"]: r["id"] for r in conn.execute(
            f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws["id"],))}


def compute(db, ws, as_of=AS_OF, since=None) -> dict[str, int]:
    with db.connection() as conn:
        return compute_fields(conn, PipelineRun(str(ws["id"]), since, get_context(conn, ws["id"]), as_of))


def row(db, ws, table, source_id) -> dict:
    with db.connection() as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE workspace_id = %s AND source_id = %s",
                            (ws["id"], source_id)).fetchone()


def db_now(db):
    with db.connection() as conn:
        return conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]


def deal(source_id, **fields):
    return {"source_id": source_id, "name": source_id, "stage": fields.get("stage_normalized"), **fields}


@pytest.fixture
def risky(db, workspace):
    """A negotiation deal, 80 days old, 30 days in stage, due 3 days ago, touched once 20 days ago by one contact."""
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "jane@acme.io"}])
    write(db, workspace, "deals", [deal("risky", stage_normalized="negotiation", probability=70, amount=80000,
                                        source_created_at=ago(80), stage_entered_at=ago(30), close_date=day(-3))])
    d, c = ids(db, workspace, "deals"), ids(db, workspace, "contacts")
    write(db, workspace, "activities", [{"source_id": "a1", "activity_type": "email", "direction": "outbound",
                                         "occurred_at": ago(20), "deal_id": d["risky"], "contact_id": c["c1"]}])
    return workspace


def test_stale_past_due_single_threaded_deal_gets_exactly_its_risk_factors(db, risky):
    compute(db, risky)
    r = row(db, risky, "deals", "risky")
    assert r["deal_risk_factors"] == [
        {"factor": "stale", "points": 20, "detail": "no activity for 20 days (stale at 14)"},
        {"factor": "past_close_date", "points": 25, "detail": "close date 2026-02-27 passed 3 days ago"},
        {"factor": "single_threaded", "points": 15, "detail": "1 engaged contact(s), fewer than 2"},
        {"factor": "long_in_stage", "points": 10, "detail": "30 days in negotiation, over 25% of the 90-day cycle"},
        {"factor": "thin_activity", "points": 10, "detail": "1 activities in total, fewer than 3"},
    ]
    assert r["deal_risk"] == 80
    assert r["health_score"] == 20  # 100 - 80, no engagement modifier
    assert r["days_in_stage"] == 30
    assert r["last_activity_at"] == ago(20)


def test_context_layer_thresholds_change_the_factors(db, risky):
    with db.connection() as conn:
        update_section(conn, risky["id"], "goals_and_targets",
                       {"thresholds": {"stale_deal_days": 7, "critical_stale_days": 15, "min_contacts_per_deal": 1}})
        update_section(conn, risky["id"], "business_model", {"sales_cycle_days": 200})
    compute(db, risky)
    r = row(db, risky, "deals", "risky")
    assert [(f["factor"], f["points"]) for f in r["deal_risk_factors"]] == [
        ("critically_stale", 30), ("past_close_date", 25), ("thin_activity", 10)]
    assert r["deal_risk_factors"][0]["detail"] == "no activity for 20 days (critical at 15)"
    assert r["deal_risk"] == 65


def test_healthy_active_deal_gets_the_engagement_bonus(db, workspace):
    write(db, workspace, "contacts", [{"source_id": f"c{i}", "email": f"p{i}@acme.io"} for i in (1, 2, 3)])
    write(db, workspace, "deals", [deal("good", stage_normalized="evaluation", probability=15, amount=100000,
                                        source_created_at=ago(20), stage_entered_at=ago(5), close_date=day(5))])
    d, c = ids(db, workspace, "deals"), ids(db, workspace, "contacts")
    write(db, workspace, "activities", [
        {"source_id": "e1", "activity_type": "email", "direction": "outbound", "occurred_at": ago(2),
         "deal_id": d["good"], "contact_id": c["c1"]},
        {"source_id": "e2", "activity_type": "email", "direction": "inbound", "occurred_at": ago(3),
         "deal_id": d["good"], "contact_id": c["c2"]},
        {"source_id": "m1", "activity_type": "meeting", "occurred_at": ago(8), "deal_id": d["good"],
         "contact_id": c["c1"]},
    ])
    write(db, workspace, "conversations", [{"source_id": "v1", "started_at": ago(4), "is_internal": False,
                                            "deal_id": d["good"], "contact_id": c["c3"],
                                            "participants": [REP, {"email": "p3@acme.io", "affiliation": "external"}]}])
    compute(db, workspace)
    r = row(db, workspace, "deals", "good")
    # closing in 5 days (+10), probability 15 (+15); 4 touches from 3 contacts, last 2 days ago.
    assert [(f["factor"], f["points"]) for f in r["deal_risk_factors"]] == [("closing_soon", 10), ("low_probability", 15)]
    assert r["deal_risk_factors"][1]["detail"] == "probability 15% (below 20%)"
    assert r["deal_risk"] == 25
    assert r["health_score"] == 90  # 100 - 25 + 10 (conversation within 14 d) + 5 (>= 3 touches within 30 d)
    # velocity: amount 2x average 25 + 15% of 25 = 3.75 + pace min(90/20, 2) x 10 = 20 + fresh 10 + close 20
    assert r["velocity_score"] == Decimal("78.75")


def test_unanswered_outreach_lowers_health(db, workspace):
    write(db, workspace, "deals", [deal("ghost", stage_normalized="evaluation", probability=50,
                                         source_created_at=ago(20), stage_entered_at=ago(5), close_date=day(40))])
    d = ids(db, workspace, "deals")
    write(db, workspace, "activities", [{"source_id": f"e{i}", "activity_type": "email", "direction": "outbound",
                                         "occurred_at": ago(i), "deal_id": d["ghost"]} for i in (1, 2, 3)])
    compute(db, workspace)
    r = row(db, workspace, "deals", "ghost")
    assert [f["factor"] for f in r["deal_risk_factors"]] == ["single_threaded"]
    assert r["health_score"] == 80  # 100 - 15 + 5 (3 touches within 30 d) - 10 (3 outbound, nothing back)


def test_velocity_of_a_specific_deal(db, workspace):
    write(db, workspace, "deals", [
        deal("v", stage_normalized="decision", probability=40, amount=25000, source_created_at=ago(180),
             stage_entered_at=ago(20), close_date=day(45)),
        deal("v_default_probability", stage_normalized="decision", amount=25000, source_created_at=ago(180),
             stage_entered_at=ago(20), close_date=day(45)),
    ])
    compute(db, workspace)
    # 12.5 x 0.5 = 6.25 + 25 x 0.40 = 10 + 10 x min(90/180, 2) = 5 + fresh (20 d) 4 + close in 45 d 12
    assert row(db, workspace, "deals", "v")["velocity_score"] == Decimal("37.25")
    # no probability: the decision stage's default 60 % -> 15 instead of 10
    assert row(db, workspace, "deals", "v_default_probability")["velocity_score"] == Decimal("42.25")


def test_days_in_stage_from_stage_entered_at_then_history_then_creation(db, workspace):
    write(db, workspace, "deals", [
        deal("entered", stage_normalized="qualification", stage_entered_at=ago(10.25), source_created_at=ago(40)),
        deal("history", stage_normalized="decision", source_created_at=ago(80)),
        deal("created", stage_normalized="awareness", source_created_at=ago(12.9)),
    ])
    write(db, workspace, "deal_stage_history", [
        {"source_id": f"h{i}", "deal_source_id": "history", "deal_id": ids(db, workspace, "deals")["history"],
         "stage": stage, "stage_normalized": stage, "entered_at": ago(days)}
        for i, (stage, days) in enumerate([("qualification", 70), ("decision", 60), ("qualification", 40),
                                           ("decision", 30.5)])
    ])
    compute(db, workspace)
    assert row(db, workspace, "deals", "entered")["days_in_stage"] == 10
    assert row(db, workspace, "deals", "history")["days_in_stage"] == 30  # latest entry into decision
    assert row(db, workspace, "deals", "created")["days_in_stage"] == 12
    factors = {f["factor"]: f for f in row(db, workspace, "deals", "history")["deal_risk_factors"]}
    assert factors["stage_regression"] == {"factor": "stage_regression", "points": 10,
                                           "detail": "moved back from decision to qualification on 2026-01-21"}
    assert "stage_regression" not in {f["factor"] for f in row(db, workspace, "deals", "entered")["deal_risk_factors"]}


def test_last_activity_is_the_latest_touch_and_ignores_internal_and_future_ones(db, workspace):
    write(db, workspace, "deals", [deal("d", stage_normalized="evaluation", source_created_at=ago(30))])
    d = ids(db, workspace, "deals")["d"]
    write(db, workspace, "activities", [
        {"source_id": "a_old", "activity_type": "email", "occurred_at": ago(5), "deal_id": d},
        {"source_id": "a_future", "activity_type": "meeting", "occurred_at": ago(-1), "deal_id": d},
    ])
    write(db, workspace, "calls", [{"source_id": "k", "occurred_at": ago(3), "deal_id": d}])
    write(db, workspace, "conversations", [
        {"source_id": "ext", "started_at": ago(4), "is_internal": False, "deal_id": d},
        {"source_id": "int", "started_at": ago(1), "is_internal": True, "deal_id": d, "participants": [REP]},
    ])
    compute(db, workspace)
    r = row(db, workspace, "deals", "d")
    assert r["last_activity_at"] == ago(3)  # the call
    assert "thin_activity" not in {f["factor"] for f in r["deal_risk_factors"]}  # email, call, external meeting


@pytest.fixture
def acme(db, workspace):
    """One account with an engaged open deal, a stalled open deal, a won deal and four contacts; one account with
    only a lost deal; one empty account."""
    write(db, workspace, "accounts", [{"source_id": s, "name": s} for s in ("acme", "lostco", "empty")])
    a = ids(db, workspace, "accounts")
    on_deals = {"jane": ["open"], "raj": ["open"], "bob": ["won"], "amy": []}  # -> deal_contacts, by the associations step
    write(db, workspace, "contacts", [{"source_id": s, "email": f"{s}@acme.io", "account_id": a["acme"],
                                       "custom_fields": {"associated_deals": names}} for s, names in on_deals.items()])
    write(db, workspace, "deals", [
        deal("open", stage_normalized="evaluation", probability=50, amount=50000, account_id=a["acme"],
             source_created_at=ago(30), stage_entered_at=ago(10), close_date=day(40)),
        deal("stalled", stage_normalized="qualification", probability=20, account_id=a["acme"],
             source_created_at=ago(100), stage_entered_at=ago(50), close_date=day(-5)),
        deal("won", stage_normalized="closed_won", probability=100, amount=30000, account_id=a["acme"],
             source_created_at=ago(300), stage_entered_at=ago(200), close_date=day(-200)),
        deal("lost", stage_normalized="closed_lost", account_id=a["lostco"], source_created_at=ago(100)),
    ])
    with db.connection() as conn:
        infer_associations(conn, PipelineRun(str(workspace["id"])))
    d, c = ids(db, workspace, "deals"), ids(db, workspace, "contacts")
    on_open = {"deal_id": d["open"], "account_id": a["acme"]}
    write(db, workspace, "activities", [
        {"source_id": "e1", "activity_type": "email", "direction": "outbound", "occurred_at": ago(2),
         "contact_id": c["jane"], **on_open},
        {"source_id": "m1", "activity_type": "meeting", "occurred_at": ago(20), "contact_id": c["jane"], **on_open},
        {"source_id": "n1", "activity_type": "note", "occurred_at": ago(45), "contact_id": c["bob"],
         "account_id": a["acme"]},
        {"source_id": "old", "activity_type": "email", "occurred_at": ago(100), "contact_id": c["jane"],
         "deal_id": d["won"], "account_id": a["acme"]},
    ])
    write(db, workspace, "calls", [{"source_id": "k1", "direction": "outbound", "occurred_at": ago(40),
                                    "contact_id": c["jane"], **on_open}])
    # Linked to jane AND listing her (in capitals): one conversation, counted once.
    write(db, workspace, "conversations", [{"source_id": "v1", "started_at": ago(10), "is_internal": False,
                                            "contact_id": c["jane"], **on_open,
                                            "participants": [REP, {"email": "JANE@acme.io", "affiliation": "external"}]}])
    return workspace


def test_contact_engagement_from_recency_volume_channels_and_open_deals(db, acme):
    compute(db, acme)
    score = {s: row(db, acme, "contacts", s)["engagement_score"] for s in ("jane", "bob", "amy", "raj")}
    # jane: last touch 2 d ago 30 + volume (email 2 + meeting 10 + conversation 10 + call 5) 27
    #       + channels email/meeting/call 15 + on an open deal 15 (the 100-day-old email is outside 90 d)
    # bob: last touch 45 d ago 0 + note 1 + no channel + only on a won deal; amy: nothing; raj: on the open deal
    assert score == {"jane": 87, "bob": 1, "amy": None, "raj": 15}
    assert row(db, acme, "contacts", "jane")["last_activity_at"] == ago(2)
    assert row(db, acme, "contacts", "raj")["last_activity_at"] is None


def test_participant_email_match_counts_a_conversation_for_the_contact(db, workspace):
    write(db, workspace, "contacts", [{"source_id": "lee", "email": "Lee@Globex.com"}])
    write(db, workspace, "conversations", [{"source_id": "v", "started_at": ago(8), "is_internal": False,
                                            "participants": [REP, {"email": "lee@globex.com", "affiliation": "external"}]}])
    compute(db, workspace)
    r = row(db, workspace, "contacts", "lee")
    assert r["last_activity_at"] == ago(8)
    assert r["engagement_score"] == 35  # 8 days: 20 + meeting weight 10 + one channel 5


def test_account_health_from_recency_pipeline_wins_and_contacts(db, acme):
    compute(db, acme)
    open_deal, stalled = row(db, acme, "deals", "open"), row(db, acme, "deals", "stalled")
    assert (open_deal["deal_risk"], open_deal["health_score"]) == (0, 100)  # 100 + 10 + 5, clamped
    assert open_deal["velocity_score"] == 64  # 12.5 + 12.5 + 20 + 7 (10 d in stage) + 12 (40 d to close)
    # no activity 15 + past due 25 + no contacts 15 + 100 d old 15 + 50 d in stage 20 + p 20 -> 5 + thin 10 = 105
    assert sum(f["points"] for f in stalled["deal_risk_factors"]) == 105
    assert (stalled["deal_risk"], stalled["health_score"]) == (100, 0)
    acme_row = row(db, acme, "accounts", "acme")
    # last touch 2 d ago 30 + 0.3 x avg(100, 0) 15 + a won deal 20 + 2 contacts touched within 90 d 15
    assert acme_row["health_score"] == 80
    assert acme_row["last_activity_at"] == ago(2)
    # only a lost deal: recency 0 + no open deals 15 + only losses 0 + no contacts 0; nothing at all: NULL
    assert row(db, acme, "accounts", "lostco")["health_score"] == 15
    assert row(db, acme, "accounts", "empty")["health_score"] is None


def test_closed_deals_keep_last_activity_and_lose_their_scores(db, acme):
    compute(db, acme)
    won = row(db, acme, "deals", "won")
    assert won["last_activity_at"] == ago(100)
    assert (won["days_in_stage"], won["velocity_score"], won["deal_risk"], won["health_score"]) == (None,) * 4
    assert won["deal_risk_factors"] == []
    write(db, acme, "deals", [deal("stalled", stage_normalized="closed_lost", probability=20,
                                   account_id=row(db, acme, "accounts", "acme")["id"], source_created_at=ago(100),
                                   stage_entered_at=ago(50), close_date=day(-5))])
    compute(db, acme)
    lost = row(db, acme, "deals", "stalled")
    assert (lost["deal_risk"], lost["health_score"], lost["deal_risk_factors"]) == (None, None, [])


def test_a_second_run_changes_nothing_and_never_touches_updated_at(db, acme):
    def updated_at():
        return {(t, s): row(db, acme, t, s)["updated_at"] for t in ("deals", "contacts", "accounts") for s in ids(db, acme, t)}

    before = updated_at()
    # the lost deal (closed, never touched), amy (never touched) and the empty account stay as stored
    assert compute(db, acme) == {"deals": 3, "contacts": 3, "accounts": 2}
    assert compute(db, acme) == {}
    assert updated_at() == before


def test_other_workspaces_are_left_alone(db, risky):
    from core.workspaces import create_workspace

    with db.connection() as conn:
        other = create_workspace(conn, "Other tenant")
    write(db, other, "deals", [deal("risky", stage_normalized="negotiation", source_created_at=ago(80))])
    compute(db, risky)
    assert row(db, other, "deals", "risky")["deal_risk"] is None
    assert row(db, risky, "deals", "risky")["deal_risk"] == 80


def test_the_step_runs_in_the_post_sync_pipeline(db, risky):
    first = {s["name"]: s["changed"] for s in run_post_sync(db, risky["id"], as_of=AS_OF)}
    second = {s["name"]: s["changed"] for s in run_post_sync(db, risky["id"], as_of=AS_OF)}
    assert first["computed_deals"]["deals"] == 1
    assert second["computed_deals"] == second["computed_contacts"] == second["computed_accounts"] == {}


def test_incremental_run_recomputes_the_changed_deal_like_a_full_run(db, acme):
    compute(db, acme)
    since = db_now(db)
    assert compute(db, acme, since=since) == {}  # nothing changed since
    d, c = ids(db, acme, "deals"), ids(db, acme, "contacts")
    write(db, acme, "activities", [{"source_id": "e2", "activity_type": "email", "direction": "inbound",
                                    "occurred_at": ago(1), "deal_id": d["stalled"], "contact_id": c["amy"],
                                    "account_id": row(db, acme, "accounts", "acme")["id"]}])
    assert compute(db, acme, since=since) == {"deals": 1, "contacts": 1, "accounts": 1}
    stalled = row(db, acme, "deals", "stalled")
    # now touched 1 day ago by one contact: past due 25 + single 15 + long cycle 15 + 50 d in stage 20 halved
    # to 10 (active within 7 d) + p 20 -> 5 + thin 10 = 80; health 100 - 80 + 0
    assert [(f["factor"], f["points"]) for f in stalled["deal_risk_factors"]] == [
        ("past_close_date", 25), ("single_threaded", 15), ("long_cycle", 15), ("long_in_stage", 10),
        ("low_probability", 5), ("thin_activity", 10)]
    assert (stalled["deal_risk"], stalled["health_score"]) == (80, 20)
    assert row(db, acme, "contacts", "amy")["engagement_score"] == 37  # 30 + email 2 + one channel 5
    assert row(db, acme, "accounts", "acme")["health_score"] == 88  # 30 + 0.3 x avg(100, 20) 18 + 20 + 3 contacts 20
    assert compute(db, acme) == {}  # a full run agrees with what the incremental one wrote


def test_a_deleted_contact_is_no_thread_of_the_deals_that_still_name_it(db, acme):
    """raj is on the open deal only through its CRM association (deal_contacts), jane also through her touches.
    Deleted in the CRM, raj still has the association row until a sync drops it, and a call names him: the deal
    counts one engaged contact (single-threaded), incrementally as in a full run, and two again on a restore."""
    compute(db, acme)
    d, c, a = ids(db, acme, "deals"), ids(db, acme, "contacts"), ids(db, acme, "accounts")
    write(db, acme, "calls", [{"source_id": "k2", "direction": "inbound", "occurred_at": ago(60),
                               "contact_id": c["raj"], "deal_id": d["stalled"], "account_id": a["acme"]}])
    compute(db, acme)
    assert "single_threaded" not in {f["factor"] for f in row(db, acme, "deals", "open")["deal_risk_factors"]}
    stalled = row(db, acme, "deals", "stalled")["deal_risk_factors"]
    assert {"factor": "single_threaded", "points": 15, "detail": "1 engaged contact(s), fewer than 2"} in stalled

    raj = {"source_id": "raj", "email": "raj@acme.io", "account_id": a["acme"],
           "custom_fields": {"associated_deals": ["open"]}}
    since = db_now(db)
    write(db, acme, "contacts", [{**raj, "deleted_at": db_now(db)}])
    compute(db, acme, since=since)
    open_deal = row(db, acme, "deals", "open")
    assert {"factor": "single_threaded", "points": 15,
            "detail": "1 engaged contact(s), fewer than 2"} in open_deal["deal_risk_factors"]
    assert open_deal["deal_risk"] == 15 and open_deal["health_score"] == 100  # 100 - 15 + 10 + 5, clamped
    assert {"factor": "single_threaded", "points": 15,
            "detail": "0 engaged contact(s), fewer than 2"} in row(db, acme, "deals", "stalled")["deal_risk_factors"]
    assert compute(db, acme) == {}  # a full run agrees with what the incremental one wrote

    since = db_now(db)
    write(db, acme, "contacts", [{**raj, "deleted_at": None}])
    compute(db, acme, since=since)
    assert "single_threaded" not in {f["factor"] for f in row(db, acme, "deals", "open")["deal_risk_factors"]}
    assert compute(db, acme) == {}


def test_incremental_compute_fields_scores_a_participant_of_a_new_conversation(db, acme):
    """compute_fields, used outside the pipeline's scheduler, finds the contacts a conversation written since
    names (the contact_scope step's work) as the pipeline does."""
    compute(db, acme)
    since = db_now(db)
    write(db, acme, "conversations", [{"source_id": "v2", "started_at": ago(1), "is_internal": False,
                                       "participants": [REP, {"email": "amy@acme.io", "affiliation": "external"}]}])
    assert compute(db, acme, since=since)["contacts"] == 1
    assert row(db, acme, "contacts", "amy")["engagement_score"] is not None
    assert compute(db, acme) == {}

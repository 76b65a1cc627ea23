"""pipeline-hygiene against hand counts from the definitions in skills/pipeline_hygiene.py.

One database for the module, one workspace per dataset (every statement filters on workspace_id). Computed columns
(last_activity_at) are written in the test rows, so the figures depend on nothing but the skill.
Today is pinned to Monday 2 March 2026; stale = 14 days, critical = 30 (the context defaults)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import partial

import pytest

from core.context import update_section
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="crm")
new_workspace = support.new_workspace

TODAY = date(2026, 3, 2)


def at(days_ago: int, hour: int = 10) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), tzinfo=timezone.utc)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def ids(db, ws) -> dict[str, str]:
    with db.connection() as conn:
        return {r["source_id"]: str(r["id"]) for r in conn.execute(
            "SELECT source_id, id FROM deals WHERE workspace_id = %s", (ws["id"],))}


def deal(source_id, stage, amount, quiet, created, close, owner="Ann", next_step="follow up", **more):
    """quiet: days since last activity (None = never active); created: days since creation; close: offset."""
    return {"source_id": source_id, "name": source_id, "stage": stage, "stage_normalized": stage, "amount": amount,
            "last_activity_at": at(quiet) if quiet is not None else None, "source_created_at": at(created),
            "close_date": day(close) if close is not None else None, "owner": owner, "next_step": next_step, **more}


def seed(db, ws):
    write(db, ws, "deals", [
        deal("quiet13", "evaluation", 10000, 13, 100, 60),
        deal("stale14", "negotiation", 20000, 14, 100, 45),                     # exactly the threshold: stale
        deal("stale29", "decision", 40000, 29, 300, 40, owner="Bob", next_step="  "),
        deal("crit30", "qualification", 80000, 30, 100, 90, owner="Bob"),
        deal("never", None, None, None, 40, None, owner=None, next_step=None),  # no activity: stale since creation
        deal("fresh", "awareness", 5000, None, 3, 80),
        deal("due_today", "evaluation", 15000, 1, 50, 0, owner=None, owner_email="sam@democo.io"),
        deal("due_yday", "decision", 25000, 2, 50, -1, owner="Bob"),
        deal("regress", "qualification", 30000, 1, 70, 20),
        deal("zero", "evaluation", 0, 2, 20, 10),
        # Never flagged: closed (however stale, overdue or incomplete) or deleted.
        deal("won", "closed_won", 100000, 100, 200, -50, owner=None, next_step=None),
        deal("lost", "closed_lost", None, None, 200, -10, owner=None, next_step=None),
        deal("gone", "evaluation", 70000, 60, 100, -5, owner=None, next_step=None, deleted_at=at(1)),
    ])
    d = ids(db, ws)

    def moves(source_id, *steps):
        return [{"source_id": f"{source_id}-{i}", "deal_id": d[source_id], "deal_source_id": source_id,
                 "stage": stage, "stage_normalized": stage, "entered_at": at(ago)} for i, (stage, ago) in enumerate(steps)]

    write(db, ws, "deal_stage_history", [
        *moves("regress", ("qualification", 60), ("evaluation", 30), ("qualification", 10)),
        *moves("crit30", ("evaluation", 150), ("qualification", 90)),    # back exactly 90 days ago: counts
        *moves("quiet13", ("evaluation", 120), ("awareness", 91), ("evaluation", 50)),  # back 91 days ago: no
        *moves("lost", ("evaluation", 30), ("qualification", 20), ("closed_lost", 10)),  # closed: never flagged
    ])
    return d


@pytest.fixture(scope="module")
def acme(module_db):
    ws = new_workspace(module_db, "Acme")
    d = seed(module_db, ws)
    other = new_workspace(module_db, "Other")  # another tenant with its own stale, overdue deal
    write(module_db, other, "deals", [deal("theirs", "evaluation", 999000, 60, 100, -3, owner=None, next_step=None)])
    return ws, d, other


@pytest.fixture(scope="module")
def result(module_db, module_settings, acme):
    ws, _, _ = acme
    return run_skill(module_db, module_settings, ws["id"], "pipeline-hygiene", today=TODAY)


def m(result, key):
    return result.metric(key).value


def evidence(result, claim_start):
    [e] = [e for e in result.evidence if e.claim.split(": ", 1)[-1].startswith(claim_start)]
    return e.ids


def test_open_deals_and_pipeline_exclude_closed_and_deleted_deals(result):
    # quiet13 stale14 stale29 crit30 never fresh due_today due_yday regress zero
    assert m(result, "open_deals") == 10
    assert m(result, "open_amount") == Decimal(10000 + 20000 + 40000 + 80000 + 5000 + 15000 + 25000 + 30000)


def test_stale_means_no_activity_for_14_days_or_more_including_never_touched_deals(result, acme):
    _, d, _ = acme
    assert m(result, "stale_deals") == 4                       # stale14 (exactly 14), stale29, crit30, never (40)
    assert m(result, "stale_amount") == Decimal(20000 + 40000 + 80000)
    assert evidence(result, "stale") == [d["crit30"], d["stale29"], d["stale14"], d["never"]]  # largest first
    assert m(result, "critical_stale_deals") == 2              # crit30 (exactly 30) and never (40)


def test_severity_buckets_cover_every_open_deal(result):
    b = result.data["buckets"]
    assert {k: v["deals"] for k, v in b.items()} == {"watch": 5, "warning": 1, "serious": 2, "critical": 2}
    assert b["watch"]["amount"] == Decimal(5000 + 15000 + 25000 + 30000)   # fresh due_today due_yday regress zero
    assert b["warning"]["amount"] == Decimal(10000)                        # quiet13: 13 days is not stale yet
    top = {r["name"]: (r["days_quiet"], r["severity"], r["never_active"]) for r in result.data["findings"]["stale"]["top"]}
    assert top == {"stale14": (14, "serious", False), "stale29": (29, "serious", False),
                   "crit30": (30, "critical", False), "never": (40, "critical", True)}


def test_past_close_date_is_before_today_and_a_deal_due_today_is_not_flagged(result, acme):
    _, d, _ = acme
    assert (m(result, "past_close_date_deals"), m(result, "past_close_date_amount")) == (1, Decimal(25000))
    assert evidence(result, "past close date") == [d["due_yday"]]
    assert result.data["findings"]["past_close_date"]["top"][0]["days_past_close"] == 1
    # due today, in 10 and in 20 days
    assert (m(result, "closing_soon_deals"), m(result, "closing_soon_amount")) == (3, Decimal(15000 + 30000))


def test_missing_fields_on_open_deals(result, acme):
    _, d, _ = acme
    assert m(result, "missing_amount_deals") == 2              # never (none) and zero ($0)
    assert sorted(evidence(result, "no amount")) == sorted([d["never"], d["zero"]])
    assert (m(result, "missing_close_date_deals"), evidence(result, "no close date")) == (1, [d["never"]])
    # due_today has no owner name but an owner email: it has an owner
    assert (m(result, "missing_owner_deals"), evidence(result, "no owner")) == (1, [d["never"]])
    assert m(result, "missing_next_step_deals") == 2           # never (none) and stale29 (blank)
    assert m(result, "missing_next_step_amount") == Decimal(40000)


def test_stage_regressions_in_the_last_90_days_on_open_deals(result, acme):
    _, d, _ = acme
    assert m(result, "stage_regression_deals") == 2            # regress (10 days ago), crit30 (exactly 90 days ago)
    assert m(result, "stage_regression_amount") == Decimal(30000 + 80000)
    top = {r["name"]: (r["regressed_from"], r["regressed_to"], r["regressed_on"])
           for r in result.data["findings"]["stage_regression"]["top"]}
    assert top == {"regress": ("evaluation", "qualification", str(day(-10))),
                   "crit30": ("evaluation", "qualification", str(day(-90)))}


def test_closed_and_deleted_deals_are_never_flagged(result, acme):
    _, d, _ = acme
    flagged = {i for e in result.evidence for i in e.ids}
    assert not flagged & {d["won"], d["lost"], d["gone"]}


def test_flagged_share_counts_each_deal_once(result):
    # stale14 stale29 crit30 never due_yday zero regress; not quiet13, fresh, due_today
    assert (m(result, "flagged_deals"), m(result, "flagged_pct")) == (7, Decimal("70.0"))


def test_headline_and_template_summary_without_a_key(result):
    assert result.headline == ("Pipeline hygiene: 4 of 10 open deals stale ($140.0k), 1 past close date ($25.0k), "
                               "2 moved back a stage")
    assert result.ai_written is False
    text = result.sections[0].text
    assert "4 deals ($140.0k) have had no activity for 14+ days, 2 of them for 30+" in text
    assert text.endswith("_Written from a template: no ANTHROPIC_API_KEY set._")


def test_another_workspace_sees_only_its_own_deals(module_db, module_settings, acme, result):
    _, _, other = acme
    theirs = run_skill(module_db, module_settings, other["id"], "hygiene", today=TODAY)
    assert (m(theirs, "open_deals"), m(theirs, "stale_deals"), m(theirs, "past_close_date_deals")) == (1, 1, 1)
    assert m(theirs, "open_amount") == Decimal(999000)
    assert Decimal(999000) not in {mt.value for mt in result.metrics}


def test_thresholds_come_from_the_context_layer(module_db, module_settings):
    ws = new_workspace(module_db, "Slow")
    seed(module_db, ws)
    with module_db.connection() as conn:
        update_section(conn, ws["id"], "goals_and_targets",
                       {"thresholds": {"stale_deal_days": 20, "critical_stale_days": 40}})
    r = run_skill(module_db, module_settings, ws["id"], "hygiene", today=TODAY)
    # warning from 10 days: quiet13, stale14; serious 20-39: stale29, crit30; critical 40+: never
    assert {k: v["deals"] for k, v in r.data["buckets"].items()} == {"watch": 5, "warning": 2, "serious": 2, "critical": 1}
    assert (m(r, "stale_deals"), m(r, "stale_amount"), m(r, "critical_stale_deals")) == (3, Decimal(120000), 1)


def test_parking_lot_when_one_stage_holds_most_stale_deals(module_db, module_settings):
    ws = new_workspace(module_db, "Parked")
    write(module_db, ws, "deals", [deal(f"e{i}", "evaluation", 1000, 20, 100, 30) for i in range(5)]
          + [deal(f"q{i}", "qualification", 1000, 20, 100, 30) for i in range(3)]
          + [deal(f"n{i}", "negotiation", 1000, 20, 100, 30) for i in range(2)])
    r = run_skill(module_db, module_settings, ws["id"], "hygiene", today=TODAY)
    assert r.data["parking_lot"] == {"stage": "evaluation", "deals": 5}   # 5 of 10 stale > 40 %
    assert r.notes == ["Parking lot: 5 of 10 stale deals sit in evaluation."]


def test_an_empty_workspace_has_nothing_to_report(module_db, module_settings):
    r = run_skill(module_db, module_settings, new_workspace(module_db, "Empty")["id"], "hygiene", today=TODAY)
    assert r.headline == "Pipeline hygiene: no open deals"
    assert m(r, "stale_deals") == 0 and m(r, "flagged_pct") is None and r.evidence == []

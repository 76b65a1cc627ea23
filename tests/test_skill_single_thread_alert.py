"""single-thread-alert against hand counts from the definitions in skills/single_thread_alert.py.

Deal contacts come from the associations step (a contact naming its deal), the other links from activities and
conversations written through the upsert path. Defaults: min contacts 2, average deal 50,000, so the size floor
is 10,000. Today is pinned to 2 March 2026."""
from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import partial

import pytest

from core.pipeline import PipelineRun
from core.pipeline.associations import infer_associations
from core.workspaces import create_workspace
from skills.runtime import run_skill
from tests import support

write = partial(support.write, source="crm")

TODAY = date(2026, 3, 2)


def at(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(10), tzinfo=timezone.utc)


def ids(db, ws, table) -> dict[str, str]:
    with db.connection() as conn:
        return {r["source_id"]: str(r["id"]) for r in conn.execute(
            f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws["id"],))}


DEALS = {  # name: (stage, amount)
    "one_big": ("negotiation", 60000),        # 1 contact (deal contact); late stage, above average -> critical
    "one_late": ("evaluation", 15000),        # 1 (activity); late stage -> critical
    "one_early": ("qualification", 12000),    # 1 (conversation participant) -> warning
    "none": ("awareness", 50000),             # 0; exactly the average is not above it -> warning
    "floor": ("qualification", 10000),        # 1; exactly the floor -> warning
    "tiny": ("qualification", Decimal("9999.99")),  # 1; under the floor
    "no_amount": ("awareness", None),         # 0; a missing amount is under the floor
    "two": ("decision", 80000),               # 2 -> double, not alerted
    "two_same": ("evaluation", 30000),        # 1 contact three ways -> critical
    "internal": ("qualification", 20000),     # 0: its only call is internal -> warning
    "deleted_contact": ("qualification", 25000),  # 1 (the other contact is deleted) -> warning
    "three": ("negotiation", 40000),          # 3 -> multi
    "no_stage": (None, 55000),                # 1 (activity); no stage is open; above average -> critical
    "won": ("closed_won", 90000),             # closed: never alerted
    "gone": ("negotiation", 70000),           # deleted: never alerted
}


@pytest.fixture(scope="module")
def acme(module_db):
    with module_db.connection() as conn:
        ws = create_workspace(conn, f"Acme {os.urandom(3).hex()}")
    write(module_db, ws, "deals", [{"source_id": n, "name": n, "stage": s, "stage_normalized": s, "amount": a, "owner": "Ann",
                              **({"deleted_at": at(1)} if n == "gone" else {})} for n, (s, a) in DEALS.items()])

    def contact(source_id, deals=(), **more):
        return {"source_id": source_id, "email": f"{source_id}@cust.io", "first_name": source_id.capitalize(),
                "last_name": "Buyer", "title": "VP Sales", "custom_fields": {"associated_deals": list(deals)}, **more}

    write(module_db, ws, "contacts", [
        contact("cara", ["one_big", "two_same", "two"]), contact("fred", ["floor"]), contact("tim", ["tiny"]),
        contact("lena"), contact("ella"), contact("nora"), contact("tom", ["two"]),
        contact("del1", ["deleted_contact"]), contact("del2", ["deleted_contact"], deleted_at=at(1)),
        contact("t1", ["three"]), contact("t2", ["three"]), contact("t3", ["three"]), contact("wendy", ["won"]),
        contact("ian"), contact("rep", email="rep@democo.io"),
    ])
    with module_db.connection() as conn:
        infer_associations(conn, PipelineRun(str(ws["id"])))
    d, c = ids(module_db, ws, "deals"), ids(module_db, ws, "contacts")
    write(module_db, ws, "activities", [
        {"source_id": "a1", "activity_type": "email", "occurred_at": at(3), "deal_id": d["one_late"], "contact_id": c["lena"]},
        {"source_id": "a2", "activity_type": "call", "occurred_at": at(4), "deal_id": d["two_same"], "contact_id": c["cara"]},
        {"source_id": "a3", "activity_type": "email", "occurred_at": at(2), "deal_id": d["no_stage"], "contact_id": c["nora"]},
    ])
    write(module_db, ws, "conversations", [
        {"source_id": "v1", "started_at": at(6), "deal_id": d["one_early"], "is_internal": False, "participants": [
            # as a source may write them: spaces around, any case (participants.py's rule)
            {"email": " ELLA@cust.io", "affiliation": "external"}, {"email": "rep@democo.io", "affiliation": " Internal"}]},
        {"source_id": "v2", "started_at": at(7), "deal_id": d["two_same"], "is_internal": False, "contact_id": c["cara"]},
        {"source_id": "v3", "started_at": at(8), "deal_id": d["internal"], "is_internal": True, "contact_id": c["ian"],
         "participants": [{"email": "ian@cust.io", "affiliation": "external"}]},
    ])
    return ws, d, c


@pytest.fixture(scope="module")
def result(module_db, module_settings, acme):
    return run_skill(module_db, module_settings, acme[0]["id"], "single-thread-alert", today=TODAY)


def m(result, key):
    return result.metric(key).value


def test_threading_classes_over_open_deals(result):
    assert m(result, "open_deals") == 13
    assert result.data["threading"] == {"single": 11, "double": 1, "multi": 1}
    assert (m(result, "threading_single"), m(result, "threading_double"), m(result, "threading_multi")) == (11, 1, 1)


def test_default_floor_is_a_fifth_of_the_average_deal(result):
    assert m(result, "min_amount") == Decimal(10000)
    assert m(result, "below_floor_deals") == 2                     # tiny (9,999.99) and no_amount


def test_single_threaded_deals_above_the_floor(result):
    assert m(result, "single_threaded_deals") == 9
    assert m(result, "single_threaded_amount") == Decimal(60000 + 15000 + 12000 + 50000 + 10000 + 30000 + 20000
                                                          + 25000 + 55000)
    assert m(result, "single_threaded_share") == Decimal("68.1")    # 277,000 / 406,999.99


def test_critical_is_late_stage_or_above_the_average_deal(result, acme):
    _, d, _ = acme
    assert (m(result, "critical_deals"), m(result, "critical_amount")) == (4, Decimal(160000))
    assert [e.ids for e in result.evidence if e.claim.startswith("4 critical")] == [
        [d["one_big"], d["no_stage"], d["two_same"], d["one_late"]]]
    assert (m(result, "warning_deals"), m(result, "warning_amount")) == (5, Decimal(117000))
    assert [e.ids for e in result.evidence if e.claim.startswith("5 warning")] == [
        [d["none"], d["deleted_contact"], d["internal"], d["one_early"], d["floor"]]]


def test_each_listed_deal_shows_its_one_contact_and_how_it_is_linked(result, acme):
    _, _, c = acme
    rows = {x["name"]: (x["contacts"], x["contact_id"], x["contact_via"])
            for g in ("critical", "warning") for x in result.data[g]["top"]}
    assert rows == {
        "one_big": (1, c["cara"], "deal contact"), "one_late": (1, c["lena"], "activity"),
        "two_same": (1, c["cara"], "deal contact"), "no_stage": (1, c["nora"], "activity"),
        "one_early": (1, c["ella"], "conversation"),   # the internal participant (also a contact) does not count
        "none": (0, None, None), "floor": (1, c["fred"], "deal contact"),
        "internal": (0, None, None),                   # an internal meeting is not engagement
        "deleted_contact": (1, c["del1"], "deal contact"),
    }
    critical = result.tables[0]
    assert critical.rows[0] == ["one_big", "$60.0k", "negotiation", "Ann", "Cara Buyer, VP Sales", "deal contact"]


def test_closed_and_deleted_deals_are_never_alerted(result, acme):
    _, d, _ = acme
    alerted = {i for e in result.evidence if e.entity == "deals" for i in e.ids}
    assert not alerted & {d["won"], d["gone"], d["two"], d["three"]}


def test_min_amount_parameter_moves_the_floor(module_db, module_settings, acme):
    r = run_skill(module_db, module_settings, acme[0]["id"], "single-thread-alert", {"min_amount": "30000"}, today=TODAY)
    assert (m(r, "min_amount"), m(r, "single_threaded_deals"), m(r, "critical_deals"), m(r, "warning_deals")) == (
        Decimal(30000), 4, 3, 1)                      # one_big, no_stage, two_same critical; none warning
    assert m(r, "below_floor_deals") == 7


def test_headline_and_template_without_a_key(result):
    assert result.headline == ("Single-threaded: 9 open deals ($277.0k) rest on fewer than 2 contacts; "
                               "4 critical ($160.0k)")
    assert result.ai_written is False
    assert result.sections[0].text.startswith("Of 13 open deals, 11 have fewer than 2 engaged contacts, 1 have 2 and 1 more.")

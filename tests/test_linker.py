"""The cross-entity linker: email_match, crm_native and deal_inference tiers, their precedence, manual links,
idempotency and incremental runs. Data goes in through upsert_rows; the whole post-sync pipeline runs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.context import update_section
from core.db.upsert import upsert_rows
from core.pipeline import PipelineRun, run_post_sync
from core.pipeline.linker import link_activities, link_conversations

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
CALL_AT = datetime(2026, 5, 1, 16, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


def write(db, ws, table, rows, source="hubspot"):
    with db.connection() as conn:
        upsert_rows(conn, table, ws["id"], [{"source": source, **r} for r in rows])


def setup_crm(db, ws, *, open_deals=1):
    """Acme (a1) with contacts jane/bob and `open_deals` open deals plus a closed one; Globex (a2) with amy."""
    with db.connection() as conn:
        update_section(conn, ws["id"], "definitions", {"internal_domains": ["democo.io"]})
    write(db, ws, "accounts", [{"source_id": "a1", "name": "Acme"}, {"source_id": "a2", "name": "Globex"}])
    write(db, ws, "contacts", [
        {"source_id": "c1", "email": "Jane@Acme.io", "account_source_id": "a1"},
        {"source_id": "c2", "email": "bob@acme.io", "account_source_id": "a1"},
        {"source_id": "c3", "email": "amy@globex.com", "account_source_id": "a2"},
    ])
    deals = [{"source_id": f"d{i}", "name": f"Acme deal {i}", "account_source_id": "a1", "stage_normalized": "evaluation",
              "source_created_at": T0} for i in range(1, open_deals + 1)]
    deals.append({"source_id": "d9", "name": "Acme old", "account_source_id": "a1", "stage_normalized": "closed_lost",
                  "source_created_at": T0})
    deals.append({"source_id": "g1", "name": "Globex deal", "account_source_id": "a2", "stage_normalized": "decision",
                  "source_created_at": T0})
    write(db, ws, "deals", deals)


def call(source_id, *emails, title="Acme <> Demo Co — Demo", at=CALL_AT, **extra):
    parties = [{"name": "Rep", "email": "rep@democo.io", "affiliation": "internal"}]
    parties += [{"name": e.split("@")[0], "email": e, "affiliation": "external"} for e in emails]
    parties += [{"name": "Dial-in guest", "affiliation": "External"}]  # keeps email-less calls external
    return {"source_id": source_id, "title": title, "started_at": at, "participants": parties, **extra}


def links(db, ws, table="conversations"):
    """source_id -> (contact source_id, account source_id, deal source_id, link_method, link_details)."""
    with db.connection() as conn:
        rows = conn.execute(
            f"""SELECT r.source_id, c.source_id AS c, a.source_id AS a, d.source_id AS d, r.link_method, r.link_details
                  FROM {table} r
                  LEFT JOIN contacts c ON c.workspace_id = r.workspace_id AND c.id = r.contact_id
                  LEFT JOIN accounts a ON a.workspace_id = r.workspace_id AND a.id = r.account_id
                  LEFT JOIN deals d ON d.workspace_id = r.workspace_id AND d.id = r.deal_id
                 WHERE r.workspace_id = %s ORDER BY r.source_id""", (ws["id"],)).fetchall()
    return {r["source_id"]: (r["c"], r["a"], r["d"], r["link_method"], r["link_details"]) for r in rows}


def step_changes(report, name="linker"):
    """What the linker's steps changed (one per table: linker, linker_activities)."""
    return {k: v for s in report if s["name"].startswith(name) for k, v in s["changed"].items()}


def test_email_match_links_the_external_contact_and_its_account(db, workspace):
    setup_crm(db, workspace, open_deals=2)  # two open deals: no inference
    write(db, workspace, "conversations", [call("k1", "jane@ACME.io")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == ("c1", "a1", None, "email_match",
                                         {"contact": "email_match", "account": "email_match",
                                          "contact_email": "jane@ACME.io"})  # as the source wrote it


def test_internal_participants_are_never_matched_to_contacts(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "contacts", [{"source_id": "c7", "email": "rep@democo.io"},
                                      {"source_id": "c8", "email": "ceo@partner.io"}])
    conv = call("k1")
    conv["participants"].append({"name": "Partner", "email": "ceo@partner.io", "affiliation": "Internal"})
    write(db, workspace, "conversations", [conv], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:4] == (None, None, None, None)


def test_several_matches_prefer_the_account_most_participants_share_then_the_lowest_email(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [call("k1", "amy@globex.com", "jane@acme.io", "bob@acme.io"),
                                           call("k2", "jane@acme.io", "bob@acme.io")], source="gong")
    run_post_sync(db, workspace["id"])
    got = links(db, workspace)
    assert got["k1"][:2] == ("c2", "a1")  # acme has two matches; bob@ sorts before jane@
    assert got["k2"][:2] == ("c2", "a1")


def test_an_email_match_prefers_a_contact_at_the_account_the_row_keeps(db, workspace):
    """The CRM named Acme, then (a later sync) Globex: the call keeps Acme (an equal rank never replaces), and
    the contact matched once the people arrive is the one at Acme, not at the account the CRM names now."""
    setup_crm(db, workspace, open_deals=2)
    people = ("zoe@acme.io", "yan@globex.com")  # yan@ sorts first: without the preference, Globex's contact
    write(db, workspace, "conversations", [call("k1", *people, source_data={"crm_context": {"account_source_id": "a1"}})],
          source="demo")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:2] == (None, "a1")
    write(db, workspace, "conversations", [call("k1", *people, source_data={"crm_context": {"account_source_id": "a2"}})],
          source="demo")
    write(db, workspace, "contacts", [{"source_id": "c4", "email": "zoe@acme.io", "account_source_id": "a1"},
                                      {"source_id": "c5", "email": "yan@globex.com", "account_source_id": "a2"}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:2] == ("c4", "a1")


def test_crm_native_links_gong_context_objects(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "accounts", [{"source_id": "0015g00000XyZ12AAB", "name": "Acme Corp"}], source="salesforce")
    write(db, workspace, "deals", [{"source_id": "0065g00000AbCdEAAV", "name": "Acme Corp - Platform",
                                    "account_source_id": "0015g00000XyZ12AAB"}], source="salesforce")
    write(db, workspace, "contacts", [{"source_id": "0035g00000CoNt1AAB", "email": "ada@example.org"}], source="salesforce")
    gong = {"context": [{"system": "Salesforce", "objects": [
        {"objectType": "Account", "objectId": "0015g00000XyZ12AAB"},
        {"objectType": "Opportunity", "objectId": "0065g00000AbCdEAAV"}]}],
        "parties": [{"emailAddress": "ada@example.org", "affiliation": "External", "context": [
            {"system": "Salesforce", "objects": [{"objectType": "Contact", "objectId": "0035g00000CoNt1AAB"}]}]}]}
    write(db, workspace, "conversations", [call("k1", "ada@example.org", source_data=gong)], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == ("0035g00000CoNt1AAB", "0015g00000XyZ12AAB", "0065g00000AbCdEAAV", "crm_native",
                                         {"contact": "crm_native", "account": "crm_native", "deal": "crm_native"})


def test_crm_context_hint_links_account_and_deal_and_ambiguous_ids_are_skipped(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "accounts", [{"source_id": "a2", "name": "Globex (import)"}], source="csv_import")
    write(db, workspace, "conversations", [
        call("k1", source_data={"crm_context": {"account_source_id": "a1", "deal_source_id": "d2"}}),
        call("k2", source_data={"crm_context": {"account_source_id": "a2"}}),  # a2 exists in two sources
    ], source="demo")
    run_post_sync(db, workspace["id"])
    got = links(db, workspace)
    assert got["k1"][1:4] == ("a1", "d2", "crm_native")
    assert got["k2"][:4] == (None, None, None, None)


def test_activity_ids_resolved_from_source_id_columns_are_recorded_as_crm_native(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "activities", [{
        "source_id": "e1", "activity_type": "email", "occurred_at": CALL_AT, "account_source_id": "a1",
        "deal_source_id": "d1", "participants": [{"email": "amy@globex.com", "affiliation": "external"}]}])
    run_post_sync(db, workspace["id"])
    # The contact comes from the email; the CRM's account and deal win over amy's account (Globex).
    assert links(db, workspace, "activities")["e1"] == (
        "c3", "a1", "d1", "crm_native", {"contact": "email_match", "account": "crm_native", "deal": "crm_native",
                                          "contact_email": "amy@globex.com"})


def test_deal_inference_takes_the_only_open_deal_alive_at_the_call(db, workspace):
    setup_crm(db, workspace)  # d1 open, d9 closed
    write(db, workspace, "deals", [{"source_id": "d5", "name": "Acme later", "account_source_id": "a1",
                                    "stage_normalized": None, "source_created_at": datetime(2026, 6, 1, tzinfo=timezone.utc)}])
    write(db, workspace, "conversations", [
        call("k1", source_data={"crm_context": {"account_source_id": "a1"}}),
        call("k2", source_data={"crm_context": {"account_source_id": "a1"}}, at=datetime(2026, 7, 1, tzinfo=timezone.utc)),
    ], source="demo")
    run_post_sync(db, workspace["id"])
    got = links(db, workspace)
    assert got["k1"][1:4] == ("a1", "d1", "deal_inference")  # d5 (stage NULL = open) did not exist yet
    assert got["k1"][4] == {"account": "crm_native", "deal": "deal_inference"}
    assert got["k2"][1:4] == ("a1", None, "crm_native")  # by July two open deals were alive


def test_email_match_then_deal_inference_fills_the_deal(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io")], source="gong")
    report = run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == ("c1", "a1", "d1", "deal_inference",
                                         {"contact": "email_match", "account": "email_match", "deal": "deal_inference",
                                          "contact_email": "jane@acme.io"})
    assert step_changes(report) == {"conversations.email_match": 1, "conversations.deal_inference": 1}


def test_crm_native_replaces_an_earlier_email_match_account_and_its_inferred_deal(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][1:3] == ("a1", "d1")
    # A re-sync brings the CRM's view: the call was about Globex's deal (jane is consulting for them).
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", source_data={"crm_context": {"deal_source_id": "g1"}})],
          source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == ("c1", "a2", "g1", "crm_native",
                                         {"contact": "email_match", "account": "crm_native", "deal": "crm_native",
                                          "contact_email": "jane@acme.io"})


def test_an_email_matched_call_still_gets_its_crm_deal(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", source_data={"crm_context": {"deal_source_id": "d2"}})],
          source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == ("c1", "a1", "d2", "crm_native",
                                         {"contact": "email_match", "account": "crm_native", "deal": "crm_native",
                                          "contact_email": "jane@acme.io"})


def test_deal_inference_never_replaces_a_crm_native_deal(db, workspace):
    setup_crm(db, workspace)  # a1's only open deal is d1; the CRM says the call was about the closed d9
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", source_data={"crm_context": {"deal_source_id": "d9"}})],
          source="gong")
    run_post_sync(db, workspace["id"])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][2:4] == ("d9", "crm_native")


def test_manual_links_are_never_touched(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", link_method="manual",
                                                source_data={"crm_context": {"deal_source_id": "g1"}})], source="gong")
    write(db, workspace, "activities", [{"source_id": "e1", "occurred_at": CALL_AT, "link_method": "manual",
                                         "participants": [{"email": "jane@acme.io"}]}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"] == (None, None, None, "manual", {})
    assert links(db, workspace, "activities")["e1"] == (None, None, None, "manual", {})


def test_a_second_run_changes_nothing(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io"), call("k2", "amy@globex.com"),
                                           call("k3", source_data={"crm_context": {"account_source_id": "a2"}})], source="gong")
    write(db, workspace, "activities", [{"source_id": "e1", "occurred_at": CALL_AT, "contact_source_id": "c2"}])
    first = run_post_sync(db, workspace["id"])
    before = links(db, workspace), links(db, workspace, "activities")
    assert step_changes(first)
    second = run_post_sync(db, workspace["id"])
    assert all(not s["changed"] for s in second)
    assert (links(db, workspace), links(db, workspace, "activities")) == before
    with db.connection() as conn:
        assert link_conversations(conn, PipelineRun(str(workspace["id"]))) == {}
        assert link_activities(conn, PipelineRun(str(workspace["id"]))) == {}


def test_incremental_run_after_a_contact_email_change_equals_a_full_run(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [call("k1", "jane.doe@acme.io"), call("k2", "amy@globex.com"),
                                           call("k3", "amy.new@globex.com")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][0] is None and links(db, workspace)["k3"][0] is None
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "jane.doe@acme.io", "account_source_id": "a1"},
                                      {"source_id": "c3", "email": "amy.new@globex.com", "account_source_id": "a2"}])
    incremental = run_post_sync(db, workspace["id"], incremental=True)
    after_incremental = links(db, workspace)
    assert after_incremental["k1"][:2] == ("c1", "a1") and after_incremental["k3"][:2] == ("c3", "a2")
    assert after_incremental["k2"][:2] == ("c3", "a2")  # links are sticky: the meeting did happen with amy
    assert step_changes(incremental) == {"conversations.email_match": 2, "conversations.deal_inference": 1}  # k3: g1
    full = run_post_sync(db, workspace["id"])
    assert all(not s["changed"] for s in full)
    assert links(db, workspace) == after_incremental


def test_hubspot_association_ids_link_activities(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "activities", [
        {"source_id": "e1", "occurred_at": CALL_AT,
         "source_data": {"associations": {"companyIds": ["a2"], "dealIds": [], "contactIds": ["c3"]}}},
        {"source_id": "e2", "occurred_at": CALL_AT,
         "source_data": {"associations": {"deals": {"results": [{"id": "d2", "type": "call_to_deal"}]}}}},
    ], source="csv_import")  # ids of rows another source stored: matched in any source
    run_post_sync(db, workspace["id"])
    got = links(db, workspace, "activities")
    assert got["e1"][:4] == ("c3", "a2", "g1", "deal_inference")
    assert got["e2"][:4] == (None, "a1", "d2", "crm_native")


def test_incremental_runs_keep_matching_a_full_run(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [
        call("k1", "jane@acme.io"), call("k2", "zed@initech.io"),
        call("k3", source_data={"crm_context": {"account_source_id": "a3", "deal_source_id": "i1"}}),
    ], source="gong")
    run_post_sync(db, workspace["id"])
    # Later syncs: the CRM account/deal k3 names arrive, zed becomes a contact, Acme's open deal is won.
    write(db, workspace, "accounts", [{"source_id": "a3", "name": "Initech"}])
    write(db, workspace, "deals", [{"source_id": "i1", "name": "Initech pilot", "account_source_id": "a3",
                                    "source_created_at": T0},
                                   {"source_id": "d1", "name": "Acme deal 1", "account_source_id": "a1",
                                    "stage_normalized": "closed_won", "source_created_at": T0}])
    write(db, workspace, "contacts", [{"source_id": "c9", "email": "Zed@Initech.io", "account_source_id": "a3"}])
    write(db, workspace, "conversations", [call("k4", "bob@acme.io")], source="gong")
    run_post_sync(db, workspace["id"], incremental=True)
    after_incremental = links(db, workspace)
    assert after_incremental["k1"][1:3] == ("a1", "d1")  # inferred while d1 was open: the call was about it
    assert after_incremental["k2"][:4] == ("c9", "a3", "i1", "deal_inference")
    assert after_incremental["k3"][1:4] == ("a3", "i1", "crm_native")
    assert after_incremental["k4"][1:3] == ("a1", None)  # no open Acme deal any more
    full = run_post_sync(db, workspace["id"])
    assert all(not s["changed"] for s in full)
    assert links(db, workspace) == after_incremental


def test_an_email_match_follows_its_participant_off_the_call(db, workspace):
    """Jane is matched on k1 (and Acme's only open deal inferred); a re-sync drops her from the participants: the
    e-mail tier decides again from who is on it now (amy: Globex and its deal), and on k2, where nobody known is
    left, the contact, the account it gave and the deal inferred from that are cleared. An incremental run does
    what a full one would."""
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io"), call("k2", "jane@acme.io")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:4] == links(db, workspace)["k2"][:4] == ("c1", "a1", "d1", "deal_inference")
    write(db, workspace, "conversations", [call("k1", "amy@globex.com"), call("k2", "someone@else.io")], source="gong")
    incremental = run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"] == ("c3", "a2", "g1", "deal_inference", {"contact": "email_match", "account": "email_match",
                                                               "deal": "deal_inference", "contact_email": "amy@globex.com"})
    assert got["k2"] == (None, None, None, None, {})
    assert step_changes(incremental)["conversations.unlinked"] == 1
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))  # a full run finds nothing to change
    assert links(db, workspace) == got


def test_an_email_match_at_a_domain_that_became_internal_is_decided_again(db, workspace):
    """Globex's domain becomes one of ours (an acquisition): amy is one of us now, so k1, still external (a
    dial-in guest), loses her, Globex and the deal inferred from it, as a first run with those domains would have
    left it; jane's match on k2 stands."""
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "amy@globex.com"), call("k2", "jane@acme.io")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:4] == ("c3", "a2", "g1", "deal_inference")
    with db.connection() as conn:
        update_section(conn, workspace["id"], "definitions", {"internal_domains": ["democo.io", "globex.com"]})
    report = run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"] == (None, None, None, None, {})
    assert got["k2"][:4] == ("c1", "a1", "d1", "deal_inference")
    assert step_changes(report)["conversations.unlinked"] == 1
    with db.connection() as conn:
        assert conn.execute("SELECT is_internal FROM conversations WHERE workspace_id = %s AND source_id = 'k1'",
                            (workspace["id"],)).fetchone()["is_internal"] is False
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_an_email_match_whose_participant_is_marked_internal_now_is_decided_again(db, workspace):
    """The e-mail tier counts external participants only: a re-sync where Gong marks jane "Internal" (the call
    stays external: a dial-in guest) takes her off k1 with Acme and the deal inferred from it, and on k3, where
    another of her entries is still external, and on k2, where her affiliation only changed case, she stays."""
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call(k, "jane@acme.io") for k in ("k1", "k2", "k3")], source="gong")
    run_post_sync(db, workspace["id"])

    def marked(k, *entries):
        c = call(k)
        c["participants"] = [*c["participants"], *({"email": e, "affiliation": a} for e, a in entries)]
        return c

    write(db, workspace, "conversations", [marked("k1", ("jane@acme.io", " Internal")),
                                           marked("k2", ("jane@acme.io", "EXTERNAL")),
                                           marked("k3", ("jane@acme.io", "internal"), ("JANE@acme.io ", "external"))],
          source="gong")
    report = run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"] == (None, None, None, None, {})
    assert got["k2"][:4] == got["k3"][:4] == ("c1", "a1", "d1", "deal_inference")
    assert got["k2"][4]["contact_email"] == got["k3"][4]["contact_email"] == "jane@acme.io"
    assert step_changes(report)["conversations.unlinked"] == 1
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_an_email_match_holds_while_its_participant_is_on_the_call(db, workspace):
    """Only the matched participant's absence re-decides: a re-sync that adds someone, writes her e-mail in
    other case, or comes after her contact's own e-mail changed keeps the contact (and the spelling recorded);
    activities follow the same rule."""
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io"), call("k2", "jane@acme.io"),
                                           call("k3", "jane@acme.io")], source="gong")
    write(db, workspace, "activities", [{"source_id": "e1", "occurred_at": CALL_AT, "activity_type": "meeting",
                                         "participants": [{"email": "bob@acme.io"}]}])
    run_post_sync(db, workspace["id"])
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "jane.doe@acme.io", "account_source_id": "a1"}])
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", "amy@globex.com"), call("k2", "JANE@acme.io"),
                                           call("k3", "jane@acme.io")], source="gong")
    write(db, workspace, "activities", [{"source_id": "e1", "occurred_at": CALL_AT, "activity_type": "meeting",
                                         "participants": [{"email": "amy@globex.com"}]}])
    run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"][:2] == got["k2"][:2] == got["k3"][:2] == ("c1", "a1")
    assert got["k1"][4]["contact_email"] == got["k2"][4]["contact_email"] == "jane@acme.io"
    assert links(db, workspace, "activities")["e1"][:2] == ("c3", "a2")  # bob left the meeting, amy is on it
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_a_departed_participant_leaves_crm_and_manual_links_alone(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [
        call("k1", "jane@acme.io", source_data={"crm_context": {"contact_source_id": "c1"}}),
        call("k2", "jane@acme.io", link_method="manual")], source="gong")
    run_post_sync(db, workspace["id"])
    write(db, workspace, "conversations", [call("k1", source_data={"crm_context": {"contact_source_id": "c1"}}),
                                           call("k2", link_method="manual")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:2] == ("c1", "a1")
    assert links(db, workspace)["k2"][:4] == (None, None, None, "manual")


# --- Links to rows their source deleted (soft deletes: a CRM deal archived or merged away, a contact merged) ---

RECENT = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=10)  # inside CWD's 90-day window
ACME_DEAL = {"name": "Acme deal", "account_source_id": "a1", "stage_normalized": "evaluation", "source_created_at": T0}


def delete(db, ws, table, row, source="hubspot"):
    """What a sync writes when the source deleted (archived) a record: the row again, with deleted_at."""
    write(db, ws, table, [{**row, "deleted_at": datetime.now(timezone.utc)}], source=source)


def cwd(db, ws):
    with db.connection() as conn:
        return {r["source_id"]: r["cwd_severity"] for r in conn.execute(
            "SELECT source_id, cwd_severity FROM conversations WHERE workspace_id = %s", (ws["id"],))}


def test_the_calls_of_a_deal_merged_away_go_to_the_remaining_deal_and_without_one_become_cwd(db, workspace):
    setup_crm(db, workspace)  # Acme: d1 open, d9 closed
    write(db, workspace, "conversations", [
        call("k1", "jane@acme.io", at=RECENT),
        call("k2", "bob@acme.io", at=RECENT, source_data={"crm_context": {"deal_source_id": "d1"}})], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][2:4] == ("d1", "deal_inference")
    assert links(db, workspace)["k2"][2:4] == ("d1", "crm_native")
    # The CRM merges d1 into d2: d1 is archived, d2 (created before the calls) is the one left.
    delete(db, workspace, "deals", {"source_id": "d1", **ACME_DEAL})
    write(db, workspace, "deals", [{"source_id": "d2", **ACME_DEAL}])
    report = run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    # Both lose the deleted deal, whatever set it (a CRM link outranks an inference, but it is no link now).
    assert got["k1"][:4] == ("c1", "a1", "d2", "deal_inference")
    assert got["k2"][:4] == ("c2", "a1", "d2", "deal_inference")
    # (Its account, which came with the CRM deal, is there still: only the field that named the deleted row moves.)
    assert got["k2"][4] == {"contact": "email_match", "account": "crm_native", "deal": "deal_inference",
                            "contact_email": "bob@acme.io"}
    assert step_changes(report)["conversations.deal_inference"] == 2
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))  # a full run agrees
    assert links(db, workspace) == got
    # Then d2 goes too: Acme has no open deal, and its two calls are conversations without deals.
    delete(db, workspace, "deals", {"source_id": "d2", **ACME_DEAL})
    report = run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"][:4] == ("c1", "a1", None, "email_match") and got["k2"][:4] == ("c2", "a1", None, "crm_native")
    assert step_changes(report)["conversations.unlinked"] == 2
    assert cwd(db, workspace) == {"k1": "high", "k2": "high"}
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))
    # Restored in the CRM: the call that names it is linked to it again.
    write(db, workspace, "deals", [{"source_id": "d1", **ACME_DEAL, "deleted_at": None}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert links(db, workspace)["k2"][2:4] == ("d1", "crm_native")
    assert links(db, workspace)["k1"][2:4] == ("d1", "deal_inference")  # the only open deal again
    assert cwd(db, workspace) == {"k1": None, "k2": None}


def test_a_merged_away_contact_hands_its_calls_to_the_survivor_of_the_same_email(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io"), call("k2", "bob@acme.io"),
                                           call("k3", source_data={"crm_context": {"contact_source_id": "c2"}})],
          source="gong")
    run_post_sync(db, workspace["id"])
    assert [links(db, workspace)[k][:2] for k in ("k1", "k2", "k3")] == [("c1", "a1"), ("c2", "a1"), ("c2", "a1")]
    # jane's two records are merged into c5; bob is deleted and nobody else has his e-mail.
    delete(db, workspace, "contacts", {"source_id": "c1", "email": "Jane@Acme.io", "account_source_id": "a1"})
    write(db, workspace, "contacts", [{"source_id": "c5", "email": "jane@acme.io", "account_source_id": "a1"}])
    delete(db, workspace, "contacts", {"source_id": "c2", "email": "bob@acme.io", "account_source_id": "a1"})
    run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    assert got["k1"][:4] == ("c5", "a1", None, "email_match")
    # No contact is left for bob; the account his match gave still stands (Acme is there), and so does the CRM's.
    assert got["k2"][:4] == (None, "a1", None, "email_match") and "contact" not in got["k2"][4]
    assert got["k3"][:4] == (None, "a1", None, "crm_native") and got["k3"][4] == {"account": "crm_native"}
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_a_deleted_account_is_no_link_and_is_not_taken_from_a_contact_or_a_deal(db, workspace):
    setup_crm(db, workspace)  # Globex (a2): amy (c3) and one open deal, g1
    write(db, workspace, "conversations", [call("k1", "amy@globex.com")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:4] == ("c3", "a2", "g1", "deal_inference")
    delete(db, workspace, "accounts", {"source_id": "a2", "name": "Globex"})
    write(db, workspace, "conversations", [call("k2", "amy@globex.com"),
                                           call("k3", source_data={"crm_context": {"deal_source_id": "g1"}})],
          source="gong")
    run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace)
    # amy's contact still names Globex (a reference is never cleared), but a deleted account is no account: the
    # inferred deal goes with it; the CRM deal g1 stands, without its deleted account.
    assert got["k1"][:4] == ("c3", None, None, "email_match")
    assert got["k2"][:4] == ("c3", None, None, "email_match")
    assert got["k3"][:4] == (None, None, "g1", "crm_native")
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_the_calls_of_a_company_merged_away_follow_its_contacts_to_the_survivor(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "amy@globex.com")], source="gong")
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][:4] == ("c3", "a2", "g1", "deal_inference")
    # One sync: Globex (a2) is merged into Initech (a3), which takes amy and the deal.
    delete(db, workspace, "accounts", {"source_id": "a2", "name": "Globex"})
    write(db, workspace, "accounts", [{"source_id": "a3", "name": "Initech"}])
    write(db, workspace, "contacts", [{"source_id": "c3", "email": "amy@globex.com", "account_source_id": "a3"}])
    write(db, workspace, "deals", [{"source_id": "g1", "name": "Globex deal", "account_source_id": "a3",
                                    "stage_normalized": "decision", "source_created_at": T0}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert links(db, workspace)["k1"][:4] == ("c3", "a3", "g1", "deal_inference")
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_an_activity_loses_its_deleted_crm_deal_and_the_references_step_does_not_set_it_again(db, workspace):
    setup_crm(db, workspace, open_deals=2)
    write(db, workspace, "activities", [{"source_id": "e1", "occurred_at": CALL_AT, "account_source_id": "a1",
                                         "deal_source_id": "d1"}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "activities")["e1"][:4] == (None, "a1", "d1", "crm_native")
    delete(db, workspace, "deals", {"source_id": "d1", **ACME_DEAL})
    # Written after the deletion, still naming d1: the write path does not resolve it to the deleted deal.
    write(db, workspace, "activities", [{"source_id": "e2", "occurred_at": CALL_AT, "account_source_id": "a1",
                                         "deal_source_id": "d1"}])
    assert links(db, workspace, "activities")["e2"][:4] == (None, "a1", None, "crm_native")
    run_post_sync(db, workspace["id"], incremental=True)
    # d2 is the one open Acme deal left: both are inferred onto it.
    got = links(db, workspace, "activities")
    assert got["e1"][:4] == got["e2"][:4] == (None, "a1", "d2", "deal_inference")
    second = run_post_sync(db, workspace["id"])  # resolve_activity_references would set d1 again if it could
    assert all(not s["changed"] for s in second)
    # Restored: the CRM's own reference outranks the inference again, in an incremental run as in a full one.
    write(db, workspace, "deals", [{"source_id": "d1", **ACME_DEAL, "deleted_at": None}])
    run_post_sync(db, workspace["id"], incremental=True)
    got = links(db, workspace, "activities")
    assert got["e1"][:4] == got["e2"][:4] == (None, "a1", "d1", "crm_native")
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))


def test_a_manual_link_to_a_deleted_deal_stays(db, workspace):
    setup_crm(db, workspace)
    write(db, workspace, "conversations", [call("k1", "jane@acme.io", link_method="manual")], source="gong")
    with db.connection() as conn:  # a person linked it to d1
        conn.execute("UPDATE conversations SET deal_id = (SELECT id FROM deals WHERE workspace_id = %(ws)s"
                     " AND source_id = 'd1') WHERE workspace_id = %(ws)s", {"ws": workspace["id"]})
    delete(db, workspace, "deals", {"source_id": "d1", **ACME_DEAL})
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["k1"][2:4] == ("d1", "manual")

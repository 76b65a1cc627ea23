"""Specs for the Salesforce connector against the fake org: full and incremental syncs, deletes and merges,
contact roles, converted leads, token expiry, the daily API cap, backoff, kill-and-resume, two orgs."""
from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.salesforce import register
from core.connections import get_connection, save_connection
from core.sync import registry
from core.sync.orchestrator import SyncEngine
from tests.fakes.salesforce_api import SalesforceApi
from tests.support import kill_sync_when, rows

QUERY_PAGE = "/services/data/v63.0/query/01gFAKE"


@pytest.fixture(autouse=True)
def connector():
    c = register()
    yield c
    registry.unregister(c.name)


def seed(sf: SalesforceApi) -> dict[str, str]:
    """A small org: 2 reps, 2 accounts, 3 contacts, 4 opportunities (roles on two), a lead, a task, an event,
    stage history, and a custom field on opportunities."""
    sf.custom_fields["Opportunity"].append("Next_Step_Date__c")
    ids = {"rep1": sf.add("User", {"Name": "Pat Rep", "Email": "pat@acme.test", "IsActive": True}),
           "rep2": sf.add("User", {"Name": "Sam Rep", "Email": "sam@acme.test", "IsActive": True})}
    ids["acme"] = sf.add("Account", {"Name": "Acme Corp", "Website": "https://www.acme.example.com", "OwnerId": ids["rep1"]})
    ids["globex"] = sf.add("Account", {"Name": "Globex", "Website": "globex.example", "OwnerId": ids["rep2"]})
    for key, first, account in (("ada", "Ada", "acme"), ("bob", "Bob", "acme"), ("cy", "Cy", "globex")):
        ids[key] = sf.add("Contact", {"FirstName": first, "LastName": "Example", "Email": f"{key}@example.org",
                                      "AccountId": ids[account], "OwnerId": ids["rep1"]})
    for n, (stage, amount, category) in enumerate([("Prospecting", 12000.0, "Pipeline"),
                                                   ("Negotiation/Review", None, "Commit"),
                                                   ("Closed Won", 48500.5, "Closed"),
                                                   ("Custom Stage Nine", 5000.0, "Best Case")], 1):
        ids[f"opp{n}"] = sf.add("Opportunity", {
            "Name": f"Acme - Deal {n}", "StageName": stage, "Amount": amount, "CloseDate": "2026-06-30",
            "Probability": 10.0 if n != 3 else 100.0, "ForecastCategoryName": category, "IsClosed": n == 3,
            "IsWon": n == 3, "AccountId": ids["acme"], "OwnerId": ids["rep1"], "Next_Step_Date__c": "2026-07-01"})
    sf.add("OpportunityContactRole", {"OpportunityId": ids["opp1"], "ContactId": ids["ada"], "Role": "Decision Maker",
                                      "IsPrimary": True})
    sf.add("OpportunityContactRole", {"OpportunityId": ids["opp2"], "ContactId": ids["bob"], "Role": "Evaluator",
                                      "IsPrimary": False})
    ids["lead"] = sf.add("Lead", {"FirstName": "Bo", "LastName": "Sample", "Email": "bo@initech.example",
                                  "Company": "Initech", "Status": "Open - Not Contacted", "OwnerId": ids["rep2"]})
    sf.add("Task", {"Subject": "Call Ada", "TaskSubtype": "Call", "CallType": "Outbound", "CallDurationInSeconds": 300,
                    "ActivityDate": "2026-05-02", "WhoId": ids["ada"], "WhatId": ids["opp1"], "AccountId": ids["acme"],
                    "OwnerId": ids["rep1"]})
    sf.add("Event", {"Subject": "Demo", "StartDateTime": "2026-05-03T15:00:00.000+0000", "DurationInMinutes": 45,
                     "WhoId": ids["bob"], "WhatId": ids["opp2"], "OwnerId": ids["rep1"]})
    sf.add("OpportunityHistory", {"OpportunityId": ids["opp1"], "StageName": "Prospecting", "Amount": 12000.0})
    return ids


@pytest.fixture
def sf():
    with SalesforceApi() as server:
        server.ids = seed(server)
        yield server


def connect(db, vault, workspace, sf, **metadata):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "salesforce", sf.grant(),
                        metadata={"batch_size": 3, "overlap_seconds": 1, **metadata})
    return workspace


@pytest.fixture
def connected(db, vault, workspace, sf):
    return connect(db, vault, workspace, sf)


def deal(db, ws, source_id):
    [row] = rows(db, ws, "SELECT * FROM deals WHERE workspace_id = %s AND source_id = %s", source_id)
    return row


def queries(sf) -> list[str]:
    return [r["q"] for r in sf.requests if r.get("q")]


def test_full_sync_loads_every_object_with_owners_currency_and_custom_fields(db, engine, connected, sf):
    report = engine.run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    counts = {table: c["inserted"] for table, c in report.counts.items()}
    assert counts == {"accounts": 2, "contacts": 3, "deals": 4, "leads": 1, "activities": 2, "deal_stage_history": 1}
    won = deal(db, connected, sf.ids["opp3"])
    assert won["amount"] == Decimal("48500.50") and won["currency"] == "USD" and won["probability"] == 100
    assert (won["stage_normalized"], won["forecast_category"]) == ("closed_won", "closed")
    assert won["owner"] == "Pat Rep" and won["owner_email"] == "pat@acme.test"
    assert won["custom_fields"] == {"Next_Step_Date__c": "2026-07-01"}
    assert won["account_name"] == "Acme Corp" and won["account_id"] is not None  # resolved after the sync
    commit = deal(db, connected, sf.ids["opp2"])
    assert commit["amount"] is None and commit["stage_normalized"] == "negotiation"
    custom = deal(db, connected, sf.ids["opp4"])  # no map knows it: the forecast category decides
    assert custom["stage_normalized"] == "evaluation" and custom["forecast_category"] == "best_case"
    [account] = rows(db, connected, "SELECT domain FROM accounts WHERE workspace_id = %s AND name = 'Acme Corp'")
    assert account["domain"] == "acme.example.com"
    [call] = rows(db, connected, "SELECT * FROM activities WHERE workspace_id = %s AND activity_type = 'call'")
    assert (call["direction"], call["duration_seconds"], call["deal_id"] is not None) == ("outbound", 300, True)
    with db.connection() as conn:
        meta = get_connection(conn, connected["id"], "salesforce")["metadata"]
    assert meta["org_fields"]["Opportunity"] == ["Next_Step_Date__c"]
    assert {o["name"] for o in meta["owners"]} == {"Pat Rep", "Sam Rep"}
    assert meta["deal_stages"]["Closed Won"]["won"] is True
    assert all("ORDER BY SystemModstamp, Id" in q for q in queries(sf) if "FROM Opportunity " in q)


def test_incremental_sync_asks_for_changes_since_the_cursor_minus_the_overlap(db, engine, connected, sf):
    engine.run(connected["id"], "salesforce")
    sf.requests.clear()
    sf.update("Opportunity", sf.ids["opp1"], Amount=15000.0)
    report = engine.run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    assert report.counts["deals"]["updated"] == 1 and report.counts["deals"]["inserted"] == 0
    assert deal(db, connected, sf.ids["opp1"])["amount"] == 15000
    opp_query = next(q for q in queries(sf) if q.startswith("SELECT Id, Name, StageName") and "IsDeleted = true" not in q
                     and "OpportunityContactRole WHERE" not in q)
    assert "WHERE SystemModstamp >= " in opp_query
    assert not any("/describe" in r["path"] for r in sf.requests)  # custom fields come from the cache


def test_a_full_sync_describes_the_objects_again(db, engine, connected, sf):
    engine.run(connected["id"], "salesforce")
    sf.custom_fields["Account"].append("Tier__c")
    sf.update("Account", sf.ids["acme"], Tier__c="Gold")
    engine.run(connected["id"], "salesforce")
    [acme] = rows(db, connected, "SELECT custom_fields FROM accounts WHERE workspace_id = %s AND name = 'Acme Corp'")
    assert acme["custom_fields"] == {}  # not described on an incremental run
    engine.run(connected["id"], "salesforce", full=True)
    [acme] = rows(db, connected, "SELECT custom_fields FROM accounts WHERE workspace_id = %s AND name = 'Acme Corp'")
    assert acme["custom_fields"] == {"Tier__c": "Gold"}


def test_a_record_modified_during_a_sync_is_picked_up_by_the_next_one(db, engine, connected, sf):
    sf.block_on_locator_page = 2  # the opportunities' second page
    handle = engine.start(connected["id"], "salesforce")
    assert sf.blocked.wait(20)
    sf.update("Opportunity", sf.ids["opp3"], Amount=99.0)  # on page 1, already read from the snapshot
    sf.block_on_locator_page = None
    sf.release.set()
    assert handle.wait(20).status == "succeeded"
    assert deal(db, connected, sf.ids["opp3"])["amount"] == Decimal("48500.50")
    engine.run(connected["id"], "salesforce")
    assert deal(db, connected, sf.ids["opp3"])["amount"] == 99


def test_deletes_are_soft_and_merged_accounts_hand_their_references_to_the_winner(db, engine, connected, sf):
    ids = sf.ids
    engine.run(connected["id"], "salesforce")
    sf.update("Lead", ids["lead"], IsConverted=True, ConvertedAccountId=ids["globex"], ConvertedDate="2026-05-04")
    engine.run(connected["id"], "salesforce")
    sf.delete("Opportunity", ids["opp4"])
    sf.merge("Account", ids["acme"], ids["globex"])  # Globex merged into Acme
    report = engine.run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    assert deal(db, connected, ids["opp4"])["deleted_at"] is not None
    accounts = {r["source_id"]: r for r in rows(db, connected, "SELECT * FROM accounts WHERE workspace_id = %s")}
    assert accounts[ids["globex"]]["deleted_at"] is not None
    acme_id = accounts[ids["acme"]]["id"]
    [cy] = rows(db, connected, "SELECT account_id FROM contacts WHERE workspace_id = %s AND source_id = %s", ids["cy"])
    assert cy["account_id"] == acme_id  # Salesforce re-parented it; the sync followed
    [lead] = rows(db, connected, "SELECT converted_account_id, converted_account_source_id FROM leads"
                                 " WHERE workspace_id = %s", )
    assert (lead["converted_account_id"], lead["converted_account_source_id"]) == (acme_id, ids["acme"])
    again = engine.run(connected["id"], "salesforce", full=True)
    [lead] = rows(db, connected, "SELECT converted_account_id FROM leads WHERE workspace_id = %s")
    assert again.status == "succeeded" and lead["converted_account_id"] == acme_id  # a full run keeps it moved


def test_contact_roles_become_deal_contacts_and_follow_role_changes(db, engine, connected, sf):
    ids = sf.ids
    engine.run(connected["id"], "salesforce")
    links = rows(db, connected, "SELECT c.source_id, dc.role, dc.is_primary, dc.role_source FROM deal_contacts dc"
                                " JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id"
                                " WHERE dc.workspace_id = %s AND dc.source = 'salesforce_contact_role'"
                                " ORDER BY c.source_id")
    assert [(r["source_id"], r["role"], r["is_primary"], r["role_source"]) for r in links] == [
        (ids["ada"], "Decision Maker", True, "crm_contact_role"), (ids["bob"], "Evaluator", False, "crm_contact_role")]
    # A new role on opp3 leaves the opportunity's own modstamp alone.
    sf.add("OpportunityContactRole", {"OpportunityId": ids["opp3"], "ContactId": ids["cy"], "Role": "Economic Buyer",
                                      "IsPrimary": True})
    role = next(iter(r for r in sf.records["OpportunityContactRole"].values() if r["OpportunityId"] == ids["opp2"]))
    sf.delete("OpportunityContactRole", role["Id"])
    sf.update("Opportunity", ids["opp2"], NextStep="call back")
    engine.run(connected["id"], "salesforce")
    links = rows(db, connected, "SELECT d.source_id AS deal, dc.role FROM deal_contacts dc JOIN deals d"
                                " ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id"
                                " WHERE dc.workspace_id = %s AND dc.source = 'salesforce_contact_role' ORDER BY 1")
    assert [(r["deal"], r["role"]) for r in links] == [(ids["opp1"], "Decision Maker"), (ids["opp3"], "Economic Buyer")]


def test_converted_lead_references_resolve_once_their_records_arrive(db, engine, connected, sf):
    contact_id = "003FAKELATER0001AA"
    sf.update("Lead", sf.ids["lead"], IsConverted=True, ConvertedContactId=contact_id,
              ConvertedOpportunityId=sf.ids["opp1"], ConvertedDate="2026-05-05")
    engine.run(connected["id"], "salesforce")
    [lead] = rows(db, connected, "SELECT * FROM leads WHERE workspace_id = %s")
    assert lead["is_converted"] and lead["converted_deal_id"] is not None
    assert lead["converted_contact_id"] is None and lead["converted_contact_source_id"] == contact_id
    sf.add("Contact", {"FirstName": "Bo", "LastName": "Sample", "AccountId": sf.ids["acme"]}, id=contact_id)
    engine.run(connected["id"], "salesforce")
    [lead] = rows(db, connected, "SELECT converted_contact_id FROM leads WHERE workspace_id = %s")
    [contact] = rows(db, connected, "SELECT id FROM contacts WHERE workspace_id = %s AND source_id = %s", contact_id)
    assert lead["converted_contact_id"] == contact["id"]


def test_an_expired_session_is_refreshed_once_mid_sync_and_the_new_token_stored(db, vault, engine, connected, sf):
    sf.block_on_locator_page = 2
    handle = engine.start(connected["id"], "salesforce")
    assert sf.blocked.wait(20)
    sf.expire_tokens()
    sf.block_on_locator_page = None
    sf.release.set()
    report = handle.wait(20)
    assert report.status == "succeeded", report.error
    assert [r["grant_type"] for r in sf.requests if r["method"] == "POST"] == ["refresh_token"]
    with db.connection() as conn:
        stored = vault.decrypt(get_connection(conn, connected["id"], "salesforce")["credentials"])
    assert stored["access_token"] in sf.access_tokens and stored["instance_url"] == sf.url


def test_a_refused_refresh_fails_the_sync_asking_to_reconnect(db, engine, connected, sf):
    sf.expire_tokens()
    sf.refresh_tokens.clear()
    report = engine.run(connected["id"], "salesforce")
    assert report.status == "failed" and report.exception.code == "auth_error"
    assert report.error.endswith("reconnect Salesforce")
    with db.connection() as conn:
        assert get_connection(conn, connected["id"], "salesforce")["status"] == "error"


def test_the_sync_pauses_before_the_daily_cap_and_resumes_where_it_stopped(db, engine, connected, sf):
    sf.api_limit = 18  # 95 % of it is reached in the middle of the streams
    first = engine.run(connected["id"], "salesforce")
    assert first.status == "failed" and first.exception.code == "rate_limited"
    assert "daily requests" in first.error and "resumes where it stopped" in first.error
    loaded = {t: c["inserted"] for t, c in first.counts.items()}
    assert 0 < sum(loaded.values()) < 13
    sf.api_limit = 100_000
    second = engine.run(connected["id"], "salesforce")
    assert second.status == "succeeded", second.error
    total = rows(db, connected, "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM deals WHERE workspace_id = %s")
    assert total[0]["n"] == total[0]["d"] == 4
    assert sum(c["inserted"] for c in second.counts.values()) + sum(loaded.values()) == 13


def test_request_limit_exceeded_pauses_the_sync_with_a_clear_message(db, engine, connected, sf):
    sf.fail_plan = [{"status": 403, "body": [{"message": "TotalRequests Limit exceeded.",
                                              "errorCode": "REQUEST_LIMIT_EXCEEDED"}], "times": 1}]
    report = engine.run(connected["id"], "salesforce")
    assert report.exception.code == "rate_limited" and "REQUEST_LIMIT_EXCEEDED" in report.error
    assert engine.run(connected["id"], "salesforce").status == "succeeded"


def test_429_and_503_are_retried_with_backoff(db, vault, connected, sf):
    waits: list[float] = []
    sf.fail_plan = [{"status": 429, "headers": {"Retry-After": "2"}, "times": 2},
                    {"status": 503, "times": 1}]
    report = SyncEngine(db, vault, sleep=waits.append).run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    assert waits[:2] == [2.0, 2.0] and len(waits) == 3


def test_a_killed_sync_resumes_at_its_next_records_url_without_duplicates(db, db_url, vault, connected, sf):
    sf.block_on_locator_page = 2
    kill_sync_when(db_url, vault, connected["id"], "salesforce", sf.blocked, "query locator page 2")
    assert len(rows(db, connected, "SELECT id FROM deals WHERE workspace_id = %s")) == 3  # page 1 committed
    sf.block_on_locator_page = None
    sf.release.set()
    sf.requests.clear()
    report = SyncEngine(db, vault, sleep=lambda s: None).run(connected["id"], "salesforce")
    assert report.status == "succeeded" and report.resumed
    assert any(r["path"].startswith(QUERY_PAGE) for r in sf.requests[:12])
    total = rows(db, connected, "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM deals WHERE workspace_id = %s")
    assert total[0]["n"] == total[0]["d"] == 4


def test_a_sync_resumed_after_its_query_cursor_expired_walks_again_from_the_saved_cursor(db, db_url, vault,
                                                                                         connected, sf):
    sf.block_on_locator_page = 2
    kill_sync_when(db_url, vault, connected["id"], "salesforce", sf.blocked, "query locator page 2")
    sf.block_on_locator_page = None
    sf.release.set()
    sf.expire_query_locators()  # the pause outlived Salesforce's ~15 idle minutes
    report = SyncEngine(db, vault, sleep=lambda s: None).run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    total = rows(db, connected, "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM deals WHERE workspace_id = %s")
    assert total[0]["n"] == total[0]["d"] == 4


def test_two_workspaces_sync_two_orgs_apart(db, vault, engine, workspace, sf):
    from core.workspaces import create_workspace

    with SalesforceApi(org_id="00DFAKE000000002", currency_field=True) as other_org:
        other_org.add("Opportunity", {"Name": "Globex EU", "StageName": "Prospecting", "Amount": 900.0,
                                      "CurrencyIsoCode": "EUR", "CloseDate": "2026-09-30"})
        with db.connection() as conn:
            other = create_workspace(conn, "Globex")
        connect(db, vault, workspace, sf)
        connect(db, vault, other, other_org)
        assert engine.run(workspace["id"], "salesforce").status == "succeeded"
        assert engine.run(other["id"], "salesforce").status == "succeeded"
    mine = rows(db, workspace, "SELECT name FROM deals WHERE workspace_id = %s")
    theirs = rows(db, other, "SELECT name, amount, currency FROM deals WHERE workspace_id = %s")
    assert len(mine) == 4 and "Globex EU" not in {r["name"] for r in mine}
    assert [(r["name"], r["amount"], r["currency"]) for r in theirs] == [("Globex EU", 900, "EUR")]


def test_a_merged_contact_hands_links_from_other_sources_to_the_winner(db, engine, connected, sf):
    from core.db.upsert import upsert_rows

    ids = sf.ids
    engine.run(connected["id"], "salesforce")
    [bob] = rows(db, connected, "SELECT id FROM contacts WHERE workspace_id = %s AND source_id = %s", ids["bob"])
    with db.connection() as conn:  # a recorded call the linker had matched to Bob
        upsert_rows(conn, "conversations", connected["id"],
                    [{"source": "gong", "source_id": "call-1", "title": "Intro", "contact_id": bob["id"]}])
    sf.merge("Contact", ids["ada"], ids["bob"])  # Bob merged into Ada
    report = engine.run(connected["id"], "salesforce")
    assert report.status == "succeeded", report.error
    [ada] = rows(db, connected, "SELECT id FROM contacts WHERE workspace_id = %s AND source_id = %s", ids["ada"])
    [call] = rows(db, connected, "SELECT contact_id FROM conversations WHERE workspace_id = %s")
    assert call["contact_id"] == ada["id"]
    links = rows(db, connected, "SELECT d.source_id AS deal FROM deal_contacts dc JOIN deals d ON d.workspace_id ="
                                " dc.workspace_id AND d.id = dc.deal_id WHERE dc.workspace_id = %s AND dc.contact_id = %s"
                                " ORDER BY 1", ada["id"])
    assert [r["deal"] for r in links] == sorted([ids["opp1"], ids["opp2"]])
    [meeting] = rows(db, connected, "SELECT contact_id FROM activities WHERE workspace_id = %s AND activity_type = 'meeting'")
    assert meeting["contact_id"] == ada["id"]

"""HubSpot sync against the fake portal: what a first (list) sync writes, how incremental search walks, and
how archives and associations land."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from connectors.hubspot.connector import HubSpotConnector
from core.sync import registry
from tests.fakes.hubspot_api import hs_time, record
from tests.test_hubspot_support import (  # noqa: F401 (fixtures)
    TOKEN, connected, connector, hubspot, later, rows,
)


def test_full_sync_writes_typed_deals_with_owners_custom_fields_and_accounts(engine, connected, hubspot):
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "succeeded", report.error
    deals = {r["source_id"]: r for r in rows(engine.db, connected,
             "SELECT * FROM deals WHERE workspace_id = %s")}
    assert set(deals) == {"19171005526", "19171005527", "19171005528", "19171005529"}
    d = deals["19171005526"]
    assert d["amount"] == Decimal("12000") and d["close_date"] == date(2026, 6, 30)
    assert d["owner"] == "John Smith" and d["owner_email"] == "jsmith@example.com"
    assert d["pipeline"] == "Sales Pipeline" and d["probability"] == Decimal("20.00")
    assert d["custom_fields"] == {"renewal_risk": 42.5, "is_strategic": True, "regions": ["emea", "apac"]}
    assert d["account_source_id"] == "5000526215"  # the primary company, not the first listed
    assert d["stage_normalized"] == "qualification" and d["deleted_at"] is None
    assert deals["19171005529"]["amount"] is None and deals["19171005529"]["owner"] is None  # "" and null
    assert deals["19171005528"]["stage_normalized"] == "closed_won"
    [account] = rows(engine.db, connected, "SELECT a.name FROM deals d JOIN accounts a ON a.workspace_id ="
                     " d.workspace_id AND a.id = d.account_id WHERE d.workspace_id = %s AND d.source_id = %s",
                     "19171005526")
    assert account["name"] == "Acme Corp"


def test_pipeline_stages_land_in_metadata_and_stage_mappings(engine, connected):
    engine.run(connected["id"], "hubspot")
    [conn] = rows(engine.db, connected, "SELECT metadata FROM connections WHERE workspace_id = %s")
    stages = conn["metadata"]["deal_stages"]
    assert stages["closedwon"] == {"label": "Closed Won", "pipeline": "default", "closed": True, "won": True,
                                   "probability": 1.0, "order": 5}
    assert conn["metadata"]["owners"]["6166861"]["email"] == "pat.rep@example.com"
    maps = {r["raw_stage"]: r["stage_normalized"] for r in rows(
        engine.db, connected, "SELECT raw_stage, stage_normalized FROM stage_mappings WHERE workspace_id = %s"
        " AND source = 'hubspot'")}
    assert maps["contractsent"] == "negotiation" and maps["closedlost"] == "closed_lost"


def test_stage_history_comes_from_date_entered_properties(engine, connected):
    engine.run(connected["id"], "hubspot")
    history = rows(engine.db, connected, "SELECT stage, entered_at, exited_at, stage_normalized, deal_id IS NOT NULL"
                   " AS linked FROM deal_stage_history WHERE workspace_id = %s AND deal_source_id = %s"
                   " ORDER BY entered_at", "19171005528")
    assert [(h["stage"], h["stage_normalized"], h["linked"]) for h in history] == [
        ("appointmentscheduled", "qualification", True), ("closedwon", "closed_won", True)]
    assert history[0]["exited_at"] is not None and history[1]["exited_at"] is None


def test_associations_become_deal_contacts_with_labels_as_roles(engine, connected):
    report = engine.run(connected["id"], "hubspot")
    links = rows(engine.db, connected, "SELECT d.source_id AS deal, c.source_id AS contact, dc.source, dc.role_source,"
                 " dc.role FROM deal_contacts dc JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id"
                 " JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id"
                 " WHERE dc.workspace_id = %s ORDER BY 1, 2")
    assert [(r["deal"], r["contact"], r["role"]) for r in links] == [
        ("19171005526", "100451", None), ("19171005526", "100452", "Decision maker"), ("19171005527", "100453", None)]
    assert {(r["source"], r["role_source"]) for r in links} == {("hubspot_association", "crm_association")}
    assert report.counts["deal_contacts"]["inserted"] == 3


def test_engagements_map_to_activities_calls_and_tasks(engine, connected):
    engine.run(connected["id"], "hubspot")
    acts = {r["source_id"]: r for r in rows(engine.db, connected, "SELECT * FROM activities WHERE workspace_id = %s")}
    assert {k: acts[k]["activity_type"] for k in acts} == {"7001": "call", "7002": "meeting", "7003": "email",
                                                           "7004": "note"}
    assert acts["7002"]["duration_seconds"] == 45 * 60 and acts["7003"]["direction"] == "inbound"
    assert acts["7001"]["deal_id"] is not None and acts["7001"]["contact_id"] is not None
    [call] = rows(engine.db, connected, "SELECT * FROM calls WHERE workspace_id = %s")
    assert call["duration_seconds"] == 95 and call["direction"] == "outbound" and call["owner"] == "John Smith"
    [task] = rows(engine.db, connected, "SELECT * FROM tasks WHERE workspace_id = %s")
    assert (task["title"], task["status"], task["priority"], task["due_date"]) == (
        "Send contract", "not_started", "high", date(2025, 6, 10))


def test_incremental_sync_searches_only_what_changed_since_the_cursor(engine, connected, hubspot):
    engine.run(connected["id"], "hubspot")
    deal = hubspot.portals[2431623].store("deals").get(19171005527)
    deal["properties"].update(amount="50000", hs_lastmodifieddate=hs_time(later()))
    hubspot.log.clear()
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "succeeded", report.error
    searches = hubspot.requests_to("/deals/search")
    assert searches and not [r for r in hubspot.requests_to("/crm/v3/objects/deals") if r[0] == "GET"
                             and r[2].get("archived") == "false"]
    first = searches[0][2]["filterGroups"][0]["filters"][0]
    assert first["propertyName"] == "hs_lastmodifieddate" and first["operator"] == "GTE"
    assert report.counts["deals"]["updated"] == 1
    [row] = rows(engine.db, connected, "SELECT amount FROM deals WHERE workspace_id = %s AND source_id = %s",
                 "19171005527")
    assert row["amount"] == Decimal("50000")


def test_a_record_modified_during_the_list_walk_is_read_again_next_time(engine, connected, hubspot):
    """Deal …26 is read on page 1, then edited; deal …29, edited a second later, is read on page 2. The next
    cursor must not jump past …26's edit to …29's timestamp."""
    from datetime import datetime, timedelta, timezone

    deals = hubspot.portals[2431623].store("deals")
    done = []

    def edit_after_first_page(method, path, number):
        if not done and path == "/crm/v3/objects/deals" and len(
                [r for r in hubspot.requests_to("/crm/v3/objects/deals") if r[2].get("archived") == "false"]) == 2:
            done.append(number)
            now = datetime.now(timezone.utc)
            deals.get(19171005526)["properties"].update(dealname="Edited mid-sync", hs_lastmodifieddate=hs_time(now))
            deals.get(19171005529)["properties"].update(hs_lastmodifieddate=hs_time(now + timedelta(seconds=1)))
    hubspot.on_request = edit_after_first_page
    engine.run(connected["id"], "hubspot")
    hubspot.on_request = None
    [row] = rows(engine.db, connected, "SELECT name FROM deals WHERE workspace_id = %s AND source_id = %s",
                 "19171005526")
    assert row["name"] == "Acme Corp - Platform"  # read before the edit
    engine.run(connected["id"], "hubspot")
    [row] = rows(engine.db, connected, "SELECT name FROM deals WHERE workspace_id = %s AND source_id = %s",
                 "19171005526")
    assert row["name"] == "Edited mid-sync"


def test_more_than_ten_thousand_changes_with_tied_timestamps_all_arrive(db, vault, workspace, hubspot, sleeps):
    from core.sync.orchestrator import SyncEngine
    from tests.test_hubspot_support import connect

    with registry.registered(HubSpotConnector(hubspot.url, objects=("deals",), search_page=200)):
        connect(db, vault, workspace["id"])
        engine = SyncEngine(db, vault, sleep=sleeps.append)
        engine.run(workspace["id"], "hubspot")
        store = hubspot.portals[2431623].store("deals")
        # 10,450 changed deals; 450 of them share one timestamp (more ties than a page holds)
        stamp = later()
        changed = [record(30_000 + i, "deals", stamp if i < 450 else later(1 + i // 100), dealname=f"Bulk {i}",
                          dealstage="qualifiedtobuy", amount=str(i)) for i in range(10_450)]
        for rec in changed:
            store.put(rec)
        hubspot.log.clear()
        report = engine.run(workspace["id"], "hubspot")
        assert report.status == "succeeded", report.error
        [n] = rows(db, workspace, "SELECT count(*) AS n FROM deals WHERE workspace_id = %s AND name LIKE 'Bulk %%'")
        assert n["n"] == 10_450
        assert all(int(b.get("after") or 0) == 0 for _, _, b in hubspot.requests_to("/deals/search"))
        assert any(f["operator"] == "EQ" for _, _, b in hubspot.requests_to("/deals/search")
                   for f in b.get("filterGroups", [{}])[0].get("filters", []))  # the tie-break walk ran


def test_archived_records_are_soft_deleted_and_restored_ones_come_back(engine, connected, hubspot):
    engine.run(connected["id"], "hubspot")
    deal = hubspot.portals[2431623].store("deals").get(19171005527)
    deal.update(archived=True, archivedAt=hs_time(later()))
    engine.run(connected["id"], "hubspot")
    [row] = rows(engine.db, connected, "SELECT deleted_at, name, account_source_id FROM deals WHERE workspace_id = %s"
                 " AND source_id = %s", "19171005527")
    assert row["deleted_at"] is not None and row["name"] == "Globex - Renewal"
    assert row["account_source_id"] == "5000526216"  # what only a live read knows is kept
    deal.update(archived=False)
    deal.pop("archivedAt")
    deal["properties"]["hs_lastmodifieddate"] = hs_time(later(5))
    engine.run(connected["id"], "hubspot")
    [row] = rows(engine.db, connected, "SELECT deleted_at FROM deals WHERE workspace_id = %s AND source_id = %s",
                 "19171005527")
    assert row["deleted_at"] is None


def test_a_removed_association_removes_only_its_own_link(engine, connected, hubspot):
    engine.run(connected["id"], "hubspot")
    portal = hubspot.portals[2431623]
    portal.associations[("deals", "contacts")]["19171005526"] = [("100451", None)]
    portal.store("deals").get(19171005526)["properties"]["hs_lastmodifieddate"] = hs_time(later())
    engine.run(connected["id"], "hubspot")
    links = rows(engine.db, connected, "SELECT c.source_id FROM deal_contacts dc JOIN deals d ON d.workspace_id ="
                 " dc.workspace_id AND d.id = dc.deal_id JOIN contacts c ON c.workspace_id = dc.workspace_id AND"
                 " c.id = dc.contact_id WHERE dc.workspace_id = %s AND d.source_id = %s", "19171005526")
    assert [r["source_id"] for r in links] == ["100451"]


def test_association_partial_failures_are_retried_not_dropped(engine, connected, hubspot):
    hubspot.assoc_failures = {"19171005526": 2}  # two 207s naming this deal, then success
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "succeeded", report.error
    [n] = rows(engine.db, connected, "SELECT count(*) AS n FROM deal_contacts dc JOIN deals d ON d.workspace_id ="
               " dc.workspace_id AND d.id = dc.deal_id WHERE dc.workspace_id = %s AND d.source_id = %s", "19171005526")
    assert n["n"] == 2


def test_association_reads_that_keep_failing_stop_the_sync_at_that_page(engine, connected, hubspot):
    hubspot.assoc_failures = {"19171005526": 99}
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "failed" and "associated with 1 deals (19171005526)" in report.error
    [state] = rows(engine.db, connected, "SELECT sync_cursors->'deals' AS s FROM connections WHERE workspace_id = %s")
    assert state["s"] is None  # the page was not committed: the next run reads it again
    hubspot.assoc_failures = {}
    assert engine.run(connected["id"], "hubspot").status == "succeeded"


def test_associations_beyond_one_response_are_paged(engine, connected, hubspot):
    hubspot.assoc_page = 1
    engine.run(connected["id"], "hubspot")
    [n] = rows(engine.db, connected, "SELECT count(*) AS n FROM deal_contacts WHERE workspace_id = %s")
    assert n["n"] == 3


def test_properties_that_do_not_fit_the_url_are_batch_read(db, vault, workspace, hubspot, sleeps):
    from core.sync.orchestrator import SyncEngine
    from tests.test_hubspot_support import connect

    hubspot.max_url = 600
    with registry.registered(HubSpotConnector(hubspot.url, objects=("deals",), url_budget=220)):
        connect(db, vault, workspace["id"])
        report = SyncEngine(db, vault, sleep=sleeps.append).run(workspace["id"], "hubspot")
        assert report.status == "succeeded", report.error
        assert hubspot.requests_to("/deals/batch/read")
        [d] = rows(db, workspace, "SELECT custom_fields, stage_entered_at FROM deals WHERE workspace_id = %s"
                   " AND source_id = %s", "19171005526")
        assert d["custom_fields"]["renewal_risk"] == 42.5 and d["stage_entered_at"] is not None


def test_the_backfill_reads_the_associations_the_sync_stored(engine, connected):
    from connectors.hubspot.deal_contacts import populate_deal_contacts_from_source_data

    engine.run(connected["id"], "hubspot")
    with engine.db.connection() as conn:
        assert populate_deal_contacts_from_source_data(conn, connected["id"]) == 0  # the sync wrote them all
        conn.execute("DELETE FROM deal_contacts WHERE workspace_id = %s", (connected["id"],))
        assert populate_deal_contacts_from_source_data(conn, connected["id"]) == 3

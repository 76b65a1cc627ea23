"""HubSpot sync under failure: token expiry (refresh once, persist; then "reconnect HubSpot"), 429 storms,
the daily cap, kill and resume, and two workspaces on two portals."""
from __future__ import annotations


from core.connections import get_connection
from core.sync.orchestrator import SyncEngine
from tests.fakes.hubspot_api import hs_time
from tests.test_hubspot_support import (  # noqa: F401 (fixtures)
    TOKEN, connect, connected, connector, hubspot, later, rows, seed_portal,
)
from tests.support import kill_sync_when

APP = {"client_id": "app-id", "client_secret": "app-secret"}


def oauth_connect(db, vault, ws, hubspot, portal_id=2431623) -> dict:
    creds = {**hubspot.issue_tokens(portal_id), **APP}
    creds.pop("token_type"), creds.pop("expires_in")
    connect(db, vault, ws["id"], creds)
    return creds


def stored(db, vault, ws) -> dict:
    with db.connection() as conn:
        return vault.decrypt(get_connection(conn, ws["id"], "hubspot")["credentials"])


def test_expired_oauth_token_is_refreshed_once_and_persisted(db, vault, workspace, hubspot, connector, engine):
    creds = oauth_connect(db, vault, workspace, hubspot)
    hubspot.on_request = lambda m, p, n: hubspot.expire(creds["access_token"]) if n == 5 else None
    report = engine.run(workspace["id"], "hubspot")
    assert report.status == "succeeded", report.error
    assert [t["grant_type"] for t in hubspot.token_requests] == ["refresh_token"]
    assert hubspot.token_requests[0]["refresh_token"] == creds["refresh_token"]
    saved = stored(db, vault, workspace)
    assert saved["access_token"] != creds["access_token"] and saved["access_token"] in hubspot.tokens
    assert saved["refresh_token"] != creds["refresh_token"] and saved["client_id"] == "app-id"
    assert saved["expires_at"] > 0
    assert len(rows(db, workspace, "SELECT 1 FROM deals WHERE workspace_id = %s")) == 4


def test_a_second_401_after_refreshing_says_reconnect_hubspot(db, vault, workspace, hubspot, connector, engine):
    creds = oauth_connect(db, vault, workspace, hubspot)
    hubspot.expire_every_refresh = True
    hubspot.expire(creds["access_token"])
    report = engine.run(workspace["id"], "hubspot")
    assert report.status == "failed" and report.exception.code == "auth_error"
    assert "reconnect HubSpot" in report.error and creds["access_token"] not in report.error
    assert len(hubspot.token_requests) == 1  # refreshed once, never in a loop
    [conn] = rows(db, workspace, "SELECT status FROM connections WHERE workspace_id = %s")
    assert conn["status"] == "error"


def test_a_refused_refresh_token_says_reconnect_hubspot(db, vault, workspace, hubspot, connector, engine):
    creds = oauth_connect(db, vault, workspace, hubspot)
    hubspot.revoked_refresh.add(creds["refresh_token"])
    hubspot.expire(creds["access_token"])
    report = engine.run(workspace["id"], "hubspot")
    assert report.exception.code == "auth_error" and "reconnect HubSpot" in report.error
    assert stored(db, vault, workspace)["access_token"] == creds["access_token"]


def test_a_revoked_private_app_token_says_reconnect_hubspot(engine, connected, hubspot):
    hubspot.tokens.pop(TOKEN)
    report = engine.run(connected["id"], "hubspot")
    assert report.exception.code == "auth_error" and "reconnect HubSpot" in report.error
    assert TOKEN not in report.error


def test_a_429_storm_is_waited_out_as_retry_after_says(engine, connected, hubspot, sleeps):
    hubspot.storm = 4
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "succeeded", report.error
    assert sleeps.count(1.0) == 4


def test_ten_secondly_429_without_retry_after_waits_the_window(engine, connected, hubspot, sleeps):
    hubspot.storm, hubspot.storm_headers = 2, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    assert engine.run(connected["id"], "hubspot").status == "succeeded"
    assert sleeps.count(10.0) == 2


def test_a_storm_longer_than_the_retry_budget_fails_and_the_next_run_resumes(engine, connected, hubspot):
    hubspot.on_request = lambda m, p, n: setattr(hubspot, "storm", 50) if p == "/crm/v3/objects/contacts" else None
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "failed" and report.exception.code == "rate_limited"
    assert len(rows(engine.db, connected, "SELECT 1 FROM accounts WHERE workspace_id = %s")) == 2  # kept
    hubspot.on_request, hubspot.storm = None, 0
    assert engine.run(connected["id"], "hubspot").status == "succeeded"
    assert len(rows(engine.db, connected, "SELECT 1 FROM contacts WHERE workspace_id = %s")) == 3


def test_the_daily_cap_stops_the_sync_without_retrying(engine, connected, hubspot, sleeps):
    from tests.test_hubspot_support import fixture

    def daily(handler_method, path, number):
        if path == "/crm/v3/objects/deals":
            hubspot.storm, hubspot.storm_headers = 1, {}
    hubspot.on_request = daily
    original = hubspot._rate

    def rate(portal):
        if hubspot.storm:
            hubspot.storm = 0
            return fixture("error_429_daily.json"), {}
        return original(portal)
    hubspot._rate = rate
    report = engine.run(connected["id"], "hubspot")
    assert report.status == "failed" and report.exception.code == "rate_limited"
    assert not [s for s in sleeps if s >= 1]


def test_killed_sync_resumes_at_the_uncommitted_page(db, db_url, vault, connected, hubspot):
    hubspot.block = lambda m, p, n: p == "/crm/v3/objects/contacts" and "after" in hubspot.log[n - 1][2]
    kill_sync_when(db_url, vault, connected["id"], "hubspot", hubspot.blocked, "contacts page 2")
    assert len(rows(db, connected, "SELECT 1 FROM contacts WHERE workspace_id = %s")) == 2  # page 1 committed
    hubspot.block = None
    hubspot.release.set()
    hubspot.log.clear()
    report = SyncEngine(db, vault, sleep=lambda s: None).run(connected["id"], "hubspot")
    assert report.status == "succeeded" and report.resumed
    contact_reads = [q for _, p, q in hubspot.log if p == "/crm/v3/objects/contacts" and q.get("archived") == "false"]
    assert contact_reads[0]["after"] == "100453"  # page 2, not the start
    assert len(rows(db, connected, "SELECT 1 FROM contacts WHERE workspace_id = %s")) == 3
    logs = rows(db, connected, "SELECT status FROM sync_log WHERE workspace_id = %s ORDER BY started_at")
    assert [r["status"] for r in logs] == ["aborted", "succeeded"]


def test_killed_search_walk_resumes_with_search(db, db_url, vault, connected, hubspot, engine):
    engine.run(connected["id"], "hubspot")
    deals = hubspot.portals[2431623].store("deals")
    stamps = [hs_time(later(n)) for n in range(4)]
    for stamp, deal_id in zip(stamps, (19171005526, 19171005527, 19171005528, 19171005529)):
        deals.get(deal_id)["properties"]["hs_lastmodifieddate"] = stamp
    hubspot.block = lambda m, p, n: p == "/crm/v3/objects/deals/search" and len(hubspot.requests_to("/deals/search")) == 2
    hubspot.blocked.clear()
    kill_sync_when(db_url, vault, connected["id"], "hubspot", hubspot.blocked, "the second search window")
    hubspot.block = None
    hubspot.release.set()
    hubspot.log.clear()
    report = SyncEngine(db, vault, sleep=lambda s: None).run(connected["id"], "hubspot")
    assert report.status == "succeeded" and report.resumed
    first = hubspot.requests_to("/deals/search")[0][2]["filterGroups"][0]["filters"][0]
    assert first["value"] == stamps[2]  # from the last committed page's key, not the old cursor
    assert report.counts["deals"]["fetched"] == 2  # the tie re-read of …28 and …29


def test_two_workspaces_sync_their_own_portals(db, vault, workspace, hubspot, connector, engine):
    from core.workspaces import create_workspace

    other_portal = hubspot.add_portal(9999, "pat-na1-portal-two")
    other_portal.store("deals").put({"id": "555", "properties": {"dealname": "Other portal deal", "amount": "1",
                                                                  "hs_lastmodifieddate": "2026-01-01T00:00:00.000Z"},
                                     "archived": False})
    with db.connection() as conn:
        other = create_workspace(conn, "Globex RevOps")
    connect(db, vault, workspace["id"])
    connect(db, vault, other["id"], {"access_token": "pat-na1-portal-two"})
    assert engine.run(workspace["id"], "hubspot").status == "succeeded"
    assert engine.run(other["id"], "hubspot").status == "succeeded"
    mine = {r["source_id"] for r in rows(db, workspace, "SELECT source_id FROM deals WHERE workspace_id = %s")}
    theirs = {r["source_id"] for r in rows(db, other, "SELECT source_id FROM deals WHERE workspace_id = %s")}
    assert theirs == {"555"} and "555" not in mine and len(mine) == 4
    assert not rows(db, other, "SELECT 1 FROM deal_contacts WHERE workspace_id = %s")


def test_a_token_refreshed_while_connecting_is_the_one_saved(db, vault, workspace, hubspot, connector):
    from core.connections import save_connection
    from core.sync.protocol import client_for

    creds = {**hubspot.issue_tokens(2431623), **APP}
    creds.pop("token_type"), creds.pop("expires_in")
    expired = creds["access_token"]
    hubspot.expire(expired)
    with client_for(connector, creds, {}) as client:  # what the Slack modal, REST and CLI connect do
        connector.check_auth(client)
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "hubspot", creds)
    assert stored(db, vault, workspace)["access_token"] != expired
    assert [t["grant_type"] for t in hubspot.token_requests] == ["refresh_token"]


def test_searches_keep_to_their_own_per_second_limit(db, vault, workspace, hubspot, connector):
    """HubSpot's search endpoints allow a few requests a second per token, whatever the burst limit allows
    (429 SECONDLY past it). An incremental sync keeps to it; a client paced by the burst limit alone does not."""
    import time

    from core.sync.orchestrator import SyncEngine
    from tests.test_hubspot_support import FAST, connect

    engine = SyncEngine(db, vault)  # real sleeps: the fake counts real seconds
    connect(db, vault, workspace["id"])
    assert engine.run(workspace["id"], "hubspot").status == "succeeded"  # the first sync lists, no search
    hubspot.search_per_second = 4

    def searches() -> int:
        return len([r for r in hubspot.log if r[0] == "POST" and r[1].endswith("/search")])

    connect(db, vault, workspace["id"], rate_limit={**FAST, "search_per_second": 1000})  # burst pacing only
    report = engine.run(workspace["id"], "hubspot")
    assert report.status == "succeeded", report.error
    assert hubspot.search_violations > 0  # the fake holds the limit: unpaced searches meet 429 SECONDLY

    hubspot.search_violations, before = 0, searches()
    connect(db, vault, workspace["id"], rate_limit={"per_10s": 100_000})  # the default search pace
    started = time.monotonic()
    report = engine.run(workspace["id"], "hubspot")
    took, made = time.monotonic() - started, searches() - before
    assert report.status == "succeeded", report.error
    assert made >= 8 and hubspot.search_violations == 0
    assert took >= (made - 3) / 3 * 0.9  # three a second (four, one kept as headroom)

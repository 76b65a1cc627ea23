"""Gong sync against the fake Gong: directory fetch, tracked-rep partitions, paging, the 404 empty page,
participants without e-mails, CRM context, rate limits, incremental runs and the post-sync linker."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from io import BytesIO

import pytest

from connectors.gong.connector import GongConnector
from core.connections import save_connection, update_metadata
from core.db.upsert import upsert_rows
from core.errors import AuthError
from core.sync import registry
from core.sync.orchestrator import SyncEngine
from connectors.gong.connector import _is_no_calls
from tests.fakes.gong_api import FakeGong, load, make_call
from tests.fakes.server import send_json
from tests.test_gong_support import (  # noqa: F401 (fixtures)
    CREDS, DANA, JON, KEY, SECRET, connect, connected, connector, gong, rows, seed,
)

FIXTURE_CALLS = {"7782342274025937895", "7782342274025937896", "7782342274025937999"}


def conversations(engine, ws):
    return {r["source_id"]: r for r in rows(engine.db, ws, "SELECT * FROM conversations WHERE workspace_id = %s")}


def set_tracked(db, ws, *ids):
    users = {JON: "Jon Snow", DANA: "Dana Manager"}
    with db.connection() as conn:
        update_metadata(conn, ws["id"], "gong", {"tracked_users": [
            {"id": i, "name": users.get(i, i), "email": None} for i in ids]})


def test_directory_is_read_over_every_users_page_into_metadata(db, vault, workspace, gong, connector):
    with connector.client(dict(CREDS), {}) as client:
        assert connector.check_auth(client)["workspaces"][0]["id"] == "623457276584334"
        users = connector.list_users(client)
    assert [u["id"] for u in users] == [JON, DANA, "998877665544332"]   # 2 pages of 2
    assert users[0] == {"id": JON, "name": "Jon Snow", "email": "jon.snow@example.com", "active": True,
                        "title": "Enterprise Account Executive"}
    user_gets = [q for m, p, q, _b in gong.log if p == "/v2/users"]
    assert user_gets[0] == {} and user_gets[1].get("cursor")
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "gong", dict(CREDS), metadata={"users": users})
    [row] = rows(db, workspace, "SELECT metadata FROM connections WHERE workspace_id = %s")
    assert [u["email"] for u in row["metadata"]["users"]] == [
        "jon.snow@example.com", "dana.manager@example.com", "former.rep@example.com"]


def test_bad_credentials_are_an_auth_error(gong, connector):
    with connector.client({"access_key": KEY, "access_key_secret": "wrong"}, {}) as client:
        with pytest.raises(AuthError):
            connector.check_auth(client)


def test_only_tracked_reps_calls_are_fetched_and_stored_with_body_paging(engine, connected, gong):
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    assert set(conversations(engine, connected)) == FIXTURE_CALLS      # Dana's call never stored
    bodies = gong.calls_requests()
    assert len(bodies) == 2                                             # 3 calls, pages of 2
    assert all(b["filter"]["primaryUserIds"] == [JON] for b in bodies)
    assert bodies[0]["contentSelector"] == {"context": "Extended", "exposedFields": {"parties": True}}
    assert "cursor" not in bodies[0] and bodies[1]["cursor"]
    assert bodies[1]["filter"] == bodies[0]["filter"]                  # same body repeated with the cursor
    assert all(q == {} for m, p, q, _b in gong.log if p == "/v2/calls/extensive")  # nothing left in the URL


def test_participants_affiliation_missing_emails_and_crm_context(engine, connected):
    engine.run(connected["id"], "gong")
    calls = conversations(engine, connected)
    c = calls["7782342274025937895"]
    assert c["source"] == "gong" and c["title"] == "Acme Corp <> Example Co | Discovery"
    assert c["started_at"] == datetime(2026, 5, 1, 16, 0, tzinfo=timezone.utc) and c["duration_seconds"] == 1860
    assert c["owner"] == "Jon Snow" and c["organizer_email"] == "jon.snow@example.com"
    assert c["call_url"] == "https://app.gong.io/call?id=7782342274025937895"
    assert c["participants"] == [
        {"name": "Jon Snow", "email": "jon.snow@example.com", "affiliation": "internal"},
        {"name": "Ada Example", "email": "ada@example.org", "affiliation": "external"},
        {"name": "Dial-in User", "email": None, "affiliation": "unknown"}]
    objects = [o for ctx in c["source_data"]["context"] for o in ctx["objects"]]
    assert {(o["objectType"], o["objectId"]) for o in objects} == {
        ("Account", "0015g00000XyZ12AAB"), ("Opportunity", "0065g00000AbCdEAAV")}
    assert c["transcript"] is None
    assert calls["7782342274025937999"]["participants"][1] == {"name": "Dial-in User", "email": None,
                                                               "affiliation": "unknown"}


def test_no_calls_404_is_an_empty_page_not_an_error(engine, connected, gong):
    set_tracked(engine.db, connected, JON, "111222333")   # a rep with no calls at all
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    assert any(b["filter"]["primaryUserIds"] == ["111222333"] for b in gong.calls_requests())
    assert set(conversations(engine, connected)) == FIXTURE_CALLS
    [conn] = rows(engine.db, connected, "SELECT sync_cursors FROM connections WHERE workspace_id = %s")
    assert conn["sync_cursors"]["calls:primaryUserId=111222333"] == {"cursor": None}


@pytest.mark.parametrize("name", ["error_404_no_calls.json", "error_404_no_calls_with_requestId_CONSTRUCTED.json"])
def test_both_no_calls_bodies_are_recognised(name):
    import httpx

    assert _is_no_calls(httpx.Response(404, json=load(name)))
    assert not _is_no_calls(httpx.Response(404, json=load("error_400_bad_filter.json")))


def test_other_errors_still_fail_the_sync(engine, connected, gong):
    set_tracked(engine.db, connected, JON)
    gong.calls.clear()
    original = gong.handle_post
    gong.handle_post = lambda h: send_json(h, 404, {"errors": ["Not found"]})
    report = engine.run(connected["id"], "gong")
    gong.handle_post = original
    assert report.status == "failed" and "404" in report.error


def test_incremental_sync_starts_at_the_last_call_start_per_rep(engine, connected, gong):
    engine.run(connected["id"], "gong")
    gong.log.clear()
    gong.calls.append(make_call("8000000000000000001", JON, "2026-05-03T09:00:00+02:00", title="New call"))
    gong.calls.append(make_call("8000000000000000000", JON, "2026-04-01T09:00:00+00:00", title="Older"))
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    [body] = gong.calls_requests()
    assert body["filter"] == {"primaryUserIds": [JON], "fromDateTime": "2026-05-02T15:30:00Z"}
    calls = conversations(engine, connected)
    assert "8000000000000000001" in calls and "8000000000000000000" not in calls
    assert report.counts["conversations"]["inserted"] == 1
    [conn] = rows(engine.db, connected, "SELECT sync_cursors FROM connections WHERE workspace_id = %s")
    assert conn["sync_cursors"][f"calls:primaryUserId={JON}"] == {"cursor": "2026-05-03T07:00:00Z"}


def test_adding_and_removing_a_rep_changes_fetches_and_keeps_synced_calls(engine, connected, gong):
    set_tracked(engine.db, connected, JON, DANA)
    engine.run(connected["id"], "gong")
    assert "9000000000000000001" in conversations(engine, connected)
    set_tracked(engine.db, connected, JON)
    gong.log.clear()
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    assert all(b["filter"]["primaryUserIds"] == [JON] for b in gong.calls_requests())
    assert "9000000000000000001" in conversations(engine, connected)   # removing a rep keeps its calls


def test_a_call_of_an_untracked_rep_is_dropped_even_if_the_source_returns_it(engine, connected, gong):
    gong.calls.append(make_call("9000000000000000002", DANA, "2026-05-01T12:00:00+00:00"))
    real_post = gong.handle_post

    def ignore_filter(handler):   # a source that ignores primaryUserIds
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length))
        body["filter"].pop("primaryUserIds", None)
        data = json.dumps(body).encode()
        handler.rfile = BytesIO(data)
        handler.headers.replace_header("Content-Length", str(len(data)))
        real_post(handler)
    gong.handle_post = ignore_filter
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    stored = conversations(engine, connected)
    assert not {"9000000000000000001", "9000000000000000002"} & set(stored)
    assert FIXTURE_CALLS <= set(stored)


def test_429_retry_after_is_honoured(engine, connected, gong, sleeps):
    gong.throttle(1)
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    assert 2.0 in sleeps
    assert set(conversations(engine, connected)) == FIXTURE_CALLS


def test_the_client_keeps_under_three_requests_per_second(db, vault, workspace):
    """Real clock and sleep against a fake that 429s a 4th request within any second: no violations."""
    with FakeGong(KEY, SECRET, page_size=1, per_second=3) as fake:
        seed(fake)
        with registry.registered(GongConnector(fake.url)):
            connect(db, vault, workspace["id"], tracked=(JON, DANA), rate_limit={"attempts": 1})
            started = time.monotonic()
            report = SyncEngine(db, vault).run(workspace["id"], "gong")
            elapsed = time.monotonic() - started
    assert report.status == "succeeded", report.error
    assert fake.violations == 0
    requests = len(fake.calls_requests())
    assert requests == 4                                  # Jon 3 pages of 1, Dana 1
    assert elapsed >= (requests - 1) / 3


def test_post_sync_pipeline_links_a_call_to_a_contact_by_email(engine, connected):
    with engine.db.connection() as conn:
        upsert_rows(conn, "contacts", connected["id"], [{"source": "hubspot", "source_id": "c-ada",
                                                         "email": "Ada@Example.org", "first_name": "Ada"}])
    report = engine.run(connected["id"], "gong")
    assert report.status == "succeeded", report.error
    [contact] = rows(engine.db, connected, "SELECT id FROM contacts WHERE workspace_id = %s")
    c = conversations(engine, connected)["7782342274025937895"]
    assert c["contact_id"] == contact["id"] and c["link_method"] == "email_match"
    assert c["is_internal"] is False
    assert conversations(engine, connected)["7782342274025937896"]["is_internal"] is True

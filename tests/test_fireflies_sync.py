"""Fireflies against the fake GraphQL API: directory, tracked-rep filter, limit/skip paging, field mapping with
nulls, rate limits (honoured and reported), auth errors, incremental fromDate and the post-sync linker."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.fireflies.connector import FirefliesConnector
from core.connections import save_connection, update_metadata
from core.db.upsert import upsert_rows
from core.sync import registry
from tests.fakes.fireflies_api import FakeFireflies, too_many_requests, transcript
from tests.support import rows

KEY = "ff-test-key"
FAST = {"requests": 100_000, "period": 1}
JON = {"id": "01HUSERJONSNOW000001", "name": "Jon Snow", "email": "jon.snow@example.com"}
DANA = {"id": "01HUSERDANAMGR000002", "name": "Dana Manager", "email": "dana.manager@example.com"}
DAY = 86_400_000
T0 = 1777651200000  # 2026-05-01T16:00:00Z, the fixture's first call


@pytest.fixture
def fireflies():
    with FakeFireflies(KEY) as fake:
        fake.transcripts.append(transcript("DANA-1", DANA["email"], T0 - 5 * DAY, title="Dana 1:1",
                                           participants=[DANA["email"], "client@other.org"]))
        yield fake


@pytest.fixture
def connector(fireflies):
    from connectors import load_all

    load_all()
    c = FirefliesConnector(fireflies.url, page_size=3)
    with registry.registered(c):
        yield c


def connect(db, vault, ws, tracked=(JON,), key=KEY, **metadata):
    with db.connection() as conn:
        save_connection(conn, vault, ws["id"], "fireflies", {"api_key": key},
                        metadata={"rate_limit": FAST, "users": [JON, DANA], "tracked_users": list(tracked),
                                  **metadata})


def calls(db, ws):
    return {r["source_id"]: r for r in rows(db, ws, "SELECT * FROM conversations WHERE workspace_id = %s"
                                            " AND source = 'fireflies'")}


def test_directory_is_fetched_into_metadata(db, vault, workspace, connector, fireflies):
    with connector.client({"api_key": KEY}, {"rate_limit": FAST}) as client:
        assert connector.check_auth(client)["account_email"] == JON["email"]
        users = connector.list_users(client)
    assert users == [JON, DANA]
    connect(db, vault, workspace, tracked=())
    with db.connection() as conn:
        update_metadata(conn, workspace["id"], "fireflies", {"users": users, "tracked_users": [DANA]})
    [meta] = rows(db, workspace, "SELECT metadata FROM connections WHERE workspace_id = %s")
    assert meta["metadata"]["users"] == users and meta["metadata"]["tracked_users"] == [DANA]


def test_only_tracked_reps_calls_are_stored_with_fields_mapped(db, vault, workspace, connector, fireflies, engine):
    fireflies.transcripts.append(transcript("JON-NULLS", JON["email"], T0 - 9 * DAY, meeting_attendees=None,
                                            participants=None, summary=None, duration=None))
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    got = calls(db, workspace)
    assert set(got) == {"01HZX5B3Q7EXAMPLE0001", "01HZX5B3Q7EXAMPLE0002", "JON-NULLS"}  # never Dana's
    assert {r["variables"]["organizer_email"] for r in fireflies.transcript_requests()} == {JON["email"]}
    c = got["01HZX5B3Q7EXAMPLE0001"]
    assert c["started_at"] == datetime(2026, 5, 1, 16, tzinfo=timezone.utc)
    assert c["duration_seconds"] == 1890 and c["organizer_email"] == JON["email"] and c["owner"] == "Jon Snow"
    assert c["call_url"] == "https://app.fireflies.ai/view/01HZX5B3Q7EXAMPLE0001"
    assert c["summary"] == "Discovery call covering current forecasting process."
    assert c["participants"] == [
        {"name": "Jon Snow", "email": "jon.snow@example.com", "affiliation": "internal"},
        {"name": None, "email": "ada@example.org", "affiliation": "unknown"}]
    assert c["source_data"]["meeting_link"] == "https://meet.google.com/abc-defg-hij"
    assert c["transcript"] is None  # transcripts are fetched on demand, never by sync
    standup = got["01HZX5B3Q7EXAMPLE0002"]
    assert standup["summary"] is None and standup["duration_seconds"] == 720
    assert [p["email"] for p in standup["participants"]] == [JON["email"], DANA["email"]]
    empty = got["JON-NULLS"]
    assert empty["participants"] == [] and empty["summary"] is None and empty["duration_seconds"] is None


def test_paging_by_limit_and_skip_stops_on_short_or_empty_page(db, vault, workspace, connector, fireflies, engine):
    for i in range(4):  # 6 calls for Jon: two full pages of 3, then an empty one
        fireflies.transcripts.append(transcript(f"JON-{i}", JON["email"], T0 - (i + 1) * DAY))
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    assert len(calls(db, workspace)) == 6
    assert [(r["variables"]["limit"], r["variables"]["skip"]) for r in fireflies.transcript_requests()] == [
        (3, 0), (3, 3), (3, 6)]
    fireflies.transcripts.append(transcript("JON-4", JON["email"], T0 - 20 * DAY))
    fireflies.requests.clear()
    engine.run(workspace["id"], "fireflies", full=True)  # 7 calls: the third page is short (1) and last
    assert [r["variables"]["skip"] for r in fireflies.transcript_requests()] == [0, 3, 6]
    assert len(calls(db, workspace)) == 7


def test_tracking_changes_and_incremental_second_sync(db, vault, workspace, connector, fireflies, engine):
    connect(db, vault, workspace)
    assert engine.run(workspace["id"], "fireflies").status == "succeeded"
    fireflies.transcripts.append(transcript("JON-NEW", JON["email"], T0 + DAY))
    fireflies.requests.clear()
    with db.connection() as conn:
        update_metadata(conn, workspace["id"], "fireflies", {"tracked_users": [DANA]})  # Jon removed, Dana added
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    got = calls(db, workspace)
    assert "DANA-1" in got and "01HZX5B3Q7EXAMPLE0001" in got  # Jon's synced calls stay
    assert "JON-NEW" not in got
    assert {r["variables"]["organizer_email"] for r in fireflies.transcript_requests()} == {DANA["email"]}
    with db.connection() as conn:
        update_metadata(conn, workspace["id"], "fireflies", {"tracked_users": [DANA, JON]})
    fireflies.requests.clear()
    assert engine.run(workspace["id"], "fireflies").status == "succeeded"
    jon = [r["variables"] for r in fireflies.transcript_requests() if r["variables"]["organizer_email"] == JON["email"]]
    assert jon[0]["fromDate"] == "2026-05-01T16:00:00.000Z"  # from the largest date seen
    assert "JON-NEW" in calls(db, workspace)


def test_too_many_requests_is_honoured(db, vault, workspace, connector, fireflies, engine, sleeps):
    import time

    fireflies.script.append(too_many_requests(time.time() * 1000 + 3000))
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    assert any(2.0 <= s <= 3.5 for s in sleeps), sleeps
    assert len(calls(db, workspace)) == 2


def test_http_429_with_graphql_body_is_honoured(db, vault, workspace, connector, fireflies, engine, sleeps):
    import time

    fireflies.http_errors = True
    fireflies.script.append(too_many_requests(time.time() * 1000 + 2000))
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    assert any(1.0 <= s <= 2.5 for s in sleeps), sleeps


def test_plan_limit_reached_is_reported_with_the_limit(db, vault, workspace, connector, fireflies, engine):
    fireflies.daily_limit = 0
    connect(db, vault, workspace, rate_limit={"requests": 50, "period": 86_400})
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "failed"
    assert "rate limit" in report.error and "50 requests per day" in report.error
    assert report.exception.code == "rate_limited"


def test_requests_are_paced_by_the_configured_limiter(db, vault, workspace, connector, fireflies, engine, sleeps):
    for i in range(4):
        fireflies.transcripts.append(transcript(f"JON-{i}", JON["email"], T0 - (i + 1) * DAY))
    connect(db, vault, workspace, rate_limit={"requests": 2, "period": 1, "burst": 1})
    assert engine.run(workspace["id"], "fireflies").status == "succeeded"
    waits = [s for s in sleeps if s > 0]
    assert len(waits) >= 2 and all(w <= 1.01 for w in waits)


def test_bad_api_key_asks_to_reconnect(db, vault, workspace, connector, fireflies, engine):
    connect(db, vault, workspace, key="wrong")
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "failed" and "reconnect Fireflies" in report.error
    [conn] = rows(db, workspace, "SELECT status FROM connections WHERE workspace_id = %s")
    assert conn["status"] == "error"


def test_post_sync_links_a_call_to_a_contact_by_email(db, vault, workspace, connector, fireflies, engine):
    with db.connection() as conn:
        upsert_rows(conn, "contacts", workspace["id"], [{"source": "hubspot", "source_id": "c-ada",
                                                         "email": "Ada@Example.org", "first_name": "Ada"}])
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    [row] = rows(db, workspace, "SELECT ct.source_id, cv.link_method, cv.is_internal FROM conversations cv"
                 " JOIN contacts ct ON ct.workspace_id = cv.workspace_id AND ct.id = cv.contact_id"
                 " WHERE cv.workspace_id = %s AND cv.source_id = %s", "01HZX5B3Q7EXAMPLE0001")
    assert row["source_id"] == "c-ada" and row["link_method"] == "email_match" and row["is_internal"] is False


def test_a_failed_walk_resumes_at_the_next_page(db, vault, workspace, connector, fireflies, engine):
    from tests.fakes.fireflies_api import error_body

    for i in range(4):
        fireflies.transcripts.append(transcript(f"JON-{i}", JON["email"], T0 - (i + 1) * DAY))
    fireflies.script = [None, error_body("internal_server_error", "boom", 500)]
    connect(db, vault, workspace)
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "failed" and "boom" in report.error
    assert len(calls(db, workspace)) == 3  # the first page was committed
    fireflies.requests.clear()
    report = engine.run(workspace["id"], "fireflies")
    assert report.status == "succeeded", report.error
    assert report.resumed
    assert [r["variables"]["skip"] for r in fireflies.transcript_requests()] == [3, 6]
    assert len(calls(db, workspace)) == 6


def test_the_organizer_email_is_stored_lower_cased_like_every_other_connector_stores_emails():
    from connectors.fireflies.connector import normalize_transcript
    from core.sync.protocol import StreamContext

    ctx = StreamContext(workspace_id="w", connector="fireflies", metadata={})
    row = normalize_transcript(transcript("t1", " Jon.Snow@Example.COM ", 1_700_000_000_000), ctx,
                               {"id": "u1", "email": "jon.snow@example.com"})
    assert row["organizer_email"] == "jon.snow@example.com"

from __future__ import annotations

import time

import pytest

from core.connections import save_connection
from core.db.database import Database
from core.errors import SyncInProgress
from core.sync import registry
from core.sync.orchestrator import SyncEngine, sync_status
from core.sync.scheduler import DAILY_JOB_ID, build_scheduler, sync_all_active
from tests.fakes.paged_api import PagedApi, make_deals
from tests.fakes.paged_connector import PagedConnector
from tests.support import kill_sync_when

TOKEN = "tok-123"


@pytest.fixture
def connector():
    c = registry.register(PagedConnector(page_size=3))
    yield c
    registry.unregister(c.name)


@pytest.fixture
def api():
    with PagedApi(make_deals(10), require_token=TOKEN) as server:
        yield server


@pytest.fixture
def connected(db, vault, workspace, api, connector):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "fakecrm", {"token": TOKEN}, metadata={"base_url": api.url})
    return workspace


def _deals(db, ws):
    with db.connection() as conn:
        return conn.execute(
            "SELECT source_id, amount FROM deals WHERE workspace_id = %s ORDER BY source_id", (ws["id"],)
        ).fetchall()


def _log(db, ws):
    with db.connection() as conn:
        return conn.execute(
            "SELECT status, pages, counts, error, resumed FROM sync_log WHERE workspace_id = %s ORDER BY started_at",
            (ws["id"],),
        ).fetchall()


def test_full_sync_pages_through_a_429_and_a_500(db, vault, connected, api):
    api.fail_plan = [{"on_request": 2, "status": 429, "headers": {"Retry-After": "1"}}, {"on_request": 3, "status": 500}]
    started = time.monotonic()
    report = SyncEngine(db, vault).run(connected["id"], "fakecrm")
    assert report.status == "succeeded", report.error
    assert time.monotonic() - started >= 0.9  # the Retry-After second was honoured
    assert len(_deals(db, connected)) == 10
    assert report.counts["deals"]["inserted"] == 10
    assert report.pages == 4
    # 4 pages + one retried 429 + one retried 500
    assert len(api.requests) == 6
    [row] = _log(db, connected)
    assert row["status"] == "succeeded" and row["counts"]["deals"]["inserted"] == 10


def test_incremental_sync_asks_only_for_changes_since_the_last_cursor(db, vault, connected, api):
    engine = SyncEngine(db, vault)
    engine.run(connected["id"], "fakecrm")
    api.records[4]["properties"]["amount"] = "9999.00"
    api.records[4]["properties"]["hs_lastmodifieddate"] = "2026-02-01T00:00:00.000Z"
    api.requests.clear()
    report = engine.run(connected["id"], "fakecrm")
    assert report.counts["deals"] == {"fetched": 1, "inserted": 0, "updated": 1, "unchanged": 0}
    assert api.requests[0].query["since"] == "2026-01-01T00:09:00.000Z"
    assert {r["source_id"]: r["amount"] for r in _deals(db, connected)}["1005"] == 9999


def test_full_resync_rewrites_nothing_that_did_not_change(db, vault, connected):
    engine = SyncEngine(db, vault)
    engine.run(connected["id"], "fakecrm")
    report = engine.run(connected["id"], "fakecrm", full=True)
    assert report.counts["deals"] == {"fetched": 10, "inserted": 0, "updated": 0, "unchanged": 10}


def test_killed_sync_resumes_where_it_stopped_without_duplicates(db, db_url, vault, connected, api):
    api.block_on_page = 3
    kill_sync_when(db_url, vault, connected["id"], "fakecrm", api.blocked, "page 3", sleep=None)
    assert len(_deals(db, connected)) == 6  # pages 1-2 committed with their cursor
    api.block_on_page = None
    api.release.set()
    api.requests.clear()

    report = SyncEngine(db, vault).run(connected["id"], "fakecrm")

    assert report.status == "succeeded" and report.resumed
    assert "after" in api.requests[0].query  # resumed at page 3, not from the start
    assert report.counts["deals"]["inserted"] == 4
    rows = _deals(db, connected)
    assert len(rows) == len({r["source_id"] for r in rows}) == 10
    first, second = _log(db, connected)
    assert first["status"] == "aborted" and first["pages"] == 2
    assert second["status"] == "succeeded" and second["resumed"]


def test_two_syncs_of_the_same_source_never_overlap(db, db_url, vault, connected, api):
    api.block_on_page = 1
    handle = SyncEngine(db, vault).start(connected["id"], "fakecrm")
    assert api.blocked.wait(20)
    with pytest.raises(SyncInProgress):
        SyncEngine(Database(db_url), vault).start(connected["id"], "fakecrm")
    api.release.set()
    assert handle.wait(20).status == "succeeded"


def test_background_sync_returns_its_id_at_once(db, vault, connected, api):
    api.block_on_page = 2
    handle = SyncEngine(db, vault).start(connected["id"], "fakecrm")
    assert sync_status(db, connected["id"], handle.sync_id)["status"] == "running"
    api.release.set()
    handle.wait(20)
    status = sync_status(db, connected["id"], handle.sync_id)
    assert status["status"] == "succeeded" and status["records_fetched"] == 10
    assert {"stage_normalization", "resolve_references", "associations"} <= {s["name"] for s in status["steps"]}


def test_rejected_token_fails_the_run_and_flags_the_connection(db, vault, connected, api):
    api.require_token = "rotated"
    report = SyncEngine(db, vault).run(connected["id"], "fakecrm")
    assert report.status == "failed" and report.exception.code == "auth_error"
    assert TOKEN not in report.error
    with db.connection() as conn:
        row = conn.execute("SELECT status, last_error FROM connections WHERE workspace_id = %s", (connected["id"],)).fetchone()
    assert row["status"] == "error" and "401" in row["last_error"]


def test_daily_scheduler_ends_with_one_full_pipeline_run_per_synced_workspace(db, vault, connected, api, monkeypatch):
    import core.sync.scheduler as scheduler

    calls = []
    monkeypatch.setattr(scheduler, "run_post_sync", lambda db, ws, **kw: calls.append((ws, kw)))
    sync_all_active(SyncEngine(db, vault))
    assert calls == [(str(connected["id"]), {})]  # full (not incremental), once


def test_daily_scheduler_syncs_every_active_connection(db, vault, connected, api):
    from core.workspaces import create_workspace

    with db.connection() as conn:
        other = create_workspace(conn, "Globex")
        save_connection(conn, vault, other["id"], "fakecrm", {"token": TOKEN}, metadata={"base_url": api.url})
        paused = create_workspace(conn, "Initech")
        save_connection(conn, vault, paused["id"], "fakecrm", {"token": TOKEN}, metadata={"base_url": api.url}, status="paused")
    results = sync_all_active(SyncEngine(db, vault))
    assert sorted(r["workspace_id"] for r in results) == sorted([str(connected["id"]), str(other["id"])])
    assert all(r["status"] == "succeeded" for r in results)
    assert len(_deals(db, other)) == 10 and len(_deals(db, paused)) == 0

    scheduler = build_scheduler(SyncEngine(db, vault), hour=6)
    job = scheduler.get_job(DAILY_JOB_ID)
    assert str(job.trigger) == "cron[hour='6', minute='0']"


def test_request_bodies_merge_nested_objects_key_by_key():
    from core.sync.orchestrator import _merge

    body = {"query": "q", "variables": {"limit": 50}, "filter": {"a": 1}}
    merged = _merge(_merge(body, {"variables": {"email": "ana@x.io"}}), {"variables": {"fromDate": "2026"},
                                                                         "filter": {"b": [2]}})
    assert merged == {"query": "q", "variables": {"limit": 50, "email": "ana@x.io", "fromDate": "2026"},
                      "filter": {"a": 1, "b": [2]}}
    assert body == {"query": "q", "variables": {"limit": 50}, "filter": {"a": 1}}  # the stream's own body is untouched


def test_a_connector_registered_for_a_block_gives_back_what_was_there():
    from types import SimpleNamespace

    from core.sync import registry

    before, fake = SimpleNamespace(name="registry_probe"), SimpleNamespace(name="registry_probe")
    registry.register(before)
    try:
        with pytest.raises(RuntimeError), registry.registered(fake):
            assert registry.get("registry_probe") is fake
            raise RuntimeError("the test failed mid-way")
        assert registry.get("registry_probe") is before
    finally:
        registry.unregister("registry_probe")
    with registry.registered(fake):
        assert registry.get("registry_probe") is fake
    assert "registry_probe" not in registry.names()

"""REST connectors against the test connector and its fake API (tests/fakes/paged_*): connect checks the
credential before saving and never echoes it, a background sync answers 202 and is polled to completion,
status and listing show the last sync."""
from __future__ import annotations

import json
import time

import pytest

from core.sync import registry
from tests.fakes.paged_api import PagedApi, make_deals
from tests.fakes.paged_connector import PagedConnector
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace

TOKEN = "tok-sidecar-123"


@pytest.fixture
def connector():
    c = registry.register(PagedConnector(page_size=3))
    yield c
    registry.unregister(c.name)


@pytest.fixture
def fake_api():
    with PagedApi(make_deals(10), require_token=TOKEN) as server:
        yield server


@pytest.fixture
def api(db, settings, connector):
    client, jobs = make_client(db, settings)
    ws = new_workspace(db)
    with client:
        yield Api(client, ws, new_key(db, ws), jobs)
    assert jobs.join(30)


def connection_rows(db, ws) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT connector_name, credentials, metadata FROM connections WHERE workspace_id = %s",
                            (ws,)).fetchall()


def wait_for_sync(api: Api, sync_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/syncs/{sync_id}").json()
        if status["status"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"sync {sync_id} still running")


def test_a_rejected_credential_is_422_and_nothing_is_saved(db, api, fake_api):
    r = api.post("/connectors/fakecrm/connect", {"credentials": {"token": "wrong"}, "metadata": {"base_url": fake_api.url}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "auth_error"
    assert "wrong" not in r.text
    assert connection_rows(db, api.workspace_id) == []


def test_connect_saves_encrypted_credentials_and_never_echoes_them(db, api, fake_api):
    r = api.post("/connectors/fakecrm/connect", {"credentials": {"token": TOKEN}, "metadata": {"base_url": fake_api.url}})
    assert r.status_code == 200, r.text
    assert r.json()["connector"] == "fakecrm" and r.json()["account"] == {"portal": "fake"}
    assert TOKEN not in r.text
    [row] = connection_rows(db, api.workspace_id)
    assert TOKEN.encode() not in bytes(row["credentials"])
    assert row["metadata"]["base_url"] == fake_api.url
    listed = api.get("/connectors").json()
    assert [c["connector_name"] for c in listed["connectors"]] == ["fakecrm"]
    assert TOKEN not in json.dumps(listed)


@pytest.mark.parametrize("body, field", [
    ({}, "credentials"),
    ({"credentials": {}}, "credentials.token"),
    ({"credentials": {"token": "x", "password": "y"}}, "credentials.password"),
    ({"credentials": {"token": 5}}, "credentials.token"),
    ({"credentials": {"token": "x"}, "metadata": []}, "metadata"),
])
def test_malformed_connect_bodies_are_400_naming_the_field(db, api, body, field):
    r = api.post("/connectors/fakecrm/connect", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert connection_rows(db, api.workspace_id) == []


def test_an_unknown_connector_is_404(api):
    r = api.post("/connectors/nosuchcrm/connect", {"credentials": {}})
    assert r.status_code == 404 and "no connector named" in r.json()["error"]["message"]
    assert api.get("/connectors/nosuchcrm/status").status_code == 404
    assert "fakecrm" in [c["name"] for c in api.get("/connectors").json()["available"]]


def test_a_sync_runs_in_the_background_and_is_polled_to_completion(db, api, fake_api):
    api.post("/connectors/fakecrm/connect", {"credentials": {"token": TOKEN}, "metadata": {"base_url": fake_api.url}})
    r = api.post("/connectors/fakecrm/sync", {})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "running" and started["status_url"].endswith(started["sync_id"])
    done = wait_for_sync(api, started["sync_id"])
    assert done["status"] == "succeeded", done
    assert done["counts"]["deals"]["inserted"] == 10 and done["trigger"] == "api"
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM deals WHERE workspace_id = %s",
                            (api.workspace_id,)).fetchone()["n"] == 10
    status = api.get("/connectors/fakecrm/status").json()
    assert status["last_sync_status"] == "succeeded" and status["last_sync"]["sync_id"] == started["sync_id"]


def test_a_second_sync_while_one_runs_is_409(api, fake_api):
    fake_api.block_on_page = 2
    api.post("/connectors/fakecrm/connect", {"credentials": {"token": TOKEN}, "metadata": {"base_url": fake_api.url}})
    first = api.post("/connectors/fakecrm/sync").json()
    assert fake_api.blocked.wait(10)
    r = api.post("/connectors/fakecrm/sync")
    assert r.status_code == 409 and r.json()["error"]["code"] == "sync_in_progress"
    fake_api.release.set()
    assert wait_for_sync(api, first["sync_id"])["status"] == "succeeded"


def test_syncing_a_source_that_is_not_connected_is_404(api):
    r = api.post("/connectors/fakecrm/sync")
    assert r.status_code == 404 and "pandora connect fakecrm" in r.json()["error"]["message"]


def test_an_unknown_sync_id_is_404_and_a_malformed_one_400(api):
    assert api.get("/syncs/00000000-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/syncs/yesterday").status_code == 400


class DirectoryConnector(PagedConnector):
    """A conversation-style connector: the same fake API, plus a user directory (two-step connect)."""

    name = "fakecalls"
    label = "Fake Calls"

    def list_users(self, client):
        client.get_json("/v1/deals", params={"limit": 1})  # an authenticated call, like a real directory fetch
        return [{"id": 7, "name": "Dana Whitfield", "email": "dana@demo.co"}, {"id": "8", "name": "Sam Ortiz"},
                {"name": "no id"}]


@pytest.fixture
def calls_connector():
    c = registry.register(DirectoryConnector(page_size=3))
    yield c
    registry.unregister(c.name)


def test_a_conversation_connect_fetches_the_directory_then_tracks_chosen_reps(db, api, fake_api, calls_connector):
    r = api.post("/connectors/fakecalls/connect", {"credentials": {"token": TOKEN}, "metadata": {"base_url": fake_api.url}})
    assert r.status_code == 200, r.text
    assert r.json()["directory_users"] == 2 and r.json()["next"].endswith("/connectors/fakecalls/tracked-users")
    directory = api.get("/connectors/fakecalls/users").json()
    assert [u["id"] for u in directory["users"]] == ["7", "8"] and directory["tracked_users"] == []
    r = api.post("/connectors/fakecalls/tracked-users", {"user_ids": [7, "7"]})
    assert r.status_code == 200, r.text
    assert r.json()["tracked_users"] == [{"id": "7", "name": "Dana Whitfield", "email": "dana@demo.co"}]
    roster = api.get("/sales-roster").json()
    assert [rep["email"] for rep in roster["reps"]] == ["dana@demo.co"]
    r = api.post("/connectors/fakecalls/tracked-users", {"user_ids": ["99"]})
    assert r.status_code == 400 and "99" in r.json()["error"]["message"]
    assert api.get("/connectors/fakecalls/status").json()["tracked_users"] == 1


def test_a_credential_echoed_in_a_source_error_is_scrubbed(db, api, connector):
    with PagedApi(make_deals(1), fail_plan=[{"status": 400, "body": {"message": "bad token tok-echoed-secret"}}]) as server:
        r = api.post("/connectors/fakecrm/connect", {"credentials": {"token": "tok-echoed-secret"},
                                                     "metadata": {"base_url": server.url}})
    assert r.status_code == 422, r.text
    assert "tok-echoed-secret" not in r.text and "•••" in r.json()["error"]["message"]
    assert connection_rows(db, api.workspace_id) == []

"""REST authentication and tenant isolation: API keys (hashed, revocable, last used), 401s, and 404 for any
workspace but the key's own; the error shape; the `pandora apikey` / `pandora webhook` CLI."""
from __future__ import annotations

import json
import uuid

import pytest

from bot.cli import main
from core.api_keys import authenticate, create_api_key, hash_key, list_api_keys, revoke_api_key
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace


@pytest.fixture
def client(db, settings):
    client, jobs = make_client(db, settings)
    with client:
        yield client
    jobs.join()


def test_a_request_without_a_key_is_401_with_a_hint(db, client):
    ws = new_workspace(db)
    r = client.get(f"/api/workspaces/{ws}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    error = r.json()["error"]
    assert error["code"] == "unauthorized" and "pandora apikey create" in error["message"]


@pytest.mark.parametrize("header", ["Bearer pk_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer ", "pk_raw"])
def test_an_invalid_key_or_scheme_is_401(db, client, header):
    ws = new_workspace(db)
    r = client.get(f"/api/workspaces/{ws}", headers={"Authorization": header})
    assert r.status_code == 401
    assert set(r.json()["error"]) >= {"code", "message"}


def test_a_revoked_key_is_401(db, client):
    ws = new_workspace(db)
    key = new_key(db, ws)
    api = Api(client, ws, key, None)
    assert api.get().status_code == 200
    with db.connection() as conn:
        revoke_api_key(conn, ws, key[:11])
    r = api.get()
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_another_workspaces_id_is_404_like_a_missing_one(db, client):
    mine, theirs = new_workspace(db, "Mine"), new_workspace(db, "Theirs")
    key = new_key(db, mine)
    headers = {"Authorization": f"Bearer {key}"}
    for ws in (theirs, str(uuid.uuid4()), "not-a-uuid"):
        for path in ("", "/deals", "/connectors", "/sales-roster"):
            r = client.get(f"/api/workspaces/{ws}{path}", headers=headers)
            assert r.status_code == 404, (ws, path)
            assert r.json()["error"]["code"] == "not_found"
    r = client.post(f"/api/workspaces/{theirs}/import/relink", headers=headers)
    assert r.status_code == 404


def test_the_key_sees_its_own_workspace(db, client):
    ws = new_workspace(db, "Own")
    api = Api(client, ws, new_key(db, ws), None)
    r = api.get()
    assert r.status_code == 200
    assert r.json()["id"] == ws and r.json()["name"].startswith("Own ")
    listed = client.get("/api/workspaces", headers=api.headers()).json()["workspaces"]
    assert [w["id"] for w in listed] == [ws]


def test_keys_are_stored_hashed_and_record_last_use(db, client):
    ws = new_workspace(db)
    with db.connection() as conn:
        row, key = create_api_key(conn, ws, "zapier")
        stored = conn.execute("SELECT key_hash, prefix FROM api_keys WHERE workspace_id = %s", (ws,)).fetchone()
    assert key.startswith("pk_") and len(key) > 40
    assert stored["key_hash"] == hash_key(key) and key not in json.dumps(stored)
    assert stored["prefix"] == key[:11] and row["last_used_at"] is None
    assert Api(client, ws, key, None).get().status_code == 200
    with db.connection() as conn:
        assert list_api_keys(conn, ws)[0]["last_used_at"] is not None


def test_authenticate_refuses_unknown_and_revoked_keys(db):
    ws = new_workspace(db)
    with db.connection() as conn:
        row, key = create_api_key(conn, ws)
        assert authenticate(conn, key)["workspace_id"] == uuid.UUID(ws)
        assert authenticate(conn, key + "x") is None
        revoke_api_key(conn, ws, str(row["id"]))
        assert authenticate(conn, key) is None


def test_an_unknown_route_and_a_wrong_method_are_not_tracebacks(db, client):
    ws = new_workspace(db)
    headers = {"Authorization": f"Bearer {new_key(db, ws)}"}
    assert client.get(f"/api/workspaces/{ws}/nothing-here", headers=headers).status_code == 404
    assert client.delete(f"/api/workspaces/{ws}/deals", headers=headers).status_code == 405


def test_a_malformed_json_body_is_400(db, client):
    ws = new_workspace(db)
    r = client.post(f"/api/workspaces/{ws}/skills/forecast/run", content=b"{not json",
                    headers={"Authorization": f"Bearer {new_key(db, ws)}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_cli_creates_lists_and_revokes_keys(db, settings, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PANDORA_HOME", str(settings.pandora_home))
    monkeypatch.setenv("PANDORA_SECRET_KEY", settings.secret_key)
    ws = new_workspace(db)
    assert main(["apikey", "create", "--workspace", ws, "--label", "ci", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("pk_") and created["label"] == "ci"
    assert main(["apikey", "list", "--workspace", ws, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [k["prefix"] for k in listed] == [created["prefix"]] and "key" not in listed[0]
    assert main(["apikey", "revoke", created["prefix"], "--workspace", ws, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"]
    assert main(["apikey", "revoke", "pk_nope", "--workspace", ws, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_found"


def test_cli_webhook_secret_is_stable_until_rotated(db, settings, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PANDORA_HOME", str(settings.pandora_home))
    monkeypatch.setenv("PANDORA_SECRET_KEY", settings.secret_key)
    ws = new_workspace(db)
    secrets = []
    for extra in ([], [], ["--rotate"]):
        assert main(["webhook", "secret", "--workspace", ws, "--json", *extra]) == 0
        secrets.append(json.loads(capsys.readouterr().out)["secret"])
    assert secrets[0] == secrets[1] != secrets[2]
    with db.connection() as conn:
        stored = bytes(conn.execute("SELECT secret FROM webhook_secrets WHERE workspace_id = %s", (ws,)).fetchone()["secret"])
    assert secrets[2].encode() not in stored  # encrypted at rest

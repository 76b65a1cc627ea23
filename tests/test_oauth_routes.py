"""The CRM OAuth web flow over the real sidecar routes and the fake HubSpot token endpoint: a signed start link
redirects to the provider with a one-time state; the callback exchanges the code, checks the token and saves
the connection encrypted; refusals, replays and expired links connect nothing."""
from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.sidecar.routes_oauth import start_url
from core.connections import get_connection
from core.credentials import Vault
from tests.test_hubspot_support import connector, hubspot  # noqa: F401 (fixtures)
from tests.test_sidecar_support import make_client, new_workspace


@pytest.fixture
def app_settings(settings):
    return dataclasses.replace(settings, hubspot_client_id="app-id", hubspot_client_secret="app-secret",
                               public_url="https://pandora.example.com")


@pytest.fixture
def web(db, app_settings, connector):
    client, _jobs = make_client(db, app_settings)
    return client


def begin(web, app_settings, ws) -> dict:
    url = start_url(app_settings, Vault.from_settings(app_settings), "hubspot", ws)
    response = web.get(url.removeprefix(app_settings.public_url), follow_redirects=False)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    return {"location": location, "query": {k: v[0] for k, v in parse_qs(location.query).items()}}


def connection(db, ws):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM connections WHERE workspace_id = %s", (ws,)).fetchone()


def test_start_then_callback_connects_the_portal_with_encrypted_tokens(db, web, app_settings, hubspot):
    ws = new_workspace(db)
    started = begin(web, app_settings, ws)
    q = started["query"]
    assert started["location"].netloc == "app.hubspot.com" and started["location"].path == "/oauth/authorize"
    assert q["client_id"] == "app-id" and q["redirect_uri"] == "https://pandora.example.com/oauth/hubspot/callback"
    assert "crm.objects.deals.read" in q["scope"].split(" ")
    hubspot.codes["code-123"] = 2431623  # the user approved in HubSpot
    done = web.get("/oauth/hubspot/callback", params={"code": "code-123", "state": q["state"]})
    assert done.status_code == 200, done.text
    assert "HubSpot connected" in done.text and "2431623" in done.text
    assert [t["grant_type"] for t in hubspot.token_requests] == ["authorization_code"]
    assert hubspot.token_requests[0]["redirect_uri"] == q["redirect_uri"]
    with db.connection() as conn:
        row = get_connection(conn, ws, "hubspot")
    creds = Vault.from_settings(app_settings).decrypt(row["credentials"])
    assert creds["access_token"].startswith("at-2431623-") and creds["refresh_token"].startswith("rt-2431623-")
    assert creds["access_token"] not in done.text
    assert row["metadata"]["account"]["portal_id"] == "2431623" and row["status"] == "active"
    replay = web.get("/oauth/hubspot/callback", params={"code": "code-123", "state": q["state"]})
    assert replay.status_code == 400 and "already used or has expired" in replay.text


def test_a_link_for_another_workspace_or_a_forged_one_starts_nothing(db, web, app_settings):
    ws, other = new_workspace(db), new_workspace(db)
    url = start_url(app_settings, Vault.from_settings(app_settings), "hubspot", ws)
    forged = url.removeprefix(app_settings.public_url).replace(ws, other)
    assert web.get(forged, follow_redirects=False).status_code == 400
    bad = web.get("/oauth/hubspot/start", params={"workspace_id": ws, "link": "nope"}, follow_redirects=False)
    assert bad.status_code == 400 and "not valid" in bad.text


def test_an_expired_link_starts_nothing(db, web, app_settings):
    ws = new_workspace(db)
    url = start_url(app_settings, Vault.from_settings(app_settings), "hubspot", ws, now=1_000_000)
    response = web.get(url.removeprefix(app_settings.public_url), follow_redirects=False)
    assert response.status_code == 400 and "expired" in response.text


def test_a_cancelled_sign_in_connects_nothing(db, web, app_settings):
    ws = new_workspace(db)
    begin(web, app_settings, ws)
    response = web.get("/oauth/hubspot/callback", params={"error": "access_denied"})
    assert response.status_code == 400 and "cancelled" in response.text
    assert connection(db, ws) is None


def test_a_refused_code_exchange_connects_nothing(db, web, app_settings, hubspot):
    ws = new_workspace(db)
    q = begin(web, app_settings, ws)["query"]
    response = web.get("/oauth/hubspot/callback", params={"code": "never-issued", "state": q["state"]})
    assert response.status_code == 400 and "refused the sign-in" in response.text
    assert connection(db, ws) is None


def test_an_expired_state_is_refused(db, web, app_settings, hubspot):
    ws = new_workspace(db)
    q = begin(web, app_settings, ws)["query"]
    with db.connection() as conn:
        conn.execute("UPDATE connector_oauth_states SET expires_at = now() - interval '1 minute'")
    hubspot.codes["code-9"] = 2431623
    response = web.get("/oauth/hubspot/callback", params={"code": "code-9", "state": q["state"]})
    assert response.status_code == 400 and connection(db, ws) is None


def test_without_app_credentials_the_start_page_names_the_settings(db, settings, connector):
    client, _ = make_client(db, settings)
    ws = new_workspace(db)
    url = start_url(settings, Vault.from_settings(settings), "hubspot", ws)
    response = client.get(url.removeprefix(settings.public_url), follow_redirects=False)
    assert response.status_code == 400 and "HUBSPOT_CLIENT_ID" in response.text

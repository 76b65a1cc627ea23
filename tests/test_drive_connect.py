"""Connecting Google Drive: the OAuth web flow through the sidecar (offline access, consent, drive.readonly),
the picker's folder and shared-drive lists, the document-type heuristic and when folders changed shape."""
from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.sidecar.routes_oauth import start_url
from connectors.google_drive.folders import reshaped
from connectors.google_drive.normalize import doc_type
from core.connections import get_connection
from core.credentials import Vault
from tests.fakes.drive_api import APP_ID, APP_SECRET, SLIDES
from tests.test_drive_support import ROOT, connector, credentials, drive  # noqa: F401 (fixtures)
from tests.test_sidecar_support import make_client, new_workspace


@pytest.fixture
def app_settings(settings):
    return dataclasses.replace(settings, google_client_id=APP_ID, google_client_secret=APP_SECRET,
                               public_url="https://pandora.example.com")


def test_sign_in_with_google_asks_for_offline_read_only_access_and_stores_the_tokens(db, app_settings, drive,
                                                                                   connector):
    web, _jobs = make_client(db, app_settings)
    ws = new_workspace(db)
    url = start_url(app_settings, Vault.from_settings(app_settings), "google_drive", ws)
    started = web.get(url.removeprefix(app_settings.public_url), follow_redirects=False)
    assert started.status_code == 302, started.text
    location = urlsplit(started.headers["location"])
    q = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert location.netloc == "accounts.google.com" and location.path == "/o/oauth2/v2/auth"
    assert q["scope"] == "https://www.googleapis.com/auth/drive.readonly" and q["client_id"] == APP_ID
    assert q["access_type"] == "offline" and q["prompt"] == "consent" and q["response_type"] == "code"
    drive.codes["code-1"] = True
    done = web.get("/oauth/google_drive/callback", params={"code": "code-1", "state": q["state"]})
    assert done.status_code == 200 and "Google Drive connected" in done.text, done.text
    assert drive.token_requests[0]["grant_type"] == "authorization_code"
    with db.connection() as conn:
        row = get_connection(conn, ws, "google_drive")
    creds = Vault.from_settings(app_settings).decrypt(row["credentials"])
    assert creds["access_token"] in drive.tokens and creds["refresh_token"].startswith("1//")
    assert creds["expires_at"] > 0 and creds["access_token"] not in done.text
    assert row["metadata"]["account"]["email"] == "dana.manager@example.com"


def test_the_picker_lists_folders_and_shared_drives(drive, connector):
    with connector.client(credentials(drive), {}) as client:
        assert connector.check_auth(client)["email"] == "dana.manager@example.com"
        everything = connector.list_folders(client)
        inside = connector.list_folders(client, ROOT)
        drives = connector.list_shared_drives(client)
    assert [f["name"] for f in everything] == ["Acme Corp", "Customers", "Globex", "Initech", "Personal", "Sales"]
    assert [f["name"] for f in inside] == ["Customers"] and inside[0]["parents"] == [ROOT]
    assert drives == [{"id": drive.seed.drive, "name": "Deals Room"}]


def test_a_plain_access_token_works_without_a_refresh_token(drive, connector):
    token = drive.issue_tokens()["access_token"]
    with connector.client({"access_token": token}, {}) as client:
        assert connector.check_auth(client)["name"] == "Dana Manager"


@pytest.mark.parametrize("title, mime, expected", [
    ("Acme — Signed Order Form.pdf", "application/pdf", "contract"),
    ("Acme MSA (redlined).docx", "application/msword", "contract"),
    ("Proposal deck for Acme", SLIDES, "proposal"),
    ("Acme pricing v2", "application/vnd.google-apps.spreadsheet", "proposal"),
    ("Acme QBR", SLIDES, "deck"),
    ("Kickoff", SLIDES, "deck"),
    ("Discovery call notes", "application/vnd.google-apps.document", "notes"),
    ("Mutual Success Plan", "application/vnd.google-apps.document", "notes"),
    ("territories.csv", "text/csv", "other"),
])
def test_document_types_come_from_the_title_then_the_file_type(title, mime, expected):
    assert doc_type(title, mime) == expected


def test_folders_changed_shape_unless_only_brand_new_folders_appeared():
    old = {"r": {"name": "Sales", "parent": None}, "a": {"name": "Acme", "parent": "r"}}
    walked = "2026-05-01T08:00:00+00:00"
    assert not reshaped(old, dict(old), walked)
    assert reshaped(old, {**old, "a": {"name": "ACME", "parent": "r"}}, walked)                 # renamed
    assert reshaped(old, {"r": old["r"]}, walked)                                              # gone
    new_folder = {"name": "Globex", "parent": "r", "created": "2026-05-01T09:00:00.000Z"}
    assert not reshaped(old, {**old, "g": new_folder}, walked)                                 # made since
    moved_in = {**new_folder, "created": "2025-01-01T00:00:00.000Z"}
    assert reshaped(old, {**old, "g": moved_in}, walked)                                       # old: moved in
    just_before = {**new_folder, "created": "2026-05-01T08:05:00.000Z"}
    assert reshaped(old, {**old, "g": just_before}, walked)                                    # within the margin

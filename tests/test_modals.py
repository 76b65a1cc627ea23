"""Modals: connect a source (checked against a real fake API before saving), tracked-rep selection, the context
layer editor and the quota editor, against real Postgres. Views are validated with slack_sdk's view model."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest
from slack_sdk.models.views import View

from bot import modals
from core.connections import get_connection, update_metadata
from core.context import get_context
from core.credentials import Vault
from core.errors import NotFound
from core.quotas import fiscal_quarter, list_quotas
from core.sync import registry
from core.sync.protocol import CredentialField
from tests.fakes.paged_api import PagedApi
from tests.fakes.paged_connector import PagedConnector
from tests.fakes.server import send_json

TOKEN = "tok-very-secret-123"
USERS = [{"id": "u1", "name": "Dana Reyes", "email": "dana@acme.io"},
         {"id": "u2", "name": "Fox Mulder", "email": "fox@acme.io"},
         {"id": "u3", "name": "Eng Standup Bot", "email": "eng@acme.io"}]


class DirectoryApi(PagedApi):
    """PagedApi plus a user directory at /v1/users (same token check)."""

    def __init__(self, users, **kwargs) -> None:
        super().__init__(**kwargs)
        self.users = users

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        if urlsplit(handler.path).path != "/v1/users":
            return super().handle_get(handler)
        if handler.headers.get("Authorization") != f"Bearer {self.require_token}":
            return send_json(handler, 401, {"message": "bad token"})
        send_json(handler, 200, {"users": self.users})


class CallsConnector(PagedConnector):
    """A conversation-style test connector: a secret token, a non-secret subdomain, and a user directory."""

    name = "fakecalls"
    label = "Fake Calls"
    credential_fields = [CredentialField("token", "API token"),
                         CredentialField("subdomain", "Subdomain", secret=False, required=False)]

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def client(self, credentials, metadata, *, transport=None, sleep=None):
        return super().client(credentials, {**metadata, "base_url": self.base_url}, transport=transport, sleep=sleep)

    def list_users(self, client):
        return client.get_json("/v1/users")["users"]


class CrmConnector(PagedConnector):
    """A CRM-style test connector: no user directory, so connecting has no second step."""

    name = "fakecrm2"

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def client(self, credentials, metadata, *, transport=None, sleep=None):
        return super().client(credentials, {**metadata, "base_url": self.base_url}, transport=transport, sleep=sleep)


@pytest.fixture
def api():
    with DirectoryApi(USERS, require_token=TOKEN) as server:
        yield server


@pytest.fixture
def calls(api):
    connector = registry.register(CallsConnector(api.url))
    yield connector
    registry.unregister(connector.name)


def submitted(view: dict, values: dict) -> dict:
    """The view as Slack sends it back in a view_submission: the same view plus state.values. A str value fills
    a text input, a list of values a multi-select, ("one", value) a single select."""
    state = {}
    for block_id, value in values.items():
        if isinstance(value, list):
            state[block_id] = {"value": {"type": "multi_static_select",
                                         "selected_options": [{"value": v} for v in value]}}
        elif isinstance(value, tuple):
            state[block_id] = {"value": {"type": "static_select", "selected_option": {"value": value[1]}}}
        else:
            state[block_id] = {"value": {"type": "plain_text_input", "value": value}}
    return {**view, "state": {"values": state}}


def inputs(view: dict) -> dict[str, dict]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def valid(view: dict) -> dict:
    View(**view).validate_json()
    return view


def connection(db, workspace, name):
    with db.connection() as conn:
        return get_connection(conn, workspace["id"], name)


# --- connect ------------------------------------------------------------------------------------------------------

def test_connect_view_has_one_input_per_credential_field(calls):
    view = valid(modals.connect_view("fakecalls"))
    assert view["callback_id"] == "connect_submit" and json.loads(view["private_metadata"]) == {"connector": "fakecalls"}
    assert list(inputs(view)) == ["cred_token", "cred_subdomain"]
    assert inputs(view)["cred_token"]["optional"] is False and inputs(view)["cred_subdomain"]["optional"] is True


def test_editing_a_connection_never_prefills_the_secret(calls):
    view = valid(modals.connect_view("fakecalls", existing={"token": TOKEN, "subdomain": "acme"}))
    assert TOKEN not in json.dumps(view)
    token = inputs(view)["cred_token"]
    assert "initial_value" not in token["element"] and token["optional"] is True
    assert "Leave blank to keep the saved value" in token["hint"]["text"]
    assert inputs(view)["cred_subdomain"]["element"]["initial_value"] == "acme"


def test_good_credentials_are_saved_and_lead_to_rep_selection(db, settings, workspace, calls):
    view = submitted(modals.connect_view("fakecalls"), {"cred_token": TOKEN, "cred_subdomain": "acme"})
    outcome = modals.submit(db, settings, workspace["id"], view)
    assert outcome.errors == {} and outcome.next_view["callback_id"] == "tracked_reps_submit"
    row = connection(db, workspace, "fakecalls")
    assert Vault.from_settings(settings).decrypt(row["credentials"]) == {"token": TOKEN, "subdomain": "acme"}
    assert [u["id"] for u in row["metadata"]["users"]] == ["u1", "u3", "u2"]  # sorted by name
    assert row["metadata"]["users_fetched_at"] and row["metadata"]["account"] == {"portal": "fake"}
    options = outcome.next_view["blocks"][1]["element"]["options"]
    assert [o["value"] for o in options] == ["u1", "u3", "u2"]
    assert TOKEN not in json.dumps([outcome.next_view, outcome.message, outcome.data], default=str)


def test_rejected_credentials_show_an_error_on_the_field_and_save_nothing(db, settings, workspace, calls):
    wrong = "tok-wrong-but-secret-999"
    view = submitted(modals.connect_view("fakecalls"), {"cred_token": wrong})
    outcome = modals.submit(db, settings, workspace["id"], view)
    assert list(outcome.errors) == ["cred_token"] and "Fake Calls rejected these credentials" in outcome.errors["cred_token"]
    assert outcome.next_view is None and outcome.message is None
    assert wrong not in json.dumps([outcome.errors, outcome.data], default=str)
    with pytest.raises(NotFound):
        connection(db, workspace, "fakecalls")


def test_a_missing_required_field_is_named(db, settings, workspace, calls, api):
    outcome = modals.submit(db, settings, workspace["id"], submitted(modals.connect_view("fakecalls"), {}))
    assert outcome.errors == {"cred_token": "API token is required."}
    assert api.requests == []  # nothing was even tried


def test_a_blank_secret_keeps_the_saved_one(db, settings, workspace, calls):
    modals.submit(db, settings, workspace["id"], submitted(modals.connect_view("fakecalls"), {"cred_token": TOKEN}))
    edit = modals.view_for(db, settings, workspace["id"], "connect:fakecalls")
    assert TOKEN not in json.dumps(edit)
    outcome = modals.submit(db, settings, workspace["id"], submitted(edit, {"cred_subdomain": "globex"}))
    assert outcome.errors == {}
    row = connection(db, workspace, "fakecalls")
    assert Vault.from_settings(settings).decrypt(row["credentials"]) == {"token": TOKEN, "subdomain": "globex"}


def test_a_source_without_user_directory_connects_in_one_step(db, settings, workspace, api):
    connector = registry.register(CrmConnector(api.url))
    try:
        view = submitted(modals.connect_view("fakecrm2"), {"cred_token": TOKEN})
        outcome = modals.submit(db, settings, workspace["id"], view)
    finally:
        registry.unregister(connector.name)
    assert outcome.errors == {} and outcome.next_view is None
    assert "Connected Fake CRM" in outcome.message and "/pandora sync fakecrm2" in outcome.message
    assert "users" not in connection(db, workspace, "fakecrm2")["metadata"]


# --- tracked reps -------------------------------------------------------------------------------------------------

def test_tracked_reps_are_stored_and_shown_again_when_reopened(db, settings, workspace, calls):
    first = modals.submit(db, settings, workspace["id"], submitted(modals.connect_view("fakecalls"), {"cred_token": TOKEN}))
    outcome = modals.submit(db, settings, workspace["id"], submitted(first.next_view, {"tracked_reps": ["u1", "u2"]}))
    assert outcome.message == "Tracking 2 reps on Fake Calls: Dana Reyes, Fox Mulder."
    assert connection(db, workspace, "fakecalls")["metadata"]["tracked_users"] == [USERS[0], USERS[1]]
    again = valid(modals.view_for(db, settings, workspace["id"], "tracked_reps:fakecalls"))
    assert [o["value"] for o in again["blocks"][1]["element"]["initial_options"]] == ["u1", "u2"]
    modals.submit(db, settings, workspace["id"], submitted(again, {"tracked_reps": ["u2"]}))
    meta = connection(db, workspace, "fakecalls")["metadata"]
    assert meta["tracked_users"] == [USERS[1]] and len(meta["users"]) == 3  # the directory stays


def test_a_directory_over_100_users_is_grouped_within_slack_limits(db, settings, workspace, calls):
    modals.submit(db, settings, workspace["id"], submitted(modals.connect_view("fakecalls"), {"cred_token": TOKEN}))
    many = [{"id": f"u{i:03d}", "name": f"Rep {i:03d}", "email": f"rep{i}@acme.io"} for i in range(250)]
    with db.connection() as conn:
        update_metadata(conn, workspace["id"], "fakecalls", {"users": many, "tracked_users": [many[150]]})
    view = valid(modals.tracked_reps_view(db, workspace["id"], "fakecalls"))
    element = view["blocks"][1]["element"]
    assert "options" not in element and [len(g["options"]) for g in element["option_groups"]] == [100, 100, 50]
    assert element["option_groups"][0]["label"]["text"] == "Rep 000 – Rep 099"
    assert [o["value"] for o in element["initial_options"]] == ["u150"]


# --- context ------------------------------------------------------------------------------------------------------

def test_context_view_prefills_every_section_with_what_skills_read(db, workspace):
    view = valid(modals.context_view(db, workspace["id"]))
    boxes = inputs(view)
    assert list(boxes) == ["ctx_business_model", "ctx_team_structure", "ctx_goals_and_targets", "ctx_definitions",
                           "ctx_operational_maturity"]
    assert json.loads(boxes["ctx_business_model"]["element"]["initial_value"])["sales_cycle_days"] == 90


def test_context_round_trip_accepts_json_and_key_value_lines(db, settings, workspace):
    view = modals.context_view(db, workspace["id"])
    values = {b: blk["element"].get("initial_value", "") for b, blk in inputs(view).items()}
    bm = json.loads(values["ctx_business_model"])
    bm.update(sales_cycle_days=45, company_name="Acme")
    values["ctx_business_model"] = json.dumps(bm)
    values["ctx_team_structure"] = "segments: [\"SMB\", \"Enterprise\"]\nmanagers.west: Dana Reyes"
    outcome = modals.submit(db, settings, workspace["id"], submitted(view, values))
    assert outcome.errors == {} and outcome.data["changed"] == ["business_model", "team_structure"]
    with db.connection() as conn:
        ctx = get_context(conn, workspace["id"])
    assert ctx["business_model"]["sales_cycle_days"] == 45 and ctx["business_model"]["company_name"] == "Acme"
    assert ctx["team_structure"] == {"segments": ["SMB", "Enterprise"], "managers": {"west": "Dana Reyes"}}
    shown = inputs(modals.context_view(db, workspace["id"]))["ctx_business_model"]["element"]["initial_value"]
    assert json.loads(shown)["sales_cycle_days"] == 45


def test_deleting_a_key_brings_back_its_default(db, settings, workspace):
    view = modals.context_view(db, workspace["id"])
    modals.submit(db, settings, workspace["id"], submitted(view, {"ctx_business_model": "sales_cycle_days: 30"}))
    modals.submit(db, settings, workspace["id"], submitted(view, {"ctx_business_model": "gtm_motion: plg"}))
    with db.connection() as conn:
        bm = get_context(conn, workspace["id"])["business_model"]
    assert bm["sales_cycle_days"] == 90 and bm["gtm_motion"] == "plg"


def test_bad_context_input_names_section_and_field_and_saves_nothing(db, settings, workspace):
    view = modals.context_view(db, workspace["id"])
    values = {"ctx_business_model": "sales_cycle_days: soon", "ctx_definitions": "{\"internal_domains\": [",
              "ctx_team_structure": "segments: [\"SMB\"]"}
    outcome = modals.submit(db, settings, workspace["id"], submitted(view, values))
    assert "business_model.sales_cycle_days must be a whole number" in outcome.errors["ctx_business_model"]
    assert outcome.errors["ctx_definitions"].startswith("definitions: line 1") and "not valid JSON" in outcome.errors["ctx_definitions"]
    with db.connection() as conn:
        assert get_context(conn, workspace["id"])["team_structure"] == {}  # the valid section was not saved either


# --- quota --------------------------------------------------------------------------------------------------------

def test_quota_view_defaults_to_the_current_fiscal_quarter(db, workspace):
    view = valid(modals.quota_view(db, workspace["id"]))
    period = inputs(view)["quota_period"]["element"]
    current = fiscal_quarter(date.today())
    assert period["initial_option"]["value"] == current.start_date.isoformat()
    assert period["initial_option"]["text"]["text"].startswith(current.name)
    assert len(period["options"]) == 3


def test_quota_round_trip_with_amounts_as_people_write_them(db, settings, workspace):
    view = modals.quota_view(db, workspace["id"])
    reps = "Dana Reyes, dana@acme.io, $150k\nFox Mulder, 90,000\nWalter Skinner; 1.2M"
    outcome = modals.submit(db, settings, workspace["id"], submitted(view, {"quota_team": "$1,500,000",
                                                                           "quota_reps": reps}))
    assert outcome.errors == {} and outcome.message.startswith(f"Saved {fiscal_quarter(date.today()).name} quotas")
    with db.connection() as conn:
        (period,) = list_quotas(conn, workspace["id"])
    assert period["team_quota"] == Decimal("1500000")
    assert {(r["rep_name"], r["rep_email"], r["quota_amount"]) for r in period["reps"]} == {
        ("Dana Reyes", "dana@acme.io", Decimal("150000")), ("Fox Mulder", None, Decimal("90000")),
        ("Walter Skinner", None, Decimal("1200000"))}
    again = inputs(valid(modals.quota_view(db, workspace["id"])))
    assert again["quota_team"]["element"]["initial_value"] == "1500000"
    assert again["quota_reps"]["element"]["initial_value"].splitlines()[0] == "Dana Reyes, dana@acme.io, 150000"
    modals.submit(db, settings, workspace["id"], submitted(view, {"quota_team": "1.5M", "quota_reps": "Fox Mulder, 95000"}))
    with db.connection() as conn:
        (period,) = list_quotas(conn, workspace["id"])
    assert [(r["rep_name"], r["quota_amount"]) for r in period["reps"]] == [("Fox Mulder", Decimal("95000"))]


def test_bad_quota_amounts_name_the_line_and_save_nothing(db, settings, workspace):
    view = modals.quota_view(db, workspace["id"])
    outcome = modals.submit(db, settings, workspace["id"], submitted(view, {
        "quota_team": "lots", "quota_reps": "Dana Reyes, dana@acme.io, 150000\nFox Mulder, TBD"}))
    assert outcome.errors["quota_team"] == "Team quota: 'lots' is not an amount (e.g. 150000, $150k or 1.2M)"
    assert outcome.errors["quota_reps"].startswith("line 2 (Fox Mulder): 'TBD' is not an amount")
    empty = modals.submit(db, settings, workspace["id"], submitted(view, {}))
    assert "Enter a team quota" in empty.errors["quota_team"]
    with db.connection() as conn:
        assert list_quotas(conn, workspace["id"]) == []


def test_a_quota_for_next_quarter_goes_into_that_period(db, settings, workspace):
    view = modals.quota_view(db, workspace["id"])
    following = inputs(view)["quota_period"]["element"]["options"][2]["value"]
    modals.submit(db, settings, workspace["id"], submitted(view, {"quota_period": ("one", following),
                                                                 "quota_team": "2M"}))
    with db.connection() as conn:
        (period,) = list_quotas(conn, workspace["id"])
    assert period["start_date"].isoformat() == following and period["team_quota"] == Decimal("2000000")


def test_an_unreachable_source_is_an_inline_error_that_never_echoes_the_secret(db, settings, workspace, calls, api):
    echo = {"status": "error", "message": f"upstream failed for token {TOKEN}"}
    api.fail_plan = [{"status": 503, "body": echo, "times": 10}]
    outcome = modals.submit(db, settings, workspace["id"], submitted(modals.connect_view("fakecalls"), {"cred_token": TOKEN}))
    assert outcome.errors["cred_token"].startswith("Couldn't check the credentials with Fake Calls")
    assert "Nothing was saved" in outcome.errors["cred_token"] and TOKEN not in json.dumps(outcome.errors)
    with pytest.raises(NotFound):
        connection(db, workspace, "fakecalls")


def test_a_source_with_an_oauth_app_offers_a_sign_in_link_and_one_without_does_not(db, settings, workspace):
    import dataclasses
    from urllib.parse import parse_qs, urlparse

    from connectors import load_all
    from core.credentials import Vault

    load_all()
    plain_view = modals.view_for(db, settings, workspace["id"], "connect:hubspot")
    assert "connect_oauth_link" not in json.dumps(plain_view)  # no HUBSPOT_CLIENT_ID: the token form only

    with_app = dataclasses.replace(settings, hubspot_client_id="app-id", hubspot_client_secret="app-secret",
                                   public_url="https://pandora.example.com")
    view = modals.view_for(db, with_app, workspace["id"], "connect:hubspot")
    [link] = [b["accessory"] for b in view["blocks"] if b.get("accessory", {}).get("action_id") == "connect_oauth_link"]
    url = urlparse(link["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "pandora.example.com", "/oauth/hubspot/start")
    query = parse_qs(url.query)
    assert query["workspace_id"] == [str(workspace["id"])]
    signed = Vault.from_settings(with_app).decrypt(query["link"][0].encode())
    assert signed["ws"] == str(workspace["id"]) and signed["source"] == "hubspot"

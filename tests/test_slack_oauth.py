"""Multi-workspace install through the real Bolt OAuth flow: /slack/install issues a one-time state, the
callback exchanges the code with oauth.v2.access (fake Slack), stores the installation encrypted in Postgres
and maps the Slack team to a new workspace; requests from that team then run with its own token; uninstall
deletes the tokens and keeps the workspace."""
from __future__ import annotations

import dataclasses
import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.slack import registry
from tests.fakes.slack_requests import CHANNEL_ID, SlackSender
from tests.slack_app_fixtures import SECRET, make_http

TEAM = "T0NEW"
STATE_COOKIE = "slack-app-oauth-state"


@pytest.fixture
def oauth_settings(settings, slack):
    return dataclasses.replace(settings, slack_client_id=slack.client_id, slack_client_secret=slack.client_secret,
                               slack_signing_secret=SECRET, slack_api_url=slack.url,
                               public_url="https://pandora.example.com")


@pytest.fixture
def http(db, oauth_settings):
    return make_http(db, oauth_settings)


def _install(http, slack, *, team: str = TEAM, name: str = "New Team") -> tuple:
    page = http.get("/slack/install")
    assert page.status_code == 200
    url = html.unescape(re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page.text).group(1))
    query = parse_qs(urlsplit(url).query)
    state = query["state"][0]
    assert query["client_id"] == [slack.client_id] and query["scope"] == [",".join(registry.BOT_SCOPES)]
    code = slack.issue_oauth_code(team_id=team, team_name=name, scope=",".join(registry.BOT_SCOPES))
    done = http.get("/slack/oauth_redirect", params={"code": code, "state": state},
                    headers={"Cookie": f"{STATE_COOKIE}={state}"})
    return done, state, code


def _installations(db, team: str = TEAM) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT i.*, w.name AS workspace_name FROM slack_installations i"
                            " JOIN workspaces w ON w.id = i.workspace_id WHERE i.team_id = %(t)s", {"t": team}).fetchall()


def test_install_stores_the_installation_encrypted_and_creates_the_workspace(http, slack, db):
    done, _, _ = _install(http, slack)
    assert done.status_code == 200
    [row] = _installations(db)
    assert row["workspace_name"] == "New Team"
    token = next(t for t in slack.tokens if t.startswith(f"xoxb-{TEAM}-"))
    assert token.encode() not in bytes(row["bot_token"])  # encrypted at rest
    assert [c for c in slack.calls_to("oauth.v2.access")][0]["redirect_uri"] == \
        "https://pandora.example.com/slack/oauth_redirect"


def test_requests_from_an_installed_team_use_its_own_token(http, slack, db):
    _install(http, slack)
    token = next(t for t in slack.tokens if t.startswith(f"xoxb-{TEAM}-"))
    SlackSender(http, SECRET).command("status", team=TEAM)
    [msg] = slack.messages_in(CHANNEL_ID)
    assert msg["text"].startswith("Status of New Team")
    assert slack.tokens_used[slack.calls.index(("chat.postMessage", slack.calls_to("chat.postMessage")[0]))] == token


def test_a_state_works_once(http, slack):
    done, state, _ = _install(http, slack)
    assert done.status_code == 200
    code = slack.issue_oauth_code(team_id=TEAM, team_name="New Team")
    again = http.get("/slack/oauth_redirect", params={"code": code, "state": state},
                     headers={"Cookie": f"{STATE_COOKIE}={state}"})
    assert again.status_code != 200
    assert code in slack.oauth_codes  # refused before the code was exchanged


def test_a_callback_without_a_state_installs_nothing(http, slack, db):
    code = slack.issue_oauth_code(team_id=TEAM, team_name="New Team")
    assert http.get("/slack/oauth_redirect", params={"code": code}).status_code != 200
    assert _installations(db) == []


def test_uninstall_deletes_the_tokens_and_keeps_the_workspace(http, slack, db):
    _install(http, slack)
    sender = SlackSender(http, SECRET)
    assert sender.event({"type": "app_uninstalled"}, team=TEAM).status_code == 200
    assert _installations(db) == []
    with db.connection() as conn:
        assert conn.execute("SELECT 1 FROM workspaces WHERE name = 'New Team'").fetchone()
    sender.command("status", team=TEAM)
    assert slack.calls_to("chat.postMessage") == []  # no token left to act with


def test_tokens_revoked_for_the_bot_deletes_the_tokens(http, slack, db):
    _install(http, slack)
    SlackSender(http, SECRET).event({"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT9"]}}, team=TEAM)
    assert _installations(db) == []


def test_reinstall_finds_the_same_workspace(http, slack, db):
    _install(http, slack)
    first = _installations(db)[0]["workspace_id"]
    SlackSender(http, SECRET).event({"type": "app_uninstalled"}, team=TEAM)
    _install(http, slack)
    assert [r["workspace_id"] for r in _installations(db)] == [first]


def test_healthz_reports_oauth_mode(http):
    assert http.get("/healthz").json() == {"ok": True, "oauth": True}

"""The `/pandora` slash command through the real Bolt app and ASGI app, with signed requests and the fake
Slack Web API: signatures checked, commands routed, progress shown, modals opened, failures explained."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from bot.router import route
from core.workspaces import get_workspace
from tests.fakes.slack_requests import CHANNEL_ID, USER_ID, command_form, signature
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)
from tests.slack_app_fixtures import SECRET, make_http, make_settings

VECTOR = Path("/work/shared/fixtures/slack/request_signing_test_vector.json")


def _workspace_id(db, settings) -> str:
    with db.connection() as conn:
        return str(get_workspace(conn, settings.default_workspace)["id"])


def test_our_signer_is_slacks_scheme():
    vector = json.loads(VECTOR.read_text()) if VECTOR.exists() else None
    if vector is None:
        pytest.skip("shared Slack fixtures not present")
    assert signature(vector["signing_secret"], vector["X-Slack-Request-Timestamp"], vector["body"]) == \
        vector["X-Slack-Signature"]


def test_a_forged_signature_is_rejected_and_nothing_runs(sender, slack):
    response = sender.post(command_form("status"), "application/x-www-form-urlencoded", secret="not-the-secret")
    assert response.status_code == 401
    assert slack.calls == []


def test_a_stale_timestamp_is_rejected_even_when_signed_correctly(sender, slack):
    response = sender.post(command_form("status"), "application/x-www-form-urlencoded",
                           timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401
    assert slack.calls == []


def test_the_slack_test_vector_is_rejected_as_a_replay(slack_http, slack):
    vector = json.loads(VECTOR.read_text()) if VECTOR.exists() else pytest.skip("no shared fixtures")
    headers = {"X-Slack-Request-Timestamp": vector["X-Slack-Request-Timestamp"],
               "X-Slack-Signature": vector["X-Slack-Signature"], "Content-Type": "application/x-www-form-urlencoded"}
    assert slack_http.post("/slack/events", content=vector["body"], headers=headers).status_code == 401


def test_status_is_posted_in_the_channel(sender, slack, slack_settings):
    assert sender.command("status").status_code == 200
    [msg] = slack.messages_in(CHANNEL_ID)
    assert slack_settings.default_workspace in msg["text"] and msg["blocks"]
    assert slack.calls_to("chat.update") == []  # not a slow command: no progress message


def test_help_is_shown_to_the_asking_user_only(sender, slack):
    sender.command("help")
    [msg] = slack.messages
    assert msg["ephemeral"] and msg["to_user"] == USER_ID and "/pandora forecast" in msg["text"]


def test_unknown_command_gets_help_not_a_traceback(sender, slack):
    sender.command("frobnicate")
    [msg] = slack.messages
    assert "frobnicate" in msg["text"] and "/pandora help" in msg["text"]
    assert "Traceback" not in json.dumps(slack.calls)


def test_a_skill_shows_progress_then_the_result_replaces_it_with_its_chart(sender, slack, db, slack_settings):
    sender.command("forecast")
    first = slack.calls_to("chat.postMessage")[0]
    assert first["text"].startswith("Working on `forecast`")
    updates = slack.calls_to("chat.update")
    assert updates[0]["text"].startswith("Running forecast")          # the router's progress line
    [msg] = slack.messages_in(CHANNEL_ID)                              # one message, updated in place
    # the same answer `pandora say` gives (run again: it now also compares with the run Slack triggered)
    expected = route(db, slack_settings, _workspace_id(db, slack_settings), "forecast", source="slack")
    assert msg["text"].splitlines()[0] == expected.text.splitlines()[0]
    assert msg["blocks"][0] == expected.blocks[0] and msg["blocks"][0]["type"] == "header"
    assert [u["thread_ts"] for u in slack.uploaded] == [msg["ts"]] * len(expected.files)
    assert all(u["content"].startswith(b"\x89PNG") for u in slack.uploaded)


def test_a_skill_error_replaces_the_progress_message_with_a_private_explanation(sender, slack):
    sender.command("forecast nosuchparam=1")
    assert slack.calls_to("chat.postMessage")[0]["text"].startswith("Working on")
    [msg] = slack.messages  # the placeholder is gone; only the asking user sees the problem
    assert msg["ephemeral"] and msg["to_user"] == USER_ID and "nosuchparam" in msg["text"]


@pytest.mark.parametrize("alias", ["risk", "hygiene", "quality"])
def test_skill_aliases_are_routed(sender, slack, alias, db, slack_settings):
    sender.command(alias)
    [msg] = slack.messages_in(CHANNEL_ID)
    expected = route(db, slack_settings, _workspace_id(db, slack_settings), alias, source="slack")
    assert expected.ok and msg["blocks"][0] == expected.blocks[0]
    assert msg["text"].splitlines()[0] == expected.text.splitlines()[0]


@pytest.fixture
def fakecrm():
    from core.sync import registry
    from tests.fakes.paged_connector import PagedConnector

    registry.register(PagedConnector())
    yield "fakecrm"
    registry.unregister("fakecrm")


def test_connect_opens_the_connect_form_with_the_trigger(sender, slack, fakecrm):
    sender.command(f"connect {fakecrm}", trigger_id="trig-connect")
    [opened] = slack.calls_to("views.open")
    assert opened["trigger_id"] == "trig-connect"
    assert opened["view"]["callback_id"] == "connect_submit"
    assert slack.calls_to("chat.postMessage") == []


@pytest.mark.parametrize("command, callback_id", [("context", "context_submit"), ("quota", "quota_submit")])
def test_settings_editors_open_as_modals(sender, slack, command, callback_id):
    sender.command(command)
    [opened] = slack.calls_to("views.open")
    assert opened["view"]["callback_id"] == callback_id


def test_context_show_answers_privately_through_the_response_url(sender, slack):
    sender.command("context show", response_url=slack.response_url("cmd"))
    assert slack.calls_to("views.open") == []
    [answer] = slack.responses
    assert answer["response_type"] == "ephemeral" and answer["text"]


def test_where_the_bot_cannot_post_the_answer_comes_back_through_the_response_url(sender, slack):
    slack.fail_next("chat.postMessage", "not_in_channel")
    sender.command("status", response_url=slack.response_url("cmd"))
    [answer] = slack.responses
    assert "Status of" in answer["text"] and answer["response_type"] == "ephemeral"


def test_a_slack_failure_is_explained_to_the_user_not_raised(sender, slack):
    slack.fail_next("chat.postMessage", "fatal_error")
    response = sender.command("status", response_url=slack.response_url("cmd"))
    assert response.status_code == 200
    [answer] = slack.responses
    assert "fatal_error" in answer["text"] and "Traceback" not in answer["text"]


def test_a_failed_mention_is_explained_privately_in_its_thread(sender, slack):
    slack.fail_next("chat.postMessage", "fatal_error")
    response = sender.event({"type": "app_mention", "user": USER_ID, "text": "<@UBOT> status", "ts": "7.1",
                             "channel": CHANNEL_ID})
    assert response.status_code == 200
    [told] = slack.calls_to("chat.postEphemeral")
    assert told["user"] == USER_ID and told["channel"] == CHANNEL_ID and told["thread_ts"] == "7.1"
    assert "fatal_error" in told["text"] and "Traceback" not in told["text"]


def test_without_a_configured_workspace_the_slack_team_gets_its_own(db, settings, slack):
    team_settings = make_settings(settings, slack)  # no PANDORA_WORKSPACE: map the Slack team
    from tests.fakes.slack_requests import SlackSender

    sender = SlackSender(make_http(db, team_settings), SECRET)
    sender.command("status")
    sender.command("status")
    with db.connection() as conn:
        rows = conn.execute("SELECT w.name FROM slack_teams t JOIN workspaces w ON w.id = t.workspace_id"
                            " WHERE t.team_id = %(team)s", {"team": slack.team_id}).fetchall()
    assert [r["name"] for r in rows] == [slack.team_name]
    assert all(slack.team_name in m["text"] for m in slack.messages_in(CHANNEL_ID))


def test_a_modal_reply_without_a_trigger_offers_an_open_button_that_opens_it(sender, slack, fakecrm):
    from tests.fakes.slack_requests import block_action

    sender.event({"type": "app_mention", "user": USER_ID, "text": "<@UBOT> connect fakecrm", "ts": "5.1",
                  "channel": CHANNEL_ID})
    [msg] = slack.messages_in(CHANNEL_ID)
    button = msg["blocks"][-1]["elements"][0]
    assert button["action_id"] == "pandora_open_modal" and button["value"] == "connect:fakecrm"
    sender.interactive(block_action("pandora_open_modal", button["value"], trigger_id="trig-btn"))
    [opened] = slack.calls_to("views.open")
    assert opened["trigger_id"] == "trig-btn" and opened["view"]["callback_id"] == "connect_submit"


def test_settings_without_a_signing_secret_fail_clearly(db, settings, slack):
    from bot.slack.app import build_app
    from core.errors import ConfigError

    bad = dataclasses.replace(make_settings(settings, slack), slack_signing_secret=None)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        build_app(db, bad)

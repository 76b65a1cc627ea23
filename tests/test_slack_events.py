"""Events through the real Bolt app: @mentions answered in a thread, DMs answered in the DM (free text reaches
the conversation layer), other messages ignored, the home tab published."""
from __future__ import annotations

from tests.fakes.slack_requests import CHANNEL_ID, USER_ID
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)

DM = "D0PANDORA"


def test_a_mention_is_answered_in_its_thread(sender, slack, slack_settings):
    response = sender.event({"type": "app_mention", "user": USER_ID, "text": "<@UBOT> status", "ts": "1700.0001",
                             "channel": CHANNEL_ID})
    assert response.status_code == 200
    [msg] = slack.messages_in(CHANNEL_ID)
    assert msg["thread_ts"] == "1700.0001" and slack_settings.default_workspace in msg["text"]


def test_a_mention_inside_a_thread_answers_in_that_thread(sender, slack):
    sender.event({"type": "app_mention", "user": USER_ID, "text": "<@UBOT> status", "ts": "1700.0009",
                  "thread_ts": "1700.0001", "channel": CHANNEL_ID})
    assert slack.messages_in(CHANNEL_ID)[0]["thread_ts"] == "1700.0001"


def test_a_retried_event_is_acked_but_not_answered_twice(sender, slack):
    event = {"type": "app_mention", "user": USER_ID, "text": "<@UBOT> status", "ts": "1700.0004",
             "channel": CHANNEL_ID}
    retry = sender.event(event, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200 and slack.messages == []
    sender.event(event)
    assert len(slack.messages) == 1


def test_a_plain_language_dm_is_answered_in_the_dm(sender, slack):
    sender.event({"type": "message", "channel_type": "im", "user": USER_ID, "channel": DM, "ts": "1700.0002",
                  "text": "which deals over 50k slipped this month?"})
    [msg] = slack.messages_in(DM)
    assert msg["text"] and not msg.get("ephemeral") and "Traceback" not in msg["text"]
    assert msg["thread_ts"] is None


def test_a_dm_command_is_routed_like_the_slash_command(sender, slack, slack_settings):
    sender.event({"type": "message", "channel_type": "im", "user": USER_ID, "channel": DM, "ts": "1700.0003",
                  "text": "status"})
    [msg] = slack.messages_in(DM)
    assert msg["text"].startswith(f"Status of {slack_settings.default_workspace}")


def test_bot_messages_edits_and_channel_messages_are_left_alone(sender, slack):
    for event in ({"type": "message", "channel_type": "im", "bot_id": "B9", "channel": DM, "text": "status"},
                  {"type": "message", "channel_type": "im", "subtype": "message_changed", "channel": DM},
                  {"type": "message", "channel_type": "channel", "user": USER_ID, "channel": CHANNEL_ID,
                   "text": "status"}):
        assert sender.event(event).status_code == 200
    assert slack.messages == []


def test_opening_the_home_tab_publishes_commands_and_status(sender, slack, slack_settings):
    sender.event({"type": "app_home_opened", "user": USER_ID, "channel": DM, "tab": "home"})
    [published] = slack.calls_to("views.publish")
    assert published["user_id"] == USER_ID and published["view"]["type"] == "home"
    text = str(published["view"]["blocks"])
    assert "/pandora forecast" in text and slack_settings.default_workspace in text
    assert len(published["view"]["blocks"]) <= 100


def test_opening_the_messages_tab_publishes_nothing(sender, slack):
    sender.event({"type": "app_home_opened", "user": USER_ID, "channel": DM, "tab": "messages"})
    assert slack.calls_to("views.publish") == []


def test_file_shared_by_the_bot_itself_is_ignored(sender, slack):
    sender.event({"type": "file_shared", "file_id": "F1", "user_id": slack.bot_user_id, "channel_id": CHANNEL_ID,
                  "file": {"id": "F1"}})
    assert slack.calls_to("files.info") == [] and slack.messages == []


def test_uninstall_in_single_workspace_mode_is_acknowledged(sender, slack):
    assert sender.event({"type": "app_uninstalled"}).status_code == 200
    assert sender.event({"type": "tokens_revoked", "tokens": {"bot": ["UBOT"]}}).status_code == 200


def test_the_request_url_check_and_slacks_ssl_check_are_answered(sender, slack):
    """Saving the Request URL in the app's settings sends a signed `url_verification` whose `challenge` must come
    back; Slack's periodic `ssl_check=1` must get a 200. Neither reaches a listener or the Web API."""
    import json

    response = sender.post(json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                                       "type": "url_verification"}), "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    ssl = sender.post("ssl_check=1&token=legacy", "application/x-www-form-urlencoded")
    assert ssl.status_code == 200
    forged = sender.post(json.dumps({"challenge": "x", "type": "url_verification"}), "application/json", secret="wrong")
    assert forged.status_code == 401
    assert slack.calls == []

"""The fake Slack Web API behaves like Slack for the real slack_sdk WebClient (others' tests rely on it)."""
from __future__ import annotations

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError



def test_post_then_update_keeps_the_message_current(slack, slack_client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    posted = slack_client.chat_postMessage(channel="C1", text="hi", blocks=blocks)
    slack_client.chat_update(channel="C1", ts=posted["ts"], text="bye", blocks=[])
    assert slack.calls_to("chat.postMessage")[0]["blocks"] == blocks
    assert slack.message(posted["ts"])["text"] == "bye"
    assert slack.tokens_used == ["xoxb-test", "xoxb-test"]


def test_invalid_blocks_and_more_than_fifty_are_refused_like_slack(slack_client):
    with pytest.raises(SlackApiError) as exc:
        slack_client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "section"}])
    assert exc.value.response["error"] == "invalid_blocks"
    many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError):
        slack_client.chat_postMessage(channel="C1", text="x", blocks=many)


def test_bad_and_revoked_tokens_are_rejected(slack):
    with pytest.raises(SlackApiError) as exc:
        WebClient(token="xoxb-nope", base_url=slack.url).auth_test()
    assert exc.value.response["error"] == "invalid_auth"
    slack.revoke(slack.bot_token)
    with pytest.raises(SlackApiError) as exc:
        WebClient(token=slack.bot_token, base_url=slack.url).auth_test()
    assert exc.value.response["error"] == "token_revoked"


def test_fail_next_and_rate_limit_with_retry_after(slack, slack_client):
    slack.fail_next("chat.postMessage", "channel_not_found")
    slack.fail_next("chat.postMessage", "ratelimited", retry_after=7)
    with pytest.raises(SlackApiError) as exc:
        slack_client.chat_postMessage(channel="C1", text="x")
    assert exc.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as exc:
        slack_client.chat_postMessage(channel="C1", text="x")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "7"
    assert slack_client.chat_postMessage(channel="C1", text="x")["ok"]


def test_files_info_and_url_private_need_the_bot_token(slack, slack_client):
    slack.add_file("F1", "deals.csv", b"name,amount\nA,1\n", "csv", "text/csv")
    info = slack_client.files_info(file="F1")["file"]
    assert httpx.get(info["url_private"]).status_code == 403
    got = httpx.get(info["url_private"], headers={"Authorization": f"Bearer {slack.bot_token}"})
    assert got.content == b"name,amount\nA,1\n" and slack.downloads == ["F1"]
    with pytest.raises(SlackApiError):
        slack_client.files_info(file="F404")


def test_files_upload_v2_records_content_channel_and_thread(slack, slack_client):
    slack_client.files_upload_v2(filename="chart.png", content=b"\x89PNG...", title="Forecast", channel="C1",
                           thread_ts="1.2")
    [upload] = slack.uploaded
    assert upload["content"] == b"\x89PNG..." and upload["channel"] == "C1" and upload["thread_ts"] == "1.2"
    assert upload["title"] == "Forecast"


def test_oauth_code_exchanged_once_for_a_working_token(slack):
    code = slack.issue_oauth_code(team_id="T9", team_name="Nine")
    anon = WebClient(base_url=slack.url)
    grant = anon.oauth_v2_access(client_id=slack.client_id, client_secret=slack.client_secret, code=code)
    assert grant["team"]["id"] == "T9"
    assert WebClient(token=grant["access_token"], base_url=slack.url).auth_test()["team_id"] == "T9"
    with pytest.raises(SlackApiError) as exc:
        anon.oauth_v2_access(client_id=slack.client_id, client_secret=slack.client_secret, code=code)
    assert exc.value.response["error"] == "invalid_code"


def test_views_users_conversations_and_ephemeral(slack, slack_client):
    view = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}
    opened = slack_client.views_open(trigger_id="tr", view=view)["view"]
    assert opened["id"] and slack.views[0]["title"]["text"] == "T"
    with pytest.raises(SlackApiError):
        slack_client.views_open(trigger_id="", view=view)
    assert slack_client.users_info(user="U0USER")["user"]["profile"]["email"] == "dana@example.com"
    assert slack_client.conversations_info(channel="D123")["channel"]["is_im"]
    slack_client.chat_postEphemeral(channel="C1", user="U0USER", text="psst")
    assert slack.messages_in("C1")[0]["ephemeral"]
    httpx.post(slack.response_url("cmd"), json={"text": "later"})
    assert slack.responses == [{"name": "cmd", "text": "later"}]

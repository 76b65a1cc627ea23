"""post_reply turns a router Reply into Slack messages: blocks with a text fallback, overflow pages in the
thread, charts uploaded with files_upload_v2, updates in place, and no answer lost to a Slack refusal."""
from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError

from bot.render.blocks import divider, reply_from_blocks, section
from bot.reply import Reply
from bot.slack.post import ProgressMessage, make_client, post_reply
from core.settings import Settings


@pytest.fixture
def client(slack):
    return make_client(Settings(slack_api_url=slack.url), slack.bot_token)


def test_blocks_and_text_fallback_in_one_message(slack, client):
    reply = reply_from_blocks("Forecast: $1.2M", [section("*Forecast* $1.2M")])
    ts = post_reply(client, "C1", reply)
    [msg] = slack.messages
    assert msg["ts"] == ts and msg["text"] == "Forecast: $1.2M" and msg["blocks"] == reply.blocks


def test_overflow_pages_are_threaded_under_the_first_message(slack, client):
    blocks = [section(f"row {i}") for i in range(120)]
    reply = reply_from_blocks("Long table", blocks)
    assert len(reply.more_blocks) == 2
    ts = post_reply(client, "C1", reply)
    first, *rest = slack.messages
    assert first["ts"] == ts and first["thread_ts"] is None
    assert [m["thread_ts"] for m in rest] == [ts, ts]
    assert sum(len(m["blocks"]) for m in slack.messages) == 120
    assert rest[-1]["text"].endswith("(continued 3/3)")


def test_charts_are_uploaded_into_the_thread_with_their_bytes(slack, client, tmp_path):
    chart = tmp_path / "forecast_waterfall.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\nchart")
    reply = Reply(text="Forecast", blocks=[section("x")], files=[str(chart)])
    ts = post_reply(client, "C1", reply)
    [upload] = slack.uploaded
    assert upload["content"] == chart.read_bytes()
    assert (upload["channel"], upload["thread_ts"], upload["filename"]) == ("C1", ts, "forecast_waterfall.png")
    assert upload["title"] == "Forecast waterfall"


def test_update_replaces_blocks_even_with_a_text_only_answer(slack, client):
    progress = ProgressMessage(client, "C1", "Working on it…", interval=0)
    progress.update("Syncing HubSpot… 12,400 deals")
    assert "12,400" in slack.message(progress.ts)["text"]
    progress.finish(Reply(text="Synced 12,400 deals"))
    msg = slack.message(progress.ts)
    assert msg["text"] == "Synced 12,400 deals" and msg["blocks"] == []
    assert len(slack.messages) == 1


def test_progress_updates_are_throttled(slack, client):
    progress = ProgressMessage(client, "C1", "Working…", interval=60)
    progress.update("first")
    for i in range(20):
        progress.update(f"page {i}")
    assert progress.updates == 1 and len(slack.calls_to("chat.update")) == 1


def test_refused_blocks_still_deliver_the_text(slack, client):
    bad = Reply(text="Pipeline is $3.4M", blocks=[{"type": "section"}])  # no text, no fields: Slack refuses it
    post_reply(client, "C1", bad)
    [msg] = slack.messages
    assert msg["text"].startswith("Pipeline is $3.4M") and "formatting" in msg["text"] and msg["blocks"] == []


def test_other_slack_errors_surface(slack, client):
    slack.fail_next("chat.postMessage", "not_in_channel")
    with pytest.raises(SlackApiError):
        post_reply(client, "C1", Reply(text="x"))


def test_rate_limit_is_waited_out_once(slack, client):
    slack.fail_next("chat.postMessage", "ratelimited", retry_after=0)
    post_reply(client, "C1", Reply(text="after the limit"))
    assert len(slack.calls_to("chat.postMessage")) == 2 and slack.messages[0]["text"] == "after the limit"


def test_ephemeral_reply_goes_to_the_user_only(slack, client):
    reply = Reply(text="Only you can see this", blocks=[section("hi"), divider()], ephemeral=True)
    post_reply(client, "C1", reply, user="U0USER")
    [msg] = slack.messages
    assert msg["ephemeral"] and msg["to_user"] == "U0USER"
    assert slack.calls_to("chat.postMessage") == []

"""Scheduled digests inside `pandora serve`: set from Slack, scheduled by the scheduler the ASGI lifespan
starts, and fired into the channel with the skill's blocks and its chart uploaded."""
from __future__ import annotations

from starlette.testclient import TestClient

from bot.serve import build_asgi
from bot.slack.app import build_app
from core.workspaces import get_workspace
from tests.fakes.slack_requests import CHANNEL_ID, SlackSender
from tests.slack_app_fixtures import *  # noqa: F403 (fixtures)
from tests.slack_app_fixtures import SECRET


def _serve(db, settings):
    return build_asgi(db, settings, bolt_app=build_app(db, settings, lazy_inline=True))


def _schedules(db, settings) -> list[dict]:
    with db.connection() as conn:
        ws = get_workspace(conn, settings.default_workspace)
        return conn.execute("SELECT id, workspace_id, channel_id, skills FROM digest_schedules"
                            " WHERE workspace_id = %(w)s", {"w": ws["id"]}).fetchall()


def test_a_digest_set_in_slack_fires_into_its_channel_with_the_chart(db, slack_settings, slack):
    asgi = _serve(db, slack_settings)
    with TestClient(asgi) as http:  # the lifespan starts the digest scheduler
        sender = SlackSender(http, SECRET)
        sender.command(f"digest set weekly mon 09:00 <#{CHANNEL_ID}|revops> forecast")
        [schedule] = _schedules(db, slack_settings)
        assert schedule["channel_id"] == CHANNEL_ID
        scheduler = asgi.state.digests
        # set while the server runs: scheduled without a restart
        assert [j["schedule_id"] for j in scheduler.jobs()] == [str(schedule["id"])]
        before = len(slack.messages_in(CHANNEL_ID))
        scheduler.fire(str(schedule["workspace_id"]), str(schedule["id"]))
    posted = slack.messages_in(CHANNEL_ID)[before:]
    [digest] = [m for m in posted if m["thread_ts"] is None]
    assert digest["blocks"][0]["type"] == "header" and "forecast" in digest["text"].lower()
    [chart] = slack.uploaded
    assert chart["channel"] == CHANNEL_ID and chart["thread_ts"] == digest["ts"]
    assert chart["content"].startswith(b"\x89PNG")
    assert not scheduler._scheduler.running  # stopped with the app


def test_digest_list_shows_what_is_scheduled(sender, slack):
    sender.command(f"digest set daily 08:30 <#{CHANNEL_ID}|revops>")
    sender.command("digest list")
    assert "08:30" in slack.messages_in(CHANNEL_ID)[-1]["text"]

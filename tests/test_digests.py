"""Scheduled digests: the `digest` command, when a schedule runs, and the scheduler that posts the results."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
import time as clock
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot import digest_schedule as ds
from bot.digests import DigestScheduler, digest_command
from bot.render.blocks import validate
from bot.slack.post import post_reply
from core.errors import InputError
from core.synthetic import generate, write_dataset
from skills import registry
from tests.fakes.slack_api import FakeSlack

UTC = timezone.utc
FRI = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # a Friday morning


def parse(text: str, **kw) -> ds.Schedule:
    return ds.parse_set(text.split(), **kw)


# --- parsing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("weekly mon 09:00 #revops", dict(cadence="weekly", weekday=0, run_time=time(9), channel_name="revops",
                                      channel_id=None, skills=["weekly-digest"], timezone="UTC")),
    ("daily 08:30 #sales", dict(cadence="daily", weekday=None, run_time=time(8, 30), channel_name="sales")),
    ("weekdays 09:00 #c", dict(cadence="weekdays", run_time=time(9), channel_name="c")),
    ("weekly friday 5:30pm <#C0123ABC|revops> forecast hygiene tz=Europe/Berlin",
     dict(weekday=4, run_time=time(17, 30), channel_id="C0123ABC", channel_name="revops",
          skills=["forecast-rollup", "pipeline-hygiene"], timezone="Europe/Berlin")),
    ("monthly 1 9am <#C9>", dict(cadence="monthly", day_of_month=1, run_time=time(9), channel_id="C9",
                                 channel_name=None)),
    ("monthly last at 18:00 in #board America/New_York", dict(day_of_month=-1, run_time=time(18),
                                                              timezone="America/New_York")),
    ("weekly Tue 12am #x risk risk", dict(weekday=1, run_time=time(0), skills=["deal-risk-review"])),
])
def test_good_schedules_parse(text, want):
    got = parse(text)
    assert {k: getattr(got, k) for k in want} == want


@pytest.mark.parametrize("text, message", [
    ("weekly mun 09:00 #revops", "'mun' is not a weekday; use mon…sun"),
    ("daily 25:00 #revops", "'25:00' is not a time of day"),
    ("daily 9:75 #revops", "'9:75' is not a time of day"),
    ("daily 13pm #revops", "'13pm' is not a time of day"),
    ("fortnightly 09:00 #revops", "'fortnightly' is not a cadence; use daily, weekdays, weekly or monthly"),
    ("monthly 31 09:00 #revops", "'31' is not a day for a monthly digest; use 1–28 or last"),
    ("weekly", "a weekly digest needs a weekday"),
    ("daily #revops", "say at what time"),
    ("daily 09:00", "say which channel"),
    ("daily 09:00 #RevOps!", "'#RevOps!' is not a channel name"),
    ("daily 09:00 #a #b", "two channels"),
    ("daily 09:00 10:00 #a", "two times"),
    ("daily 09:00 #a forcast", "'forcast' is not a skill"),
    ("daily 09:00 #a tz=Europe/Berln", "'Europe/Berln' is not a time zone"),
    ("", "say how often"),
])
def test_bad_schedules_name_the_wrong_part(text, message):
    with pytest.raises(InputError) as err:
        parse(text)
    assert message in err.value.message


def test_the_channel_defaults_to_where_the_command_was_typed():
    assert parse("daily 09:00", channel_id="C42").channel == "C42"


# --- when ------------------------------------------------------------------------------------------------------

def test_weekly_monday_nine_in_berlin_is_eight_utc_in_winter_and_seven_in_summer():
    sched = parse("weekly mon 09:00 #revops tz=Europe/Berlin")
    assert sched.next_run(FRI) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert sched.next_run(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(2026, 7, 6, 7, 0, tzinfo=UTC)


def test_next_run_is_strictly_after_a_slot():
    sched = parse("daily 09:00 #c")
    slot = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert sched.next_run(slot) == slot + timedelta(days=1)


def test_weekdays_skip_the_weekend_and_monthly_last_is_the_last_day():
    assert parse("weekdays 09:00 #c").next_run(datetime(2026, 11, 27, 10, tzinfo=UTC)) == \
        datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert parse("monthly last 09:00 #c").next_run(datetime(2026, 2, 3, tzinfo=UTC)) == \
        datetime(2026, 2, 28, 9, tzinfo=UTC)


# --- the command -----------------------------------------------------------------------------------------------

def test_digest_set_stores_the_schedule_and_says_when_it_runs(db, settings, workspace):
    reply = digest_command(db, settings, workspace["id"], "set weekly mon 09:00 #revops tz=Europe/Berlin",
                           user_id="U1", now=FRI)
    assert reply.ok, reply.text
    validate(reply.blocks)
    assert "Mon 30 Nov 2026, 09:00 CET" in reply.text and "#revops" in reply.text
    with db.connection() as conn:
        (row,) = ds.list_schedules(conn, str(workspace["id"]))
    assert (row["cadence"], row["weekday"], row["run_time"], row["timezone"]) == ("weekly", 0, time(9), "Europe/Berlin")
    assert (row["channel_name"], row["channel_id"], row["skills"], row["created_by"]) == ("revops", None, ["weekly-digest"], "U1")
    assert row["next_run_at"] == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_a_slack_formatted_channel_keeps_its_id(db, settings, workspace):
    digest_command(db, settings, workspace["id"], "digest set daily 08:30 <#C0REVOPS|revops> forecast")
    with db.connection() as conn:
        (row,) = ds.list_schedules(conn, str(workspace["id"]))
    assert (row["channel_id"], row["channel_name"], row["skills"]) == ("C0REVOPS", "revops", ["forecast-rollup"])


def test_bad_input_is_a_reply_naming_the_part(db, settings, workspace):
    reply = digest_command(db, settings, workspace["id"], "set weekly mun 09:00 #revops")
    assert not reply.ok and "'mun' is not a weekday" in reply.text
    assert reply.data["error"]["field"] == "weekday"
    assert not digest_command(db, settings, workspace["id"], "frobnicate").ok


def test_list_numbers_the_schedules_and_remove_takes_a_number(db, settings, workspace):
    ws = workspace["id"]
    assert "No digests are scheduled" in digest_command(db, settings, ws, "list").text
    digest_command(db, settings, ws, "set weekly mon 09:00 #revops")
    digest_command(db, settings, ws, "set daily 08:30 #sales hygiene")
    listed = digest_command(db, settings, ws, "list")
    validate(listed.blocks)
    assert "1. weekly-digest → #revops, every Monday at 09:00 UTC" in listed.text
    assert "2. pipeline-hygiene → #sales, every day at 08:30 UTC" in listed.text
    removed = digest_command(db, settings, ws, "remove 1")
    assert removed.ok and "#revops" in removed.text
    with db.connection() as conn:
        assert [r["channel_name"] for r in ds.list_schedules(conn, str(ws))] == ["sales"]
    assert "no digest number 5" in digest_command(db, settings, ws, "remove 5").text


def test_remove_by_id_only_within_the_workspace(db, settings, workspace):
    from core.workspaces import create_workspace

    with db.connection() as conn:
        other = create_workspace(conn, "Other Co")["id"]
    sid = digest_command(db, settings, workspace["id"], "set daily 09:00 #a").data["schedule"]["id"]
    assert not digest_command(db, settings, other, f"remove {sid}").ok
    assert digest_command(db, settings, other, "list").data["schedules"] == []
    assert digest_command(db, settings, workspace["id"], f"remove {sid[:8]}").ok


# --- the scheduler ---------------------------------------------------------------------------------------------

class Posts:
    """The post callback: records (workspace, channel, reply) and lets a test wait for n posts."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.cond = threading.Condition()

    def __call__(self, workspace_id, channel, reply) -> None:
        with self.cond:
            self.items.append((workspace_id, channel, reply))
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 60) -> list[tuple]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, timeout), f"{len(self.items)} posts, wanted {n}"
            return list(self.items)


@pytest.fixture
def running(db, settings):
    made = []

    def start(post, **kw) -> DigestScheduler:
        sched = DigestScheduler(db, settings, post, **kw)
        sched.start()
        made.append(sched)
        return sched

    yield start
    for sched in made:
        sched.shutdown(wait=True)


def _row(db, ws) -> dict:
    with db.connection() as conn:
        return ds.list_schedules(conn, str(ws))[0]


def test_fire_posts_a_reply_per_skill_with_real_output_and_charts(db, settings, workspace):
    write_dataset(db, workspace["id"], generate(seed=7, scale=1, today=date.today()))
    ws = str(workspace["id"])
    sid = digest_command(db, settings, ws, "set weekly mon 09:00 <#C0REVOPS|revops> forecast hygiene").data["schedule"]["id"]
    with FakeSlack() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.url)
        posts = Posts()

        def post(workspace_id, channel, reply):
            posts(workspace_id, channel, reply)
            post_reply(client, channel, reply)

        replies = DigestScheduler(db, settings, post).fire(ws, sid)
        assert [r.ok for r in replies] == [True, True]
        assert [(w, c) for w, c, _ in posts.items] == [(ws, "C0REVOPS"), (ws, "C0REVOPS")]
        forecast, hygiene = replies
        assert forecast.data["skill"] == "forecast-rollup" and hygiene.data["skill"] == "pipeline-hygiene"
        assert forecast.files and all(Path(p).read_bytes().startswith(b"\x89PNG") for p in forecast.files)
        messages = slack.calls_to("chat.postMessage")
        assert len(messages) >= 2 and messages[0]["channel"] == "C0REVOPS"
        assert forecast.data["headline"] in messages[0]["text"]
        assert [u["channel"] for u in slack.uploaded] == ["C0REVOPS"] * len(forecast.files + hygiene.files)
    with db.connection() as conn:
        runs = conn.execute("SELECT skill, trigger, status FROM skill_runs WHERE workspace_id = %(w)s ORDER BY started_at",
                            {"w": ws}).fetchall()
    assert [(r["skill"], r["trigger"], r["status"]) for r in runs] == [
        ("forecast-rollup", "schedule", "succeeded"), ("pipeline-hygiene", "schedule", "succeeded")]
    row = _row(db, ws)
    assert row["last_status"] == "ok" and row["last_run_at"] and row["next_run_at"] > datetime.now(UTC)


def test_a_failing_skill_is_reported_and_the_others_still_post(db, settings, workspace, monkeypatch):
    hygiene = registry.get("pipeline-hygiene")
    monkeypatch.setattr(type(hygiene), "compute", lambda self, ctx: (_ for _ in ()).throw(RuntimeError("boom")))
    ws = str(workspace["id"])
    sid = digest_command(db, settings, ws, "set daily 09:00 #revops hygiene forecast").data["schedule"]["id"]
    posts = Posts()
    replies = DigestScheduler(db, settings, posts).fire(ws, sid)
    assert [r.ok for r in replies] == [False, True]
    assert "Couldn't run *pipeline-hygiene*" in replies[0].text and "boom" in replies[0].text
    validate(replies[0].blocks)
    assert [c for _, c, _ in posts.items] == ["#revops", "#revops"]
    row = _row(db, ws)
    assert row["last_status"] == "partial" and "boom" in row["last_error"]


def test_a_failing_post_does_not_stop_the_next_skill(db, settings, workspace):
    ws = str(workspace["id"])
    sid = digest_command(db, settings, ws, "set daily 09:00 #revops forecast coverage").data["schedule"]["id"]
    seen = []

    def post(workspace_id, channel, reply):
        seen.append(reply.data.get("skill"))
        if len(seen) == 1:
            raise RuntimeError("channel_not_found")

    DigestScheduler(db, settings, post).fire(ws, sid)
    assert seen == ["forecast-rollup", "pipeline-coverage"]
    assert "channel_not_found" in _row(db, ws)["last_error"]


def test_a_schedule_set_while_running_is_picked_up_and_removed(db, settings, workspace, running):
    sched = running(Posts())
    assert sched.jobs() == []
    ws = str(workspace["id"])
    sid = digest_command(db, settings, ws, "set weekly mon 09:00 #revops tz=Europe/Berlin").data["schedule"]["id"]
    (job,) = sched.jobs()
    assert (job["workspace_id"], job["schedule_id"]) == (ws, sid)
    assert job["next_run_time"] == _row(db, ws)["next_run_at"]
    assert job["next_run_time"].astimezone(ds.ZoneInfo("Europe/Berlin")).strftime("%a %H:%M") == "Mon 09:00"
    digest_command(db, settings, ws, "remove 1")
    assert sched.jobs() == []


def test_a_schedule_written_by_another_process_is_found_by_polling(db, settings, workspace, running):
    sched = running(Posts(), poll_seconds=0.2)
    with db.connection() as conn:  # another process: no in-process notification reaches this scheduler
        ds.insert_schedule(conn, str(workspace["id"]), parse("daily 09:00 #a"), now=datetime.now(UTC))
    deadline = clock.monotonic() + 10
    while not sched.jobs() and clock.monotonic() < deadline:
        clock.sleep(0.1)
    assert len(sched.jobs()) == 1


def _miss(db, ws, by: timedelta) -> None:
    """Pretend the process was down when the slot passed (the only way to move time for a scheduler)."""
    with db.connection() as conn:
        conn.execute("UPDATE digest_schedules SET next_run_at = now() - %(by)s WHERE workspace_id = %(w)s",
                     {"by": by, "w": ws})


def test_a_missed_run_fires_once_on_start(db, settings, workspace, running):
    ws = str(workspace["id"])
    digest_command(db, settings, ws, "set daily 09:00 #revops forecast")
    _miss(db, ws, timedelta(hours=2))
    posts = Posts()
    running(posts)
    assert [c for _, c, _ in posts.wait(1)] == ["#revops"]
    clock.sleep(1.0)
    assert len(posts.items) == 1
    row = _row(db, ws)
    assert row["next_run_at"] > datetime.now(UTC) and row["last_status"] == "ok"
    running(posts)  # a restart after the catch-up fires nothing more
    clock.sleep(1.0)
    assert len(posts.items) == 1


def test_two_processes_owing_the_same_slot_post_it_once(db, settings, workspace):
    ws = str(workspace["id"])
    sid = digest_command(db, settings, ws, "set daily 09:00 #revops forecast").data["schedule"]["id"]
    _miss(db, ws, timedelta(minutes=1))
    posts = Posts()
    processes = [DigestScheduler(db, settings, posts) for _ in range(3)]
    barrier = threading.Barrier(3)

    def run(p):
        barrier.wait()
        return p.run_due(ws, sid)

    with ThreadPoolExecutor(3) as pool:
        assert sorted(pool.map(run, processes)) == [False, False, True]
    assert len(posts.items) == 1
    assert processes[0].run_due(ws, sid) is False  # the slot is paid; the next one is tomorrow


def test_a_run_missed_by_more_than_a_day_is_skipped_not_posted_late(db, settings, workspace, running):
    ws = str(workspace["id"])
    digest_command(db, settings, ws, "set daily 09:00 #revops forecast")
    _miss(db, ws, timedelta(days=3))
    posts = Posts()
    running(posts)
    clock.sleep(1.0)
    assert posts.items == []
    assert _row(db, ws)["next_run_at"] > datetime.now(UTC)


def test_fire_of_an_unknown_schedule_is_not_found(db, settings, workspace):
    from core.errors import NotFound

    with pytest.raises(NotFound):
        DigestScheduler(db, settings, Posts()).fire(str(workspace["id"]), str(uuid.uuid4()))


def test_the_router_hands_digest_commands_here(db, settings, workspace):
    from bot.router import route

    reply = route(db, settings, workspace["id"], "/pandora digest set weekdays 08:00", source="slack",
                  channel_id="C0HERE")
    assert reply.ok, reply.text
    listed = route(db, settings, workspace["id"], "/pandora digest list", source="cli")
    assert "1. weekly-digest → <#C0HERE>, every weekday (Mon–Fri) at 08:00 UTC" in listed.text

"""What a digest schedule is, how people write one, when it next runs, and its rows in `digest_schedules`.

`parse_set` reads the words after `digest set` ("weekly mon 09:00 #revops forecast tz=Europe/Berlin") into a
`Schedule`; every mistake is an InputError that names the word that is wrong and shows the right form.
`Schedule.trigger()` is the apscheduler CronTrigger in the schedule's own timezone, and `next_run` the next
slot after a moment — the one definition of "when" that both the stored next_run_at and the running scheduler
use. This module never posts anything and never runs a skill (bot/digests.py does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from apscheduler.triggers.cron import CronTrigger

from core.errors import InputError, NotFound
from skills import registry

DEFAULT_SKILL = "weekly-digest"
CADENCES = ("daily", "weekdays", "weekly", "monthly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {**{d: i for i, d in enumerate(WEEKDAYS)},
              **{n: i for i, n in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                             "sunday"))},
              "tues": 1, "weds": 2, "thur": 3, "thurs": 3}
_FILLERS = {"on", "at", "in", "to", "every"}
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?(am|pm)?$", re.I)
_SLACK_CHANNEL = re.compile(r"^<#([A-Z0-9]+)(?:\|([^>]*))?>$")
_CHANNEL_NAME = re.compile(r"^#([a-z0-9][a-z0-9_\-]{0,79})$")
EXAMPLE = "`digest set weekly mon 09:00 #revops`"
_SECOND = timedelta(seconds=1)


@dataclass
class Schedule:
    cadence: str
    run_time: time
    timezone: str = "UTC"
    weekday: int | None = None        # 0 = Monday, weekly only
    day_of_month: int | None = None   # 1–28, or -1 for the last day, monthly only
    channel_id: str | None = None
    channel_name: str | None = None
    skills: list[str] = field(default_factory=lambda: [DEFAULT_SKILL])

    def trigger(self) -> CronTrigger:
        when: dict[str, Any] = {"hour": self.run_time.hour, "minute": self.run_time.minute}
        if self.cadence == "weekdays":
            when["day_of_week"] = "mon-fri"
        elif self.cadence == "weekly":
            when["day_of_week"] = WEEKDAYS[self.weekday]
        elif self.cadence == "monthly":
            when["day"] = "last" if self.day_of_month == -1 else self.day_of_month
        return CronTrigger(timezone=ZoneInfo(self.timezone), **when)

    def next_run(self, after: datetime) -> datetime:
        """The first slot strictly after `after` (an aware datetime), in UTC."""
        nxt = self.trigger().get_next_fire_time(None, after.astimezone(ZoneInfo(self.timezone)))
        if nxt <= after:  # apscheduler includes `after` itself when it is exactly a slot
            nxt = self.trigger().get_next_fire_time(nxt, nxt.replace(microsecond=0) + _SECOND)
        return nxt.astimezone(timezone.utc)

    @property
    def channel(self) -> str:
        """What to post to: the channel id when known, else "#name"."""
        return self.channel_id or f"#{self.channel_name}"

    def channel_label(self) -> str:
        return f"<#{self.channel_id}>" if self.channel_id else f"#{self.channel_name}"

    def describe(self) -> str:
        at = f"at {self.run_time:%H:%M} {self.timezone}"
        if self.cadence == "daily":
            return f"every day {at}"
        if self.cadence == "weekdays":
            return f"every weekday (Mon–Fri) {at}"
        if self.cadence == "weekly":
            day = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[self.weekday]
            return f"every {day} {at}"
        day = "the last day" if self.day_of_month == -1 else f"day {self.day_of_month}"
        return f"monthly on {day} {at}"

    def signature(self) -> tuple:
        """What decides when and where a job runs: a running job is replaced only when this changes."""
        return (self.cadence, self.run_time, self.timezone, self.weekday, self.day_of_month, self.channel,
                tuple(self.skills))


# --- parsing -------------------------------------------------------------------------------------------------

def _weekday(word: str) -> int:
    day = _DAY_NAMES.get(word.lower())
    if day is None:
        raise InputError(f"'{word}' is not a weekday; use mon…sun (e.g. {EXAMPLE})", field="weekday")
    return day


def _day_of_month(word: str) -> int:
    w = word.lower()
    if w == "last":
        return -1
    digits = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", w)
    if digits and 1 <= int(digits.group(1)) <= 28:
        return int(digits.group(1))
    raise InputError(f"'{word}' is not a day for a monthly digest; use 1–28 or last "
                     "(e.g. `digest set monthly 1 09:00 #revops`)", field="day")


def parse_time(word: str) -> time | None:
    """09:00, 9:00, 17:30, 9am, 5:30pm → a time; None when the word is not shaped like a time at all."""
    m = _TIME.match(word)
    if not m or (m.group(2) is None and m.group(3) is None):
        return None
    hour, minute, ampm = int(m.group(1)), int(m.group(2) or 0), (m.group(3) or "").lower()
    if ampm and 1 <= hour <= 12:
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    elif ampm:
        hour = 99  # "13pm": not a time
    if hour > 23 or minute > 59:
        raise InputError(f"'{word}' is not a time of day; use HH:MM in 24-hour form, e.g. 09:00 or 17:30",
                         field="time")
    return time(hour, minute)


def parse_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"'{name}' is not a time zone; use an IANA name such as Europe/Berlin, "
                         "America/New_York or UTC", field="timezone") from None
    return name


def parse_channel(word: str) -> tuple[str | None, str | None] | None:
    """<#C123|revops> → (C123, revops); #revops → (None, revops); None when the word is not a channel."""
    m = _SLACK_CHANNEL.match(word)
    if m:
        return m.group(1), (m.group(2) or None)
    if word.startswith("#"):
        m = _CHANNEL_NAME.match(word.lower())
        if not m:
            raise InputError(f"'{word}' is not a channel name; Slack channel names are lower-case letters, digits,"
                             " - and _ (e.g. #revops)", field="channel")
        return None, m.group(1)
    return None


def parse_set(words: list[str], *, channel_id: str | None = None, default_timezone: str = "UTC") -> Schedule:
    """The words after `digest set`. The cadence comes first, then its day (weekly: a weekday, monthly: a day
    of the month); the time, channel, timezone (tz=…) and skill names may follow in any order."""
    words = [w for w in words if w.lower() not in _FILLERS]
    if not words:
        raise InputError(f"say how often, when and where, e.g. {EXAMPLE}", field="cadence")
    said = words.pop(0)
    cadence = {"weekday": "weekdays", "day": "daily", "week": "weekly", "month": "monthly"}.get(said.lower(),
                                                                                                said.lower())
    if cadence not in CADENCES:
        raise InputError(f"'{said}' is not a cadence; use daily, weekdays, weekly or monthly"
                         f" (e.g. {EXAMPLE})", field="cadence")
    sched = Schedule(cadence=cadence, run_time=time(0, 0), timezone=default_timezone)
    if cadence in ("weekly", "monthly"):
        if not words:
            raise InputError(f"a {cadence} digest needs a {'weekday' if cadence == 'weekly' else 'day (1–28 or last)'}"
                             f", e.g. {EXAMPLE if cadence == 'weekly' else '`digest set monthly 1 09:00 #revops`'}",
                             field="weekday" if cadence == "weekly" else "day")
        first = words.pop(0)
        if cadence == "weekly":
            sched.weekday = _weekday(first)
        else:
            sched.day_of_month = _day_of_month(first)
    run_time, channel, skills = None, None, []
    for word in words:
        lower = word.lower()
        if lower.startswith(("tz=", "timezone=", "tz:")):
            sched.timezone = parse_timezone(word.split("=", 1)[-1] if "=" in word else word.split(":", 1)[1])
        elif (t := parse_time(word)) is not None:
            if run_time is not None:
                raise InputError(f"two times given ('{run_time:%H:%M}' and '{word}'); a digest runs once per slot",
                                 field="time")
            run_time = t
        elif (c := parse_channel(word)) is not None:
            if channel is not None:
                raise InputError(f"two channels given; a digest posts to one channel ('{word}' is the second)",
                                 field="channel")
            channel = c
        elif "/" in word or word.upper() == "UTC":
            sched.timezone = parse_timezone(word)
        else:
            try:
                skills.append(registry.get(word).name)
            except NotFound:
                known = ", ".join(s.name for s in registry.all_skills())
                raise InputError(f"'{word}' is not a skill, time, channel or tz=…; skills are: {known}",
                                 field="skills") from None
    if run_time is None:
        raise InputError(f"say at what time, e.g. {EXAMPLE}", field="time")
    sched.run_time = run_time
    if channel is None:
        if not channel_id:
            raise InputError(f"say which channel to post in, e.g. {EXAMPLE}", field="channel")
        channel = (channel_id, None)
    sched.channel_id, sched.channel_name = channel
    sched.skills = list(dict.fromkeys(skills)) or [DEFAULT_SKILL]
    return sched


# --- rows ----------------------------------------------------------------------------------------------------

_COLUMNS = "id, workspace_id, cadence, weekday, day_of_month, run_time, timezone, channel_id, channel_name," \
           " skills, enabled, last_run_at, last_status, last_error, next_run_at, created_by, created_at, updated_at"


def from_row(row: dict[str, Any]) -> Schedule:
    return Schedule(cadence=row["cadence"], run_time=row["run_time"], timezone=row["timezone"],
                    weekday=row["weekday"], day_of_month=row["day_of_month"], channel_id=row["channel_id"],
                    channel_name=row["channel_name"], skills=list(row["skills"]))


def insert_schedule(conn: psycopg.Connection, workspace_id: str, sched: Schedule, *, now: datetime,
                    created_by: str | None = None) -> dict[str, Any]:
    return conn.execute(
        "INSERT INTO digest_schedules (workspace_id, cadence, weekday, day_of_month, run_time, timezone, channel_id,"
        " channel_name, skills, next_run_at, created_by) VALUES (%(workspace_id)s, %(cadence)s, %(weekday)s,"
        " %(day_of_month)s, %(run_time)s, %(timezone)s, %(channel_id)s, %(channel_name)s, %(skills)s,"
        f" %(next_run_at)s, %(created_by)s) RETURNING {_COLUMNS}",
        {"workspace_id": workspace_id, "cadence": sched.cadence, "weekday": sched.weekday,
         "day_of_month": sched.day_of_month, "run_time": sched.run_time, "timezone": sched.timezone,
         "channel_id": sched.channel_id, "channel_name": sched.channel_name, "skills": sched.skills,
         "next_run_at": sched.next_run(now), "created_by": created_by}).fetchone()


def list_schedules(conn: psycopg.Connection, workspace_id: str) -> list[dict[str, Any]]:
    """A workspace's schedules in the order `digest list` numbers them."""
    return conn.execute(f"SELECT {_COLUMNS} FROM digest_schedules WHERE workspace_id = %(workspace_id)s"
                        " ORDER BY created_at, id", {"workspace_id": workspace_id}).fetchall()


def enabled_schedules(conn: psycopg.Connection, workspace_id: str | None = None) -> list[dict[str, Any]]:
    """Every enabled schedule (the scheduler serves all workspaces), or one workspace's."""
    if workspace_id is not None:
        return [r for r in list_schedules(conn, workspace_id) if r["enabled"]]
    return conn.execute(f"SELECT {_COLUMNS} FROM digest_schedules WHERE enabled ORDER BY workspace_id, created_at"
                        ).fetchall()


def find_schedule(rows: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """`ref` is the number `digest list` shows, a schedule id, or an id's first characters (≥ 6)."""
    ref = ref.strip().lstrip("#")
    if ref.isdigit() and len(ref) < 6:
        n = int(ref)
        if 1 <= n <= len(rows):
            return rows[n - 1]
        raise NotFound(f"there is no digest number {n}; `digest list` shows {len(rows)}")
    matches = [r for r in rows if str(r["id"]).startswith(ref.lower())] if len(ref) >= 6 else []
    if len(matches) == 1:
        return matches[0]
    raise NotFound(f"no digest '{ref}' in this workspace; use the number `digest list` shows")

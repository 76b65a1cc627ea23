"""Scheduled digests: the `digest set|list|remove` command and the scheduler that posts them.

`digest_command` is what the router calls for `/pandora digest …` (and `pandora say`): it stores schedules in
`digest_schedules` and tells a running scheduler at once through `notify_changed` (same process); a scheduler
in another process (`pandora serve` while the CLI edits) sees the change by polling a fingerprint of the table.
`DigestScheduler` keeps one apscheduler cron job per enabled schedule, in the schedule's timezone. A run
first claims its slot in Postgres (moving next_run_at on), so two processes never post the same slot twice and
a slot missed while the process was down (by less than a day) fires exactly once on start.

This module never talks to Slack itself: it hands each Reply to the `post` callback it was given. One failing
skill never stops the others in the same digest.
"""
from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler

from bot import digest_schedule as ds
from bot.render.blocks import context, header, mrkdwn_escape, render_result, reply_from_blocks, reply_from_text, section
from bot.reply import Reply
from core.errors import InputError, NotFound, PandoraError
from core.settings import Settings
from skills.runtime import run_skill

log = logging.getLogger("pandora.digests")
Post = Callable[[str, str, Reply], None]
MISSED_WINDOW = timedelta(days=1)   # a slot missed by more than this is skipped, not posted late
CLAIM_MARGIN = timedelta(minutes=2)  # clock skew between this process and Postgres

_listeners: list[Callable[[str | None], None]] = []
_listeners_lock = threading.Lock()


def notify_changed(workspace_id: str | None = None) -> None:
    """Tell the schedulers running in this process that a workspace's schedules changed."""
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(workspace_id)
        except Exception:  # a scheduler failing to reload must not fail the user's command
            log.exception("digest scheduler reload failed")


# --- the command ---------------------------------------------------------------------------------------------

USAGE = ("`digest set weekly mon 09:00 #revops [skills…] [tz=Europe/Berlin]` · `digest set daily 08:30 #sales` ·"
         " `digest set weekdays 09:00 #revops` · `digest set monthly 1 09:00 #revops` · `digest list` ·"
         " `digest remove <number>`")


def digest_command(db, settings: Settings, workspace_id: str, args_text: str, *, channel_id: str | None = None,
                   user_id: str | None = None, now: datetime | None = None) -> Reply:
    """`/pandora digest …`. Bad input comes back as a Reply(ok=False) naming the word that is wrong."""
    words = (args_text or "").split()
    while words and words[0].lower() in ("/pandora", "digest", "digests"):
        words.pop(0)
    action = words.pop(0).lower() if words else "list"
    workspace_id = str(workspace_id)
    try:
        if action in ("set", "add", "create", "new"):
            return _set(db, workspace_id, words, channel_id=channel_id, user_id=user_id,
                        now=now or datetime.now(timezone.utc))
        if action in ("list", "ls", "show"):
            return _list(db, workspace_id)
        if action in ("remove", "rm", "delete", "del", "stop"):
            if not words:
                raise InputError("say which digest to remove: `digest remove <number>` (see `digest list`)",
                                 field="digest")
            return _remove(db, workspace_id, words[0])
        if action == "help":
            return reply_from_text(f"Scheduled digests post skill results to a channel.\n{USAGE}", title="Digests")
        raise InputError(f"'{action}' is not a digest command; use set, list or remove. {USAGE}", field="action")
    except PandoraError as exc:
        return reply_from_text(exc.message, data={"error": exc.to_dict()}, ok=False)


def _names(sched: ds.Schedule) -> str:
    return ", ".join(sched.skills)


def _when(at: datetime | None, tz: str) -> str:
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def _set(db, workspace_id: str, words: list[str], *, channel_id, user_id, now: datetime) -> Reply:
    sched = ds.parse_set(words, channel_id=channel_id)
    with db.connection() as conn:
        row = ds.insert_schedule(conn, workspace_id, sched, now=now, created_by=user_id)
        number = len(ds.list_schedules(conn, workspace_id))
    notify_changed(workspace_id)
    what = f"*{mrkdwn_escape(_names(sched))}* → {sched.channel_label()}, {sched.describe()}"
    next_at = _when(row["next_run_at"], sched.timezone)
    text = f"Digest {number} scheduled: {_names(sched)} to {sched.channel_label()}, " \
           f"{sched.describe()}. Next run {next_at}."
    blocks = [header("Digest scheduled"), section(f"{what}\nNext run: {next_at}"),
              context(f"`/pandora digest list` shows all · `/pandora digest remove {number}` stops this one")]
    return reply_from_blocks(text, blocks, data={"schedule": _plain(row), "number": number})


def _list(db, workspace_id: str) -> Reply:
    with db.connection() as conn:
        rows = ds.list_schedules(conn, workspace_id)
    if not rows:
        return reply_from_text(f"No digests are scheduled yet. {USAGE}", title="Scheduled digests",
                               data={"schedules": []})
    lines, blocks = [], [header("Scheduled digests")]
    for n, row in enumerate(rows, 1):
        sched = ds.from_row(row)
        last = f"last {_when(row['last_run_at'], sched.timezone)} ({row['last_status'] or 'running'})" \
            if row["last_run_at"] else "not run yet"
        line = f"{n}. {_names(sched)} → {sched.channel_label()}, {sched.describe()}; " \
               f"next {_when(row['next_run_at'], sched.timezone)}; {last}" + ("" if row["enabled"] else " (paused)")
        lines.append(line)
        blocks.append(section(f"*{n}.* {mrkdwn_escape(_names(sched))} → {sched.channel_label()}, "
                              f"{sched.describe()}\nNext: {_when(row['next_run_at'], sched.timezone)} · {last}"))
    blocks.append(context("`/pandora digest remove <number>` stops one · `/pandora digest set …` adds one"))
    return reply_from_blocks("Scheduled digests:\n" + "\n".join(lines), blocks,
                             data={"schedules": [_plain(r) for r in rows]})


def _remove(db, workspace_id: str, ref: str) -> Reply:
    with db.connection() as conn:
        rows = ds.list_schedules(conn, workspace_id)
        row = ds.find_schedule(rows, ref)
        conn.execute("DELETE FROM digest_schedules WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                     {"workspace_id": workspace_id, "id": row["id"]})
    notify_changed(workspace_id)
    sched = ds.from_row(row)
    return reply_from_text(f"Removed the digest of {mrkdwn_escape(_names(sched))} to "
                           f"{sched.channel_label()} ({sched.describe()}).", data={"removed": _plain(row)})


def _plain(row: dict) -> dict:
    """A schedule row as JSON-safe data (ids as text, times as ISO strings)."""
    return {k: v.isoformat() if isinstance(v, (datetime, time)) else str(v) if isinstance(v, uuid.UUID) else v
            for k, v in row.items()}


# --- the scheduler -------------------------------------------------------------------------------------------

def _job_id(workspace_id, schedule_id) -> str:
    return f"digest:{workspace_id}:{schedule_id}"


class DigestScheduler:
    """Runs every enabled digest schedule of every workspace at its time, posting through `post`."""

    def __init__(self, db, settings: Settings, post: Post, *, poll_seconds: float = 60.0) -> None:
        self.db, self.settings, self.post = db, settings, post
        self.poll_seconds = poll_seconds
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._signatures: dict[str, tuple] = {}
        self._fingerprint: str | None = None
        self._lock = threading.RLock()

    def start(self) -> None:
        self._scheduler.start()
        with _listeners_lock:
            _listeners.append(self.reload)
        self.reload()
        self._catch_up()
        self._scheduler.add_job(self._poll, "interval", seconds=self.poll_seconds, id="digest:poll",
                                coalesce=True, max_instances=1, replace_existing=True)

    def shutdown(self, wait: bool = False) -> None:
        with _listeners_lock:
            if self.reload in _listeners:
                _listeners.remove(self.reload)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def jobs(self) -> list[dict]:
        """The digest jobs scheduled right now: workspace, schedule and next fire time (UTC)."""
        out = []
        for job in self._scheduler.get_jobs():
            if job.id.count(":") == 2:
                _, ws, sid = job.id.split(":")
                out.append({"workspace_id": ws, "schedule_id": sid,
                            "next_run_time": job.next_run_time.astimezone(timezone.utc) if job.next_run_time else None})
        return out

    def reload(self, workspace_id: str | None = None) -> None:
        """Make the jobs match the enabled schedules (of one workspace, or all); unchanged jobs keep running."""
        with self._lock, self.db.connection() as conn:
            rows = ds.enabled_schedules(conn, str(workspace_id) if workspace_id else None)
            if workspace_id is None:
                # Only a full reload may record the fingerprint: after a one-workspace reload, changes other
                # processes made elsewhere must still look new to the next poll.
                self._fingerprint = self._read_fingerprint(conn)
        prefix = f"digest:{workspace_id}:" if workspace_id else "digest:"
        want = {_job_id(r["workspace_id"], r["id"]): (r, ds.from_row(r)) for r in rows}
        with self._lock:
            for job_id in [j for j in self._signatures if j.startswith(prefix) and j not in want]:
                self._signatures.pop(job_id)
                if self._scheduler.get_job(job_id):
                    self._scheduler.remove_job(job_id)
            for job_id, (row, sched) in want.items():
                if self._signatures.get(job_id) == sched.signature():
                    continue
                try:
                    trigger = sched.trigger()
                except Exception:  # e.g. a timezone this machine's tzdata lacks: skip it, keep the others
                    log.exception("digest %s cannot be scheduled", row["id"])
                    continue
                self._scheduler.add_job(
                    self.run_due, trigger, args=[str(row["workspace_id"]), str(row["id"])], id=job_id,
                    coalesce=True, max_instances=1, misfire_grace_time=int(MISSED_WINDOW.total_seconds()),
                    replace_existing=True)
                self._signatures[job_id] = sched.signature()

    def _read_fingerprint(self, conn) -> str:
        # Cross-workspace on purpose: the scheduler serves every workspace; md5 of ids + update times only.
        row = conn.execute("SELECT md5(coalesce(string_agg(workspace_id::text || id::text || updated_at::text"
                           " || enabled::text, ',' ORDER BY workspace_id, id), '')) AS f FROM digest_schedules"
                           ).fetchone()
        return row["f"]

    def _poll(self) -> None:
        with self.db.connection() as conn:
            changed = self._read_fingerprint(conn) != self._fingerprint
        if changed:
            self.reload()

    def _catch_up(self) -> None:
        """Slots that passed while no scheduler ran: fire each schedule once if the slot is less than a day
        old, else just move it on (a week-old digest is noise)."""
        now = datetime.now(timezone.utc)
        with self.db.connection() as conn:
            overdue = [r for r in ds.enabled_schedules(conn) if r["next_run_at"] and r["next_run_at"] < now]
        for row in overdue:
            ws, sid = str(row["workspace_id"]), str(row["id"])
            if now - row["next_run_at"] < MISSED_WINDOW:
                log.info("digest %s missed its %s slot; running it once now", sid, row["next_run_at"])
                self._scheduler.add_job(self.run_due, args=[ws, sid], id=f"catchup:{sid}", replace_existing=True)
            else:
                with self.db.connection() as conn:
                    self._claim(conn, ws, sid, now)

    def _claim(self, conn, workspace_id: str, schedule_id: str, now: datetime) -> dict | None:
        """Move next_run_at past `now` if the slot is due; the row when this process won the slot, else None."""
        row = conn.execute(
            "SELECT cadence, weekday, day_of_month, run_time, timezone, channel_id, channel_name, skills"
            " FROM digest_schedules WHERE workspace_id = %(workspace_id)s AND id = %(id)s AND enabled",
            {"workspace_id": workspace_id, "id": schedule_id}).fetchone()
        if row is None:
            return None
        return conn.execute(
            "UPDATE digest_schedules SET next_run_at = %(next)s WHERE workspace_id = %(workspace_id)s AND id = %(id)s"
            " AND enabled AND (next_run_at IS NULL OR next_run_at <= %(due_by)s) RETURNING id",
            {"workspace_id": workspace_id, "id": schedule_id, "next": ds.from_row(row).next_run(now),
             "due_by": now + CLAIM_MARGIN}).fetchone()

    def run_due(self, workspace_id: str, schedule_id: str) -> bool:
        """What a cron job calls: fire the schedule if its slot is still owed and this process claims it first
        (another process, or an earlier catch-up, may have run it). True when it fired."""
        with self.db.connection() as conn:
            won = self._claim(conn, workspace_id, schedule_id, datetime.now(timezone.utc))
        if won:
            self.fire(workspace_id, schedule_id)
        return bool(won)

    def fire(self, workspace_id: str, schedule_id: str) -> list[Reply]:
        """Run the schedule's skills now and post one Reply per skill; records the run on the schedule."""
        workspace_id, schedule_id = str(workspace_id), str(schedule_id)
        with self.db.connection() as conn:
            rows = [r for r in ds.list_schedules(conn, workspace_id) if str(r["id"]) == schedule_id]
            if rows:
                conn.execute("UPDATE digest_schedules SET last_run_at = now(), last_status = NULL, last_error = NULL"
                             " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                             {"workspace_id": workspace_id, "id": schedule_id})
        if not rows:
            raise NotFound(f"no digest {schedule_id} in this workspace")
        sched = ds.from_row(rows[0])
        replies, errors = [], []
        for name in sched.skills:
            reply = self._run_one(workspace_id, name)
            if not reply.ok:
                errors.append(f"{name}: {reply.text}")
            try:
                self.post(workspace_id, sched.channel, reply)
            except Exception as exc:  # Slack down or the bot not in the channel: record it, go on
                log.exception("posting digest %s (%s) to %s failed", schedule_id, name, sched.channel)
                errors.append(f"{name}: posting to {sched.channel} failed ({exc})")
            replies.append(reply)
        status = "ok" if not errors else ("failed" if len(errors) >= len(sched.skills) else "partial")
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE digest_schedules SET last_status = %(status)s, last_error = %(error)s,"
                " next_run_at = greatest(next_run_at, %(next)s) WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                {"workspace_id": workspace_id, "id": schedule_id, "status": status,
                 "error": "; ".join(errors)[:2000] or None, "next": sched.next_run(datetime.now(timezone.utc))})
        return replies

    def _run_one(self, workspace_id: str, name: str) -> Reply:
        try:
            return render_result(run_skill(self.db, self.settings, workspace_id, name, trigger="schedule"))
        except PandoraError as exc:
            message = exc.message
        except Exception as exc:  # a bug in one skill must not sink the digest
            log.exception("digest skill %s failed", name)
            message = f"{type(exc).__name__}: {exc}"
        return reply_from_text(f"Couldn't run *{mrkdwn_escape(name)}* for this digest: {mrkdwn_escape(message)}",
                               title=f"{name}: not available this time", data={"skill": name, "error": message},
                               ok=False)

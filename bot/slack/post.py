"""Posting a router `Reply` to Slack: the one place that turns a Reply into Web API calls.

`post_reply` sends the first page of blocks with the text fallback (or replaces an existing message, e.g. the
"Working on it…" placeholder), threads every overflow page (`more_blocks`) under that first message, and
uploads chart files with files_upload_v2 into the same thread. `make_client` builds the WebClient every Slack
caller uses (base_url from settings, Slack's 429 Retry-After honoured).

It never renders (bot/render/blocks.py does) and never reads the database. A Slack refusal of the blocks
(invalid_blocks) is not allowed to lose the answer: the text is posted instead, with a short note.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.reply import Reply

log = logging.getLogger(__name__)

MAX_TEXT = 39_000   # chat.postMessage truncates text beyond 40,000 characters; keep clear of it
NOTIFY_TEXT = 2_900  # the fallback shown in notifications when blocks carry the content


def make_client(settings: Any, token: str | None = None) -> WebClient:
    """The WebClient Pandora uses: Slack API URL from settings (tests point it at the fake), retries on
    connection errors and on 429 after the Retry-After Slack sends (twice at most, so a stuck limit surfaces)."""
    return WebClient(token=token, base_url=settings.slack_api_url,
                     retry_handlers=[ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)])


def _fallback(reply: Reply) -> str:
    text = (reply.text or "").strip() or "Pandora"
    return text[:NOTIFY_TEXT] if reply.blocks else text[:MAX_TEXT]


def post_reply(client: WebClient, channel: str, reply: Reply, *, thread_ts: str | None = None,
               update_ts: str | None = None, user: str | None = None) -> str:
    """Post (or, with update_ts, replace) a message carrying `reply`; returns the first message's ts.

    Overflow pages go into the thread of that message (or of `thread_ts` when the reply itself is a thread
    reply); charts are uploaded into the same thread. With `user` and `reply.ephemeral`, the answer is shown to
    that user only (ephemeral messages cannot be threaded or updated, so overflow pages follow as more
    ephemeral messages and charts are left out)."""
    if reply.ephemeral and user:
        return _post_ephemeral(client, channel, user, reply, thread_ts)
    ts = _send(client, channel, reply.blocks, _fallback(reply), thread_ts=thread_ts, update_ts=update_ts)
    thread = thread_ts or ts
    total = len(reply.more_blocks) + 1
    for page_no, page in enumerate(reply.more_blocks, start=2):
        _send(client, channel, page, f"{_fallback(reply)[:200]} (continued {page_no}/{total})", thread_ts=thread)
    for path in reply.files:
        upload_file(client, channel, path, thread_ts=thread)
    return ts


def upload_file(client: WebClient, channel: str, path: str, *, thread_ts: str | None = None,
                title: str | None = None) -> None:
    name = os.path.basename(path)
    title = title or os.path.splitext(name)[0].replace("_", " ").replace("-", " ").strip().capitalize()
    client.files_upload_v2(file=path, filename=name, title=title, channel=channel, thread_ts=thread_ts)


def _send(client: WebClient, channel: str, blocks: list[dict[str, Any]], text: str, *,
          thread_ts: str | None = None, update_ts: str | None = None) -> str:
    try:
        return _call(client, channel, blocks, text, thread_ts=thread_ts, update_ts=update_ts)
    except SlackApiError as exc:
        if not blocks or exc.response.get("error") != "invalid_blocks":
            raise
        # Our renderer validates, so this is a bug in a formatter: still deliver the answer, as text.
        log.error("Slack refused the blocks (%s); posting text only", exc.response.get("errors"))
        note = "\n_(This answer lost its formatting: Slack refused the layout. The figures are unchanged.)_"
        return _call(client, channel, [], text[:MAX_TEXT - len(note)] + note, thread_ts=thread_ts, update_ts=update_ts)


def _call(client: WebClient, channel: str, blocks: list[dict[str, Any]], text: str, *,
          thread_ts: str | None, update_ts: str | None) -> str:
    if update_ts:
        # blocks=[] explicitly, so a placeholder's blocks do not survive under a text-only answer
        client.chat_update(channel=channel, ts=update_ts, text=text, blocks=blocks)
        return update_ts
    kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
    if blocks:
        kwargs["blocks"] = blocks
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    return client.chat_postMessage(**kwargs)["ts"]


def _post_ephemeral(client: WebClient, channel: str, user: str, reply: Reply, thread_ts: str | None) -> str:
    ts = ""
    for blocks in [reply.blocks, *reply.more_blocks]:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": _fallback(reply)}
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        ts = ts or client.chat_postEphemeral(**kwargs)["message_ts"]
    return ts


class ProgressMessage:
    """A "Working on it…" message that slow work keeps current: `update(line)` edits it at most once per
    `interval` seconds (Slack allows ~1 chat.update per second per channel), dropping the lines in between;
    `finish(reply)` replaces it with the answer. A failed progress edit never fails the work."""

    def __init__(self, client: WebClient, channel: str, text: str, *, thread_ts: str | None = None,
                 interval: float = 1.0) -> None:
        self.client, self.channel, self.interval = client, channel, interval
        self._lock = threading.Lock()
        self._last = 0.0
        self.updates = 0
        self.ts = client.chat_postMessage(channel=channel, text=text, thread_ts=thread_ts,
                                          blocks=[_working_block(text)])["ts"]
        self.thread_ts = thread_ts

    def update(self, line: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=line, blocks=[_working_block(line)])
            self.updates += 1
        except SlackApiError as exc:
            log.warning("progress update failed: %s", exc.response.get("error"))

    def finish(self, reply: Reply) -> str:
        return post_reply(self.client, self.channel, reply, update_ts=self.ts, thread_ts=self.thread_ts)


def _working_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f":hourglass_flowing_sand: {text[:2900]}"}]}

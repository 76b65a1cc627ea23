"""On-demand call transcripts: read from the conversation's cache, or fetched from its source and cached.

Sync never stores transcripts (they are large and most are never read). `get_transcript` answers from
`conversations.transcript` while that copy is fresh — younger than `max_age` (default: context
`goals_and_targets.thresholds.transcript_max_age_days`, else 7 days) and not older than the row's last change
(`updated_at` / `source_updated_at`: a re-synced call may have been re-recorded or re-processed) — and
otherwise asks the conversation's connector (`fetch_transcript(client, row) -> str | None`, the client built
from the stored, decrypted credentials exactly as the sync engine builds it, so its rate limits and token
refresh apply) and stores text + fetch time in one UPDATE.

Connectors are looked up in `core.sync.registry`, which the caller has filled (`connectors.load_all()`).
It never touches `updated_at` (that marks source changes for the incremental pipeline), never holds a database
connection while a request is in flight, never caches a failure, and never reads outside the caller's workspace.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx

from core.connections import get_connection, save_connection
from core.context import get_context, lookup
from core.credentials import Vault
from core.errors import InputError, NotFound
from core.sync import registry
from core.sync.protocol import accepts_on_credentials

log = logging.getLogger("pandora.transcripts")
DEFAULT_MAX_AGE_DAYS = 7
MAX_AGE_PATH = "goals_and_targets.thresholds.transcript_max_age_days"

_COLUMNS = ("id, source, source_id, title, started_at, duration_seconds, call_url, participants, source_data,"
            " account_id, is_internal, transcript, transcript_fetched_at, source_updated_at, updated_at")


@dataclass
class Transcript:
    conversation_id: str
    title: str | None
    text: str
    fetched_at: datetime
    source: str
    from_cache: bool
    source_id: str | None = None
    started_at: datetime | None = None
    call_url: str | None = None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lines": len(self.lines)}


def transcript_sources() -> list[str]:
    """Registered connectors that can fetch a transcript (those with a `fetch_transcript` hook)."""
    return [n for n in registry.names() if callable(getattr(registry.get(n), "fetch_transcript", None))]


def max_age_for(conn, workspace_id: str) -> timedelta:
    """The workspace's cache lifetime (context layer), or the default."""
    days = lookup(get_context(conn, workspace_id), MAX_AGE_PATH, DEFAULT_MAX_AGE_DAYS)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        raise InputError(f"context {MAX_AGE_PATH} must be a number of days (0 or more), got {days!r}",
                         field=MAX_AGE_PATH)
    return timedelta(days=days)


def find_conversation(conn, workspace_id: str, ref: str) -> dict[str, Any]:
    """A conversation of this workspace by Pandora id or by its source's id (a Gong call id); NotFound otherwise
    — the message names only what the caller typed, so another workspace's calls are never revealed."""
    ref = str(ref).strip()
    try:
        by = {"id": uuid.UUID(ref)}
        cond = "id = %(id)s"
    except ValueError:
        by = {"source_id": ref}
        cond = "source_id = %(source_id)s"
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM conversations WHERE workspace_id = %(workspace_id)s AND {cond}"
        " AND deleted_at IS NULL ORDER BY source LIMIT 3", {"workspace_id": workspace_id, **by}).fetchall()
    if not found:
        raise NotFound(f"No conversation {ref!r} in this workspace (use a conversation id, or a Gong / Fireflies "
                       "call id of a synced call)", field="conversation_id")
    if len(found) > 1:
        raise InputError(f"Several conversations have the source id {ref!r} "
                         f"({', '.join(r['source'] for r in found)}): use the Pandora conversation id",
                         field="conversation_id")
    return found[0]


def is_fresh(row: dict[str, Any], now: datetime, max_age: timedelta) -> bool:
    fetched = row.get("transcript_fetched_at")
    if row.get("transcript") is None or fetched is None or now - fetched >= max_age:
        return False
    changed = [t for t in (row.get("source_updated_at"), row.get("updated_at")) if t is not None]
    return not changed or max(changed) <= fetched


def get_transcript(db, vault: Vault, workspace_id, conversation_id, *, max_age: timedelta | None = None,
                   refresh: bool = False, now: datetime | None = None,
                   transport: httpx.BaseTransport | None = None,
                   sleep: Callable[[float], None] | None = None) -> Transcript:
    """The transcript of one conversation: cached when fresh, else fetched from its source and cached.

    `refresh` fetches even when the cache is fresh; `now`, `transport` and `sleep` are for tests."""
    workspace_id = str(workspace_id)
    now = now or datetime.now(timezone.utc)  # taken before the fetch: a sync landing meanwhile makes it stale
    with db.connection() as conn:
        row = find_conversation(conn, workspace_id, conversation_id)
        if max_age is None:
            max_age = max_age_for(conn, workspace_id)
    if not refresh and is_fresh(row, now, max_age):
        return _transcript(row, row["transcript"], row["transcript_fetched_at"], from_cache=True)
    text = fetch(db, vault, workspace_id, row, transport=transport, sleep=sleep)
    with db.connection() as conn:
        conn.execute(
            "UPDATE conversations SET transcript = %(text)s, transcript_fetched_at = %(fetched_at)s"
            " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": workspace_id, "id": row["id"], "text": text, "fetched_at": now})
    return _transcript(row, text, now, from_cache=False)


def fetch(db, vault: Vault, workspace_id: str, row: dict[str, Any], *,
          transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None) -> str:
    """The transcript text from the conversation's source (nothing is stored here)."""
    source = row["source"]
    capable = transcript_sources()
    connector = registry.get(source) if source in registry.names() else None
    hook = getattr(connector, "fetch_transcript", None)
    if not callable(hook):
        raise InputError(f"Conversations from {source} have no transcript Pandora can fetch (transcripts come from "
                         f"{' and '.join(capable) or 'call recorders such as Gong and Fireflies'})",
                         field="conversation_id", source=source)
    with db.connection() as conn:
        try:
            connection = get_connection(conn, workspace_id, source)
        except NotFound as exc:
            raise NotFound(exc.message, source=source, reason="not_connected") from None
    credentials = vault.decrypt(connection["credentials"])
    kwargs: dict[str, Any] = {}
    if transport is not None:
        kwargs["transport"] = transport
    if sleep is not None:
        kwargs["sleep"] = sleep
    if accepts_on_credentials(connector):
        kwargs["on_credentials"] = lambda new: _save_credentials(db, vault, connection, new)
    with connector.client(credentials, dict(connection["metadata"]), **kwargs) as client:
        text = hook(client, row)
    if not text or not text.strip():
        label = getattr(connector, "label", source)
        raise NotFound(f"{label} has no transcript for '{row['title'] or 'Untitled call'}' (call {row['source_id']}):"
                       f" it may still be processing, or was deleted in {label}. Nothing was cached.",
                       source=source, reason="no_transcript")
    log.info("fetched the %s transcript of conversation %s (%d chars)", source, row["id"], len(text))
    return text


def _save_credentials(db, vault: Vault, connection: dict[str, Any], credentials: dict[str, Any]) -> None:
    """A token the connector refreshed while fetching is stored at once (the old refresh token may be spent)."""
    with db.connection() as conn:
        save_connection(conn, vault, connection["workspace_id"], connection["connector_name"], credentials,
                        status=connection["status"])


def _transcript(row: dict[str, Any], text: str, fetched_at: datetime, *, from_cache: bool) -> Transcript:
    return Transcript(str(row["id"]), row["title"], text, fetched_at, row["source"], from_cache,
                      row["source_id"], row["started_at"], row["call_url"])

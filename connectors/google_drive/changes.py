"""What the engine's page hooks do for Drive: soft-deletes, the listing's bookkeeping, and the saved cursors.

Why hooks and not only rows: the change feed names removed files without their metadata (`removed: true`,
no `file`), and reports every file of the account, most of them outside the chosen folders. A row can only be
soft-deleted if we hold it, and normalize cannot know that, so `on_changes_page` does it inside the page's
transaction: it reads the stored rows of files that were removed, trashed or moved out of scope and writes them
back with `deleted_at` through `upsert_rows` (the one write path keeps `row_hash` true, so a file restored later
is written again). Files we never stored stay unstored.

A full listing (first sync, a full re-sync, a changed folder choice, folders moved or renamed, an expired page
token) marks what it sees with `listed_at` = the listing's start, a column no connector row writes (so marking
rewrites nothing); once every folder is listed, the change stream that follows soft-deletes the live rows the
listing did not see (files deleted or moved away while the feed could not tell us).

Cursors: a listing partition is done when its cursor is the listing's id (a resumed listing skips it); the
change stream's cursor is `{"token": newStartPageToken, "listing": id}`, taken from its last page.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from psycopg import sql

from core.connections import update_metadata
from core.db.upsert import upsert_rows
from core.errors import ConnectorError
from core.sync.protocol import StreamContext
from core.sync.times import iso_time
from connectors.google_drive.normalize import COLUMNS, RELIST_KEY, SOURCE, is_document, live_in_scope

_STORED = sql.SQL(
    "SELECT source, source_id, {cols} FROM documents WHERE workspace_id = %(workspace_id)s AND source = %(source)s"
    " AND deleted_at IS NULL AND source_id = ANY(%(ids)s)"
).format(cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
_UNSEEN = sql.SQL(
    "SELECT source, source_id, {cols} FROM documents WHERE workspace_id = %(workspace_id)s AND source = %(source)s"
    " AND deleted_at IS NULL AND listed_at IS DISTINCT FROM %(listed)s::timestamptz"
).format(cols=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
_MARK = ("UPDATE documents SET listed_at = %(listed)s::timestamptz WHERE workspace_id = %(workspace_id)s"
         " AND source = %(source)s AND source_id = ANY(%(ids)s) AND listed_at IS DISTINCT FROM %(listed)s::timestamptz")


def listing(ctx: StreamContext) -> dict[str, Any]:
    return ctx.metadata.get("listing") or {}


def listing_done(payload: Any, ctx: StreamContext) -> str:
    """A listing partition's cursor once its last page is written."""
    return listing(ctx)["id"]


def changes_cursor(payload: Any, ctx: StreamContext) -> dict[str, Any]:
    token = payload.get("newStartPageToken") if isinstance(payload, dict) else None
    if not token:
        raise ConnectorError("google_drive: the last changes page carried no newStartPageToken; the saved position "
                             "is kept and the next run reads the same changes again", connector="google_drive")
    return {"token": str(token), "listing": listing(ctx).get("id")}


def _when(value: Any) -> datetime:
    return iso_time(value) or datetime.now(timezone.utc)


def soft_delete(conn, workspace_id: str, gone: dict[str, Any]) -> dict[str, int]:
    """Re-write the stored live rows among `gone` ({source_id: when}) with deleted_at set; returns counts."""
    if not gone:
        return {}
    rows = conn.execute(_STORED, {"workspace_id": workspace_id, "source": SOURCE, "ids": list(gone)}).fetchall()
    return _write_deleted(conn, workspace_id, [{**r, "deleted_at": _when(gone[r["source_id"]])} for r in rows])


def _write_deleted(conn, workspace_id: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    if not rows:
        return {}
    result = upsert_rows(conn, "documents", workspace_id, rows)
    return {"updated": result.updated, "deleted": result.updated}


def mark_listed(conn, workspace_id: str, ids: list[str], listed: str) -> None:
    if ids:
        conn.execute(_MARK, {"workspace_id": workspace_id, "source": SOURCE, "ids": ids, "listed": listed})


def on_listing_page(conn, ctx: StreamContext, records: list[dict[str, Any]]) -> dict | None:
    mark_listed(conn, ctx.workspace_id, [f["id"] for f in records if live_in_scope(f)], listing(ctx)["id"])
    return None


def sweep(conn, workspace_id: str, listed: str) -> dict[str, int]:
    """After a complete listing: soft-delete the live rows it did not see."""
    now = datetime.now(timezone.utc)
    rows = conn.execute(_UNSEEN, {"workspace_id": workspace_id, "source": SOURCE, "listed": listed}).fetchall()
    return _write_deleted(conn, workspace_id, [{**r, "deleted_at": now} for r in rows])


def on_changes_page(conn, ctx: StreamContext, records: list[dict[str, Any]], *, after_listing: bool = False
                    ) -> dict[str, dict[str, int]] | None:
    gone: dict[str, Any] = {}
    live: list[str] = []
    relist = False
    for change in records:
        relist = relist or bool(change.get(RELIST_KEY))
        file = change.get("file") if isinstance(change.get("file"), dict) else None
        file_id = change.get("fileId") or (file or {}).get("id")
        if not file_id or change.get("changeType", "file") != "file":
            continue
        if file is not None and not is_document(file):
            continue
        if live_in_scope(file) and not change.get("removed"):
            live.append(str(file_id))
        else:  # removed, trashed or outside the chosen folders: soft-delete the row if we hold one
            gone[str(file_id)] = change.get("time") or (file or {}).get("modifiedTime")
    counts = soft_delete(conn, ctx.workspace_id, gone)
    if after_listing:  # the files this feed brought in were not listed; they are live all the same
        mark_listed(conn, ctx.workspace_id, live, listing(ctx)["id"])
        for k, v in sweep(conn, ctx.workspace_id, listing(ctx)["id"]).items():
            counts[k] = counts.get(k, 0) + v
    if relist:
        update_metadata(conn, ctx.workspace_id, ctx.connector, {"relist": True})
    return {"documents": counts} if counts else None

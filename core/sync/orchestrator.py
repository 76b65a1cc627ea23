"""The sync engine: runs a connector's streams into the entity tables, page by page, resumably.

Guarantees:
- **One sync per (workspace, connector)**: a session advisory lock is held for the whole run; a second start
  raises SyncInProgress. Because we hold the lock, any `sync_log` row still 'running' for the pair belongs to a
  process that died, and is marked 'aborted'.
- **Page + cursor commit together**: each page's rows go through the one upsert path and the stream's position
  (`connections.sync_cursors[stream]`) is updated in the same transaction. A killed sync resumes at the first
  uncommitted page and, since writes are upserts, never duplicates a row.
- **Every run is recorded** in `sync_log` (status, per-entity counts, pages, error, timings, post-sync steps).
- **Post-sync steps run afterwards** (`core.pipeline.run_post_sync`).
- **Refreshed credentials are persisted at once** (encrypted, their own transaction): a connector that renewed
  an OAuth token mid-sync calls `on_credentials`, so the next run (or a retry after a crash) starts with it.
- **Connector hooks** (`core.sync.protocol`): `prepare` refreshes connection metadata before the streams
  (owners, pipelines); `Stream.enrich` completes a page's raw records before normalize; `Stream.on_written`
  derives link rows in the page's transaction; `Stream.on_page` sees every page's raw records there too (a change
  feed's removals carry no row); `Stream.final_cursor` reads a change feed's next position from its last page.
  A normalize that returns `deleted_at` set is a soft delete:
  it is an ordinary upsert, so an archived record keeps its row and history, and a restored one (normalize
  returns `deleted_at: None`) comes back.
Saved stream state: `{"since", "page", "max_cursor", "started"}` while a walk is in progress, `{"cursor"}`
between runs.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from psycopg import sql
from psycopg.types.json import Jsonb

from core.connections import get_connection, save_connection, update_metadata
from core.credentials import Vault
from core.db.upsert import upsert_rows
from core.errors import PageStateExpired, PandoraError, SyncInProgress
from core.pipeline import run_post_sync
from core.sync import registry
from core.sync.paginators import dig, iterate_pages
from core.sync.protocol import Stream, StreamContext, accepts_on_credentials

log = logging.getLogger("pandora.sync")
ANALYZE_AFTER_INSERTS = 1000


@dataclass
class SyncReport:
    sync_id: str
    workspace_id: str
    connector: str
    status: str = "running"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pages: int = 0
    records_fetched: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False
    error: str | None = None
    duration_ms: int | None = None
    exception: BaseException | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "exception"}


@dataclass
class SyncHandle:
    sync_id: str
    report: SyncReport
    thread: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> SyncReport:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.report


def _later(a: Any, b: Any) -> Any:
    """The later of two cursor values (ISO strings compare as text, epoch numbers as numbers)."""
    if a is None:
        return b
    if b is None:
        return a
    try:
        return a if float(a) >= float(b) else b
    except (TypeError, ValueError):
        return a if str(a) >= str(b) else b


def _earlier(a: Any, b: Any) -> Any:
    """The earlier of two cursor values (None = no bound)."""
    if a is None or b is None:
        return a if b is None else b
    return a if _later(a, b) == b else b


def _merge(base: dict | None, extra: dict | None) -> dict | None:
    """A request body with `extra` laid over it, nested objects merged key by key: a partition's
    {"filter": {"primaryUserIds": …}} and an incremental {"filter": {"fromDateTime": …}} (or GraphQL
    "variables") must both survive. Lists and scalars in `extra` replace."""
    if not extra:
        return base
    out = dict(base or {})
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class SyncEngine:
    """Runs syncs for one database. `transport` and `sleep` are injected by tests (fake servers, no waiting)."""

    def __init__(self, db, vault: Vault, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.db = db
        self.vault = vault
        self.transport = transport
        self.sleep = sleep

    def run(self, workspace_id, connector_name: str, *, trigger: str = "manual", full: bool = False) -> SyncReport:
        """Run a sync to completion in this thread and return its report (failed runs included)."""
        return self.start(workspace_id, connector_name, trigger=trigger, full=full, background=False).report

    def start(self, workspace_id, connector_name: str, *, trigger: str = "manual", full: bool = False,
              background: bool = True) -> SyncHandle:
        """Take the lock, open the sync_log row and run the sync (in a thread when `background`).
        Returns at once with the sync id when backgrounded; raises SyncInProgress / NotFound synchronously."""
        workspace_id = str(workspace_id)
        connector = registry.get(connector_name)
        lock = self.db.connect(autocommit=True)
        key = f"sync:{workspace_id}:{connector_name}"
        if not lock.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS ok", (key,)).fetchone()["ok"]:
            lock.close()
            raise SyncInProgress(f"a {connector_name} sync is already running for this workspace")
        try:
            with self.db.connection() as conn:
                connection = get_connection(conn, workspace_id, connector_name)
                conn.execute(
                    "UPDATE sync_log SET status = 'aborted', finished_at = now(),"
                    " error = COALESCE(error, 'interrupted: the process running it stopped')"
                    " WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s AND status = 'running'",
                    {"workspace_id": workspace_id, "name": connector_name},
                )
                resumed = any(isinstance(s, dict) and s.get("page") for s in connection["sync_cursors"].values())
                sync_id = str(conn.execute(
                    "INSERT INTO sync_log (workspace_id, connection_id, connector_name, trigger, resumed)"
                    " VALUES (%(workspace_id)s, %(connection_id)s, %(name)s, %(trigger)s, %(resumed)s) RETURNING id",
                    {"workspace_id": workspace_id, "connection_id": connection["id"], "name": connector_name,
                     "trigger": trigger, "resumed": resumed},
                ).fetchone()["id"])
        except BaseException:
            lock.close()
            raise
        report = SyncReport(sync_id, workspace_id, connector_name, resumed=resumed)
        job = lambda: self._run(lock, connector, connection, report, full)  # noqa: E731
        if not background:
            job()
            return SyncHandle(sync_id, report)
        thread = threading.Thread(target=job, name=f"sync-{connector_name}-{sync_id[:8]}", daemon=True)
        thread.start()
        return SyncHandle(sync_id, report, thread)

    def _run(self, lock, connector, connection, report: SyncReport, full: bool) -> None:
        started = time.perf_counter()
        try:
            credentials = self.vault.decrypt(connection["credentials"])
            metadata = dict(connection["metadata"])
            ctx = StreamContext(report.workspace_id, connector.name, metadata,
                                cursors=dict(connection["sync_cursors"]), full=full)
            kwargs: dict[str, Any] = {"transport": self.transport} if self.transport else {}
            if self.sleep:
                kwargs["sleep"] = self.sleep
            if accepts_on_credentials(connector):
                kwargs["on_credentials"] = lambda new: self._save_credentials(connection, new)
            with connector.client(credentials, metadata, **kwargs) as client:
                prepare = getattr(connector, "prepare", None)
                if prepare is not None:
                    patch = prepare(client, ctx) or {}
                    if patch:
                        with self.db.connection() as conn:
                            update_metadata(conn, report.workspace_id, connector.name, patch)
                        metadata.update(patch)
                for stream in connector.streams(ctx):
                    partitions = stream.partitions(ctx) if stream.partitions else [None]
                    for part in partitions:
                        self._run_stream(client, stream, ctx, part, connection["sync_cursors"], report, full)
            self._analyze_grown_tables(report)
            report.steps = run_post_sync(self.db, report.workspace_id, incremental=True)
            report.status = "succeeded"
        except Exception as exc:  # recorded, then surfaced by the caller (CLI, Slack, REST)
            report.status = "failed"
            report.exception = exc
            report.error = exc.message if isinstance(exc, PandoraError) else f"{type(exc).__name__}: {exc}"
            log.warning("sync %s of %s failed: %s", report.sync_id, connector.name, report.error)
        finally:
            report.duration_ms = int((time.perf_counter() - started) * 1000)
            try:
                self._finish(report)
            finally:
                _release(lock)

    def _run_stream(self, client, stream: Stream, ctx: StreamContext, part: dict | None,
                    cursors: dict, report: SyncReport, full: bool) -> None:
        key = stream.name if part is None else f"{stream.name}:" + ",".join(f"{k}={v}" for k, v in sorted(part.items()))
        state = dict(cursors.get(key) or {})
        resuming = bool(state.get("page"))
        if full and not resuming:
            state = {}
        since = state.get("since") if resuming else state.get("cursor")
        max_seen = state.get("max_cursor") if resuming else since
        started = state.get("started") if resuming and state.get("started") else time.time()
        params = dict(stream.params)
        body = stream.body
        if part:
            params.update({k: v for k, v in part.items() if k != "json"})
            body = _merge(body, part.get("json"))
        if since and stream.since:
            extra = stream.since(since)
            params.update(extra.get("params", {}))
            body = _merge(body, extra.get("json"))
        part_ctx = StreamContext(ctx.workspace_id, ctx.connector, ctx.metadata, part, ctx.cursors, ctx.full)
        try:
            self._walk(client, stream, ctx, part_ctx, key, state.get("page"), params, body, since, max_seen,
                       started, cursors, report)
        except PageStateExpired as exc:
            # A source whose paging positions expire by age (Monday cursors: 60 minutes after a walk's first
            # request) can lose one during a fresh walk too; its error says so (`restart=True`).
            if not resuming and not exc.details.get("restart"):
                raise
            # The saved page is gone at the source: walk again from the saved cursor. Every write is an
            # upsert, so the pages read before the pause are rewritten as unchanged, never duplicated.
            log.warning("%s: %s; restarting %s from its saved cursor", ctx.connector, exc.message, key)
            self._walk(client, stream, ctx, part_ctx, key, None, params, body, since, since, time.time(),
                       cursors, report)

    def _walk(self, client, stream: Stream, ctx: StreamContext, part_ctx: StreamContext, key: str, page_state,
              params: dict, body, since, max_seen, started: float, cursors: dict, report: SyncReport) -> None:
        counts = report.counts
        for page in iterate_pages(client, method=stream.method, path=stream.path, paginator=stream.paginator,
                                  records_path=stream.records_path, state=page_state, params=params, json=body):
            by_table: dict[str, list[dict]] = {}
            if stream.enrich and page.records:
                stream.enrich(client, page.records, part_ctx)
            for record in page.records:
                if stream.cursor_field:
                    max_seen = _later(max_seen, dig(record, stream.cursor_field))
                row = stream.normalize(record, part_ctx)
                if row is not None:
                    by_table.setdefault(stream.entity, []).append(row)
                if stream.related:
                    for table, extra_row in stream.related(record, part_ctx):
                        by_table.setdefault(table, []).append(extra_row)
            if page.state is not None:
                new_state = {"since": since, "page": page.state, "max_cursor": max_seen, "started": started}
            elif stream.final_cursor is not None:  # a change feed: the last page says where the next run starts
                new_state = {"cursor": stream.final_cursor(page.payload, part_ctx)}
            elif stream.cursor_field:
                cursor = max_seen
                if stream.cursor_ceiling is not None:  # a walk out of cursor order: never past its start
                    cursor = _earlier(cursor, stream.cursor_ceiling(started))
                new_state = {"cursor": cursor}
            else:
                new_state = {}
            with self.db.connection() as conn:
                for table, rows in by_table.items():
                    result = upsert_rows(conn, table, ctx.workspace_id, rows)
                    c = counts.setdefault(table, {"fetched": 0, "inserted": 0, "updated": 0, "unchanged": 0})
                    c["fetched"] += len(rows)
                    for k, v in result.counts().items():
                        c[k] += v
                if stream.on_written and by_table:
                    for table, n in (stream.on_written(conn, part_ctx, by_table) or {}).items():
                        c = counts.setdefault(table, {"fetched": 0, "inserted": 0, "updated": 0, "unchanged": 0})
                        c["inserted"] += n
                if stream.on_page is not None:
                    for table, extra in (stream.on_page(conn, part_ctx, page.records) or {}).items():
                        c = counts.setdefault(table, {"fetched": 0, "inserted": 0, "updated": 0, "unchanged": 0})
                        for k, v in extra.items():
                            c[k] = c.get(k, 0) + v
                report.pages += 1
                report.records_fetched += len(page.records)
                conn.execute(
                    "UPDATE connections SET sync_cursors = jsonb_set(sync_cursors, ARRAY[%(key)s], %(state)s), updated_at = now()"
                    " WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
                    {"workspace_id": ctx.workspace_id, "name": ctx.connector, "key": key, "state": Jsonb(new_state)},
                )
                conn.execute(
                    "UPDATE sync_log SET counts = %(counts)s, pages = %(pages)s, records_fetched = %(fetched)s"
                    " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                    {"workspace_id": ctx.workspace_id, "id": report.sync_id, "counts": Jsonb(counts),
                     "pages": report.pages, "fetched": report.records_fetched},
                )
            cursors[key] = new_state

    def _save_credentials(self, connection: dict, credentials: dict[str, Any]) -> None:
        """Persist credentials a connector refreshed mid-sync (encrypted; committed at once, whatever the
        sync does next: the old refresh token may already be spent)."""
        with self.db.connection() as conn:
            save_connection(conn, self.vault, connection["workspace_id"], connection["connector_name"],
                            credentials, status=connection["status"])

    def _analyze_grown_tables(self, report: SyncReport) -> None:
        """Fresh planner statistics for tables that just grew a lot: the post-sync steps join them at once,
        before autovacuum would have analysed them (a first sync otherwise plans its joins on empty stats)."""
        grown = [t for t, c in report.counts.items() if c.get("inserted", 0) >= ANALYZE_AFTER_INSERTS]
        if grown:
            with self.db.connection() as conn:
                for table in grown:
                    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    def _finish(self, report: SyncReport) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE sync_log SET status = %(status)s, error = %(error)s, counts = %(counts)s, steps = %(steps)s,"
                " pages = %(pages)s, records_fetched = %(fetched)s, finished_at = now(), duration_ms = %(ms)s"
                " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
                {"workspace_id": report.workspace_id, "id": report.sync_id, "status": report.status,
                 "error": report.error, "counts": Jsonb(report.counts), "steps": Jsonb(report.steps),
                 "pages": report.pages, "fetched": report.records_fetched, "ms": report.duration_ms},
            )
            conn.execute(
                "UPDATE connections SET last_sync_at = now(), last_sync_status = %(status)s, last_error = %(error)s,"
                " status = CASE WHEN %(auth_failed)s THEN 'error' ELSE status END, updated_at = now()"
                " WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
                {"workspace_id": report.workspace_id, "name": report.connector, "status": report.status,
                 "error": report.error, "auth_failed": getattr(report.exception, "code", None) == "auth_error"},
            )


def _release(lock) -> None:
    """Unlock explicitly before closing: a closed connection's backend drops its locks a moment later, and a
    sync started right after this one returned must not find the lock still held."""
    try:
        lock.execute("SELECT pg_advisory_unlock_all()")
    except Exception:  # the connection may be gone already; closing it releases the lock then
        pass
    finally:
        lock.close()


def sync_status(db, workspace_id, sync_id) -> dict[str, Any]:
    """One sync_log row (for `sync status` and the REST API)."""
    from core.errors import NotFound

    with db.connection() as conn:
        row = conn.execute(
            "SELECT id, connector_name, trigger, status, counts, steps, pages, records_fetched, resumed, error,"
            " started_at, finished_at, duration_ms FROM sync_log WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": str(workspace_id), "id": str(sync_id)},
        ).fetchone()
    if row is None:
        raise NotFound(f"no sync {sync_id} in this workspace")
    return row

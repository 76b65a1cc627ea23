"""What the sync benchmarks share: a scratch database, and a sync run that times the write path inside it.

Imported as `bench._scratch` by benchmarks that put the repository root first on sys.path.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from core.db import embedded
from core.db.migrate import migrate_url
from core.settings import Settings


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    """The URL of a database `pandora_bench_<pid>` on DATABASE_URL's server (else the embedded one), migrated;
    dropped on the way out, also on error (close its connections first: the drop forces the rest)."""
    server = settings.database_url or embedded.server_uri(settings.pandora_home)
    dbname = f"pandora_bench_{os.getpid()}"
    maint = psycopg.connect(server, autocommit=True)
    maint.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        url = embedded.with_database(server, dbname)
        migrate_url(url, settings.migrations_dir)
        yield url
    finally:
        maint.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        maint.close()


def timed_sync(db, vault, workspace_id: str, source: str):
    """Run the sync engine for `source`; (report, wall seconds, seconds inside upsert_rows, rows written there,
    wall seconds of the post-sync pipeline). The pipeline's time is measured around it, not summed from its
    steps: independent steps run at once."""
    # Imported here, not at the top: the benchmarks that only use scratch_database import no more than before.
    from core.sync import orchestrator

    write_time, write_rows, pipeline_time = [0.0], [0], [0.0]
    real_upsert, real_pipeline = orchestrator.upsert_rows, orchestrator.run_post_sync

    def timed_upsert(conn, table, ws, rows, **kw):
        started = time.perf_counter()
        try:
            return real_upsert(conn, table, ws, rows, **kw)
        finally:
            write_time[0] += time.perf_counter() - started
            write_rows[0] += len(rows)

    def timed_pipeline(*args, **kw):
        started = time.perf_counter()
        try:
            return real_pipeline(*args, **kw)
        finally:
            pipeline_time[0] += time.perf_counter() - started

    orchestrator.upsert_rows, orchestrator.run_post_sync = timed_upsert, timed_pipeline
    started = time.perf_counter()
    try:
        report = orchestrator.SyncEngine(db, vault).run(workspace_id, source)
    finally:
        orchestrator.upsert_rows, orchestrator.run_post_sync = real_upsert, real_pipeline
    return report, time.perf_counter() - started, write_time[0], write_rows[0], pipeline_time[0]

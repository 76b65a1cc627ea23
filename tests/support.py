"""Helpers tests share (fixtures live in conftest.py): writing rows through the one write path, a fresh
workspace, reading rows back, and a sync killed mid-walk."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

from core.db.upsert import upsert_rows
from core.workspaces import create_workspace


def _id(workspace: Any) -> Any:
    return workspace["id"] if isinstance(workspace, dict) else workspace


def write(db, workspace, table: str, rows: list[dict[str, Any]], source: str = "csv_import") -> None:
    """Upsert `rows` (each tagged with `source`) into `table`; `workspace` is a workspace dict or its id."""
    with db.connection() as conn:
        upsert_rows(conn, table, _id(workspace), [{"source": source, **r} for r in rows])


def new_workspace(db, label: str) -> dict[str, Any]:
    """A workspace of its own (a random suffix keeps names unique in a module-scoped database)."""
    with db.connection() as conn:
        return create_workspace(conn, f"{label} {os.urandom(3).hex()}")


def new_workspace_id(db, label: str) -> str:
    return str(new_workspace(db, label)["id"])


def rows(db, workspace, sql: str, *args: Any) -> list[dict[str, Any]]:
    """`sql`'s rows, its first parameter being the workspace id."""
    with db.connection() as conn:
        return conn.execute(sql, (_id(workspace), *args)).fetchall()


def _no_sleep(seconds: float) -> None:
    pass


def kill_sync_when(db_url: str, vault, workspace_id, connector: str, blocked: threading.Event,
                   what: str = "the request to die on", *,
                   sleep: Callable[[float], None] | None = _no_sleep) -> None:
    """Run the sync in a forked child (its own pool, the engine a CLI process would run) and SIGKILL it once
    `blocked` is set, i.e. the fake holds the request to die on: every page before it is committed, that one
    never is. The child is always reaped."""
    from core.db.database import Database
    from core.sync.orchestrator import SyncEngine

    pid = os.fork()
    if pid == 0:
        try:
            SyncEngine(Database(db_url), vault, sleep=sleep).run(workspace_id, connector)
        finally:
            os._exit(0)
    try:
        assert blocked.wait(20), f"the child sync never reached {what}"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

"""Helpers tests share (fixtures live in conftest.py): writing rows through the one write path, a fresh
workspace, and reading rows back."""
from __future__ import annotations

import os
from typing import Any

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

"""Connections: one per (workspace, source), holding encrypted credentials, metadata and sync cursors."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.credentials import Vault
from core.errors import NotFound

_COLUMNS = "id, workspace_id, connector_name, status, metadata, sync_cursors, last_sync_at, last_sync_status, last_error, created_at, updated_at"


def save_connection(
    conn: psycopg.Connection,
    vault: Vault,
    workspace_id,
    connector_name: str,
    credentials: dict[str, Any] | None,
    *,
    metadata: dict[str, Any] | None = None,
    status: str = "active",
) -> dict[str, Any]:
    """Create or update the connection; metadata keys are merged into what is stored."""
    return conn.execute(
        f"""INSERT INTO connections (workspace_id, connector_name, status, credentials, metadata)
            VALUES (%(workspace_id)s, %(name)s, %(status)s, %(credentials)s, %(metadata)s)
            ON CONFLICT (workspace_id, connector_name) DO UPDATE SET
                status = EXCLUDED.status,
                credentials = COALESCE(EXCLUDED.credentials, connections.credentials),
                metadata = connections.metadata || EXCLUDED.metadata,
                last_error = NULL,
                updated_at = now()
            RETURNING {_COLUMNS}""",
        {
            "workspace_id": workspace_id,
            "name": connector_name,
            "status": status,
            "credentials": vault.encrypt(credentials) if credentials is not None else None,
            "metadata": Jsonb(metadata or {}),
        },
    ).fetchone()


def get_connection(conn: psycopg.Connection, workspace_id, connector_name: str) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {_COLUMNS}, credentials FROM connections WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
        {"workspace_id": workspace_id, "name": connector_name},
    ).fetchone()
    if row is None:
        raise NotFound(f"{connector_name} is not connected in this workspace (run `pandora connect {connector_name}`)")
    return row


def update_metadata(conn: psycopg.Connection, workspace_id, connector_name: str, patch: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE connections SET metadata = metadata || %(patch)s, updated_at = now()"
        " WHERE workspace_id = %(workspace_id)s AND connector_name = %(name)s",
        {"workspace_id": workspace_id, "name": connector_name, "patch": Jsonb(patch)},
    )


def active_connections(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every active connection of every workspace (the daily scheduler's work list)."""
    return conn.execute(
        "SELECT workspace_id, connector_name FROM connections WHERE status = 'active' ORDER BY workspace_id, connector_name"
    ).fetchall()

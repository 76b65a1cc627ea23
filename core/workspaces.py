"""Workspaces: the tenants. Everything else hangs off a workspace id."""
from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg

from core.errors import InputError, NotFound


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    return slug or "workspace"


def create_workspace(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """Create a workspace (and its empty context layer). Names must be unique, case-insensitively."""
    name = name.strip()
    if not name:
        raise InputError("a workspace needs a name", field="name")
    slug = slugify(name)
    row = conn.execute(
        "INSERT INTO workspaces (name, slug) VALUES (%(name)s, %(slug)s)"
        " ON CONFLICT (slug) DO NOTHING RETURNING id, name, slug, created_at",
        {"name": name, "slug": slug},
    ).fetchone()
    if row is None:
        raise InputError(f"a workspace named {name!r} already exists", field="name")
    conn.execute("INSERT INTO context_layer (workspace_id) VALUES (%(workspace_id)s)", {"workspace_id": row["id"]})
    return row


def ensure_workspace(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """The workspace with this name, created if missing."""
    try:
        return get_workspace(conn, name)
    except NotFound:
        return create_workspace(conn, name)


def get_workspace(conn: psycopg.Connection, ref: str | uuid.UUID) -> dict[str, Any]:
    """Find a workspace by id, slug or name."""
    ref_s = str(ref).strip()
    try:
        ws_id = uuid.UUID(ref_s)
    except ValueError:
        ws_id = None
    row = conn.execute(
        "SELECT id, name, slug, created_at FROM workspaces"
        " WHERE id = %(id)s OR slug = %(slug)s OR lower(name) = lower(%(name)s)"
        " ORDER BY (id = %(id)s) DESC NULLS LAST LIMIT 1",
        {"id": ws_id, "slug": slugify(ref_s), "name": ref_s},
    ).fetchone()
    if row is None:
        raise NotFound(f"no workspace {ref_s!r} (create it with `pandora workspace create NAME`)")
    return row


def list_workspaces(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.execute("SELECT id, name, slug, created_at FROM workspaces ORDER BY created_at").fetchall()

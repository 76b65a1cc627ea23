"""API credentials of a workspace: REST API keys (stored hashed) and the webhook secret (stored encrypted).

An API key is `pk_` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored, with a short
prefix for display; the full key is returned once, by `create_api_key`, and can never be shown again. A key
belongs to one workspace, can be revoked, and remembers when it was last used.

The webhook secret signs inbound and outbound webhooks (HMAC-SHA256), so it has to be readable: it is kept
Fernet-encrypted with the credentials key (`core.credentials.Vault`).

This module must never log or return a stored secret other than to the caller that asked for it, and never
compare secrets with `==` (hash lookups are by equality on the digest, which leaks nothing about the key).
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import psycopg

from core.credentials import Vault
from core.errors import InputError, NotFound

KEY_PREFIX = "pk_"
SHOWN_PREFIX = 11          # "pk_" + 8 characters: enough to tell keys apart, useless to an attacker
LAST_USED_RESOLUTION = "1 minute"  # last_used_at is rewritten at most this often per key (one write per request would be wasteful)
_COLUMNS = "id, workspace_id, prefix, label, created_at, last_used_at, revoked_at"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(conn: psycopg.Connection, workspace_id, label: str = "") -> tuple[dict[str, Any], str]:
    """A new key for the workspace: (its row, the secret key). The secret is not stored and cannot be shown again."""
    label = (label or "").strip()
    if len(label) > 200:
        raise InputError("an API key label is at most 200 characters", field="label")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        f"INSERT INTO api_keys (workspace_id, key_hash, prefix, label)"
        f" VALUES (%(workspace_id)s, %(hash)s, %(prefix)s, %(label)s) RETURNING {_COLUMNS}",
        {"workspace_id": str(workspace_id), "hash": hash_key(key), "prefix": key[:SHOWN_PREFIX], "label": label},
    ).fetchone()
    return row, key


def list_api_keys(conn: psycopg.Connection, workspace_id) -> list[dict[str, Any]]:
    return conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE workspace_id = %(workspace_id)s ORDER BY created_at, id",
        {"workspace_id": str(workspace_id)},
    ).fetchall()


def revoke_api_key(conn: psycopg.Connection, workspace_id, ref: str) -> dict[str, Any]:
    """Revoke a key named by its id or its displayed prefix; revoking twice keeps the first revocation time."""
    ref = (ref or "").strip()
    try:
        key_id = uuid.UUID(ref)
    except ValueError:
        key_id = None
    rows = conn.execute(
        f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
        f" WHERE workspace_id = %(workspace_id)s AND (id = %(id)s OR (%(prefix)s <> '' AND prefix = %(prefix)s))"
        f" RETURNING {_COLUMNS}",
        {"workspace_id": str(workspace_id), "id": key_id, "prefix": ref if key_id is None else ""},
    ).fetchall()
    if not rows:
        raise NotFound(f"no API key {ref!r} in this workspace (see `pandora apikey list`)", field="key")
    if len(rows) > 1:  # two keys sharing a displayed prefix: astronomically unlikely, but never revoke both silently
        raise InputError(f"{ref!r} matches {len(rows)} keys; revoke by id instead", field="key")
    return rows[0]


def authenticate(conn: psycopg.Connection, key: str) -> dict[str, Any] | None:
    """The (id, workspace_id) of an active key, or None for an unknown, malformed or revoked one.
    Records the use (at most once a minute per key)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = conn.execute(
        "SELECT workspace_id, id, revoked_at, (last_used_at IS NULL OR last_used_at < now() - %(res)s::interval) AS stale"
        " FROM api_keys WHERE key_hash = %(hash)s",
        {"hash": hash_key(key), "res": LAST_USED_RESOLUTION},
    ).fetchone()
    if row is None or row["revoked_at"] is not None:
        return None
    if row["stale"]:
        conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": row["workspace_id"], "id": row["id"]},
        )
    return {"workspace_id": row["workspace_id"], "id": row["id"]}


# ---------------------------------------------------------------------------------------------- webhook secret

def webhook_secret(conn: psycopg.Connection, vault: Vault, workspace_id) -> str | None:
    """The workspace's webhook secret, or None when none was created yet."""
    row = conn.execute(
        "SELECT secret FROM webhook_secrets WHERE workspace_id = %(workspace_id)s", {"workspace_id": str(workspace_id)}
    ).fetchone()
    return vault.decrypt(row["secret"]).get("secret") if row else None


def ensure_webhook_secret(conn: psycopg.Connection, vault: Vault, workspace_id, *, rotate: bool = False) -> tuple[str, bool]:
    """(the secret, whether it was created or rotated now). Without `rotate` an existing secret is kept."""
    if not rotate:
        existing = webhook_secret(conn, vault, workspace_id)
        if existing is not None:
            return existing, False
    secret = "whsec_" + secrets.token_urlsafe(32)
    # Without `rotate`, a secret created concurrently wins (DO NOTHING) and is what we hand back.
    action = "DO UPDATE SET secret = EXCLUDED.secret, rotated_at = now()" if rotate else "DO NOTHING"
    written = conn.execute(
        "INSERT INTO webhook_secrets (workspace_id, secret) VALUES (%(workspace_id)s, %(secret)s)"
        f" ON CONFLICT (workspace_id) {action} RETURNING workspace_id",
        {"workspace_id": str(workspace_id), "secret": vault.encrypt({"secret": secret})},
    ).fetchone()
    if written is None:
        return webhook_secret(conn, vault, workspace_id), False
    return secret, True

"""Versioned schema migrations: numbered `.sql` files in `migrations/`, applied in order.

Each file runs in its own transaction under a session advisory lock (two commands starting at once never
apply the same file twice) and is recorded in `schema_migrations` with its checksum. A file that changed
after it was applied is an error, not a silent drift.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

from core.errors import DatabaseError

# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK = 0x70616E646F7261  # "pandora"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(migrations_dir: Path) -> list[Migration]:
    if not migrations_dir.is_dir():
        raise DatabaseError(f"migrations directory {migrations_dir} does not exist (set PANDORA_MIGRATIONS_DIR)")
    found = []
    for path in sorted(migrations_dir.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _NAME.match(path.name)
        if not m:
            raise DatabaseError(f"migration file {path.name} must be named NNNN_snake_case.sql")
        found.append(Migration(m.group(1), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a number in {migrations_dir}")
    return found


_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def applied(conn: psycopg.Connection) -> dict[str, str]:
    """version → checksum of every applied migration ({} on a blank database)."""
    cur = conn.cursor(row_factory=tuple_row)
    if not cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]:
        return {}
    return dict(cur.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration]:
    done = applied(conn)
    for m in migrations:
        if m.version in done and done[m.version] != m.checksum:
            raise DatabaseError(f"migration {m.path.name} was changed after it was applied; add a new migration instead")
    return [m for m in migrations if m.version not in done]


def migrate(conn: psycopg.Connection, migrations_dir: Path) -> list[str]:
    """Apply pending migrations on an autocommit connection; return the file names applied."""
    migrations = discover(migrations_dir)
    if not pending(conn, migrations):
        return []  # the common case: one cheap query, no lock
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(_BOOTSTRAP)
        todo = pending(conn, migrations)  # re-read under the lock
        for m in todo:
            try:
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
            except psycopg.Error as exc:
                raise DatabaseError(f"migration {m.path.name} failed: {str(exc).strip().splitlines()[0]}") from exc
        return [m.path.name for m in todo]
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def migrate_url(url: str, migrations_dir: Path) -> list[str]:
    from core.db.database import check_connect

    with check_connect(url) as conn:
        return migrate(conn, migrations_dir)

"""Connections: resolve the database URL, check it answers, hand out pooled connections.

`open_database(settings)` is the only way code gets a database: it resolves `DATABASE_URL` or starts the
embedded server, creates the `pandora` database on the embedded server, applies pending migrations, and
returns a `Database` holding a psycopg connection pool. An unreachable or misconfigured server becomes one
`DatabaseError` line naming host and port, never the password.
"""
from __future__ import annotations

import threading

from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from core.db import embedded
from core.errors import DatabaseError
from core.settings import Settings

CONNECT_TIMEOUT_S = 10


def describe(url: str) -> str:
    """`host:port/dbname` of a connection URL, safe to print (no user, no password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparseable DATABASE_URL"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or 'postgres'}"


def check_connect(url: str) -> psycopg.Connection:
    """Open one plain connection or raise DatabaseError with a clear, password-free line."""
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.ProgrammingError as exc:  # malformed conninfo
        raise DatabaseError(f"DATABASE_URL is malformed ({type(exc).__name__}); expected postgresql://user:password@host:port/dbname") from None
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {describe(url)}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The useful tail of a libpq error ('Connection refused', 'password authentication failed ...')."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    reason = first.rsplit("failed: ", 1)[-1].strip() or first
    # libpq can echo conninfo fragments; never let a password through.
    return "connection rejected" if "password=" in reason else reason


def ensure_database(server_url: str, dbname: str) -> str:
    """Create `dbname` on the server if missing; return its URL."""
    with check_connect(server_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            try:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created concurrently by another command
    return embedded.with_database(server_url, dbname)


def check_direct(url: str) -> None:
    """Refuse a DATABASE_URL whose host is Neon's connection pooler (`ep-…-pooler.…`). That pooler runs
    PgBouncer in transaction mode: a session advisory lock (one sync per connector, one pipeline run per
    workspace, one migration at a time) stays with whichever server connection took it, so its unlock can reach
    another one and every later run would wait for a lock nobody holds. The same endpoint without `-pooler` is a
    direct connection."""
    try:
        hosts = (conninfo_to_dict(url).get("host") or "").split(",")
    except psycopg.ProgrammingError:
        return  # check_connect names the malformed URL
    for host in hosts:
        first, dot, rest = host.strip().partition(".")
        if first.endswith("-pooler"):
            raise DatabaseError(
                f"DATABASE_URL points at a transaction-mode connection pooler ({host.strip()}): Pandora's locks need a "
                f"direct connection; use the host {first.removesuffix('-pooler')}{dot}{rest}")


def resolve_url(settings: Settings) -> str:
    """The URL Pandora uses: DATABASE_URL, else the embedded server's `pandora` database (started if needed)."""
    if settings.database_url:
        check_direct(settings.database_url)
        return settings.database_url
    return ensure_database(embedded.server_uri(settings.pandora_home), embedded.DEFAULT_DB)


class Database:
    """A connection pool over one database. Use `with db.connection() as conn:` (commits on success)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S},
            open=False,
            name="pandora",
        )
        self._opened = False
        self._opening = threading.Lock()  # Slack listeners and the digest scheduler share one Database

    def _open(self) -> None:
        if self._opened:
            return
        with self._opening:
            if not self._opened:
                check_connect(self.url).close()
                self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
                self._opened = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction: committed on success, rolled back on error."""
        self._open()
        with self._pool.connection() as conn:
            yield conn

    def connect(self, **kwargs) -> psycopg.Connection:
        """A dedicated connection outside the pool (long-held advisory locks, background threads)."""
        try:
            return psycopg.connect(self.url, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)
        except psycopg.OperationalError:
            check_connect(self.url)  # raises the clear DatabaseError
            raise

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Resolve, reach, migrate and pool the database that `settings` point at."""
    from core.db.migrate import migrate_url

    url = resolve_url(settings)
    if migrate:
        migrate_url(url, settings.migrations_dir)
    return Database(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)

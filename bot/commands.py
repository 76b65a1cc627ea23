"""Handlers behind `pandora` subcommands. Each returns (json-able data, text for people)."""
from __future__ import annotations

import argparse
from typing import Any

from core.db import embedded
from core.db.database import Database, describe, open_database, resolve_url
from core.db.migrate import migrate_url
from core.settings import Settings
from core.workspaces import create_workspace, get_workspace, list_workspaces


def _db(settings: Settings) -> Database:
    return open_database(settings)


def db_url(args, settings):
    url = resolve_url(settings)
    return {"url": url}, url


def db_migrate(args, settings):
    url = resolve_url(settings)
    applied = migrate_url(url, settings.migrations_dir)
    text = f"applied {len(applied)} migration(s) to {describe(url)}" + "".join(f"\n  {a}" for a in applied)
    return {"applied": applied, "database": describe(url)}, text


def db_stop(args, settings):
    if not settings.embedded:
        return {"stopped": False, "reason": "DATABASE_URL is set"}, "DATABASE_URL is set: nothing embedded to stop"
    stopped = embedded.stop(settings.pandora_home)
    return {"stopped": stopped}, "stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running"


def workspace_create(args, settings):
    with _db(settings) as db, db.connection() as conn:
        ws = create_workspace(conn, args.name)
    return ws, f"created workspace {ws['name']} ({ws['id']})"


def workspace_list(args, settings):
    with _db(settings) as db, db.connection() as conn:
        rows = list_workspaces(conn)
    return {"workspaces": rows}, "\n".join(f"{r['id']}  {r['name']}" for r in rows) or "no workspaces yet"


def resolve_workspace(conn, ref: str) -> dict[str, Any]:
    return get_workspace(conn, ref)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def add(name: str, handler, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, parents=[common])
        p.set_defaults(handler=handler)
        return p

    db = sub.add_parser("db", help="the database", parents=[common]).add_subparsers(dest="db_command", metavar="ACTION")
    add("url", db_url, "print the database URI", db)
    add("migrate", db_migrate, "apply pending migrations", db)
    add("stop", db_stop, "stop the embedded PostgreSQL", db)

    ws = sub.add_parser("workspace", help="workspaces", parents=[common]).add_subparsers(dest="ws_command", metavar="ACTION")
    add("create", workspace_create, "create a workspace", ws).add_argument("name")
    add("list", workspace_list, "list workspaces", ws)

    from bot import commands_api, commands_data, commands_import, commands_say, commands_serve, commands_settings, commands_skills, demo

    demo.register(add)
    commands_data.register(add)
    commands_import.register(add)
    commands_settings.register(add)
    commands_skills.register(add)
    commands_api.register(add)
    commands_say.register(add)
    commands_serve.register(add)

    from bot import commands_transcript

    commands_transcript.register(add)

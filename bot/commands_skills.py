"""Handlers for `pandora run SKILL` and `pandora skills list`."""
from __future__ import annotations

from bot.render.text import render_text
from core.db.database import open_database
from core.errors import InputError
from core.workspaces import get_workspace
from skills import registry
from skills.runtime import run_skill


def run_cmd(args, settings):
    params = {}
    for pair in args.param or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--param expects NAME=VALUE, got {pair!r}", field="param")
        params[key.strip()] = value
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        result = run_skill(db, settings, ws["id"], args.skill, params, trigger="cli")
    return result.to_dict(), render_text(result)


def list_cmd(args, settings):
    skills = [{"name": s.name, "aliases": list(s.aliases), "description": s.description,
               "params": [{"name": p.name, "type": p.kind.__name__, "default": p.default, "help": p.help} for p in s.params],
               "schedule": s.schedule, "compute_only": s.compute_only} for s in registry.all_skills()]
    text = "\n".join(f"{s['name']:<24} {('(' + ', '.join(s['aliases']) + ')') if s['aliases'] else '':<14} {s['description']}"
                     for s in skills)
    return {"skills": skills}, text


def register(add) -> None:
    p = add("run", run_cmd, "run a skill (forecast, pipeline, hygiene, risk, quality, scorecard, icp, …)")
    p.add_argument("skill")
    p.add_argument("--workspace", required=True)
    p.add_argument("--param", action="append", metavar="NAME=VALUE")
    skills = add("skills", list_cmd, "list the skills")
    skills.add_argument("action", nargs="?", choices=["list"], default="list")

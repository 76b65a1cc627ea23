"""Handlers for `pandora import`, `pandora stages` and `pandora relink`."""
from __future__ import annotations

from typing import Any

from connectors.file_import import batch as batches
from connectors.file_import.mapping import parse_overrides
from core.db.database import open_database
from core.errors import InputError
from core.pipeline import run_post_sync
from core.settings import Settings
from core.stages import STAGES
from core.workspaces import get_workspace

ACTIONS = ("apply", "rollback", "list")


def _batch_text(b: dict[str, Any], workspace: str) -> str:
    lines = [f"{b['filename']}: {b['entity']}, {b['rows']} rows - batch {b['batch_id']} {b['status']}"]
    if b["status"] == "pending":
        lines += [f"  {h!r:<32} -> {f or '(custom field)'}" for h, f in (b.get("mapping") or {}).items()]
        lines.append(f"  apply with: pandora import apply {b['batch_id']} --workspace {workspace!r}")
    else:
        lines.append(f"  {b['inserted']} inserted, {b['updated']} updated, {b['skipped']} skipped")
    lines += [f"  warning: {w}" for w in b["warnings"]]
    lines += [f"  error: {e['message']}" for e in b["errors"][:10]]
    if len(b["errors"]) > 10:
        lines.append(f"  … {len(b['errors']) - 10} more errors (see --json)")
    return "\n".join(lines)


def import_cmd(args, settings: Settings):
    target, rest = args.target, args.batch
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        wid = str(ws["id"])
        if target == "list":
            rows = batches.list_batches(db, wid)
            text = "\n".join(f"{r['batch_id']}  {r['status']:<11} {r['entity'] or '?':<10} {r['rows']:>7} rows  {r['filename']}"
                             for r in rows) or "no imports yet"
            return {"batches": rows}, text
        if target in ("apply", "rollback"):
            if not rest:
                raise InputError(f"pandora import {target} needs a batch id", field="batch")
            if target == "apply":
                result = batches.apply(db, settings, wid, rest)
            else:
                result = batches.rollback(db, wid, rest, force=args.force)
            return result, _batch_text(result, args.workspace)
        if rest:
            raise InputError(f"unexpected argument {rest!r} after the file name", field="batch")
        overrides = parse_overrides(args.map) if args.map else None
        result = batches.preview(db, settings, wid, target, entity=args.entity, sheet=args.sheet, overrides=overrides)
        if args.yes:
            result = batches.apply(db, settings, wid, result["batch_id"])
        return result, _batch_text(result, args.workspace)


def stages_cmd(args, settings: Settings):
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        if args.action == "set":
            if not args.raw or not args.stage:
                raise InputError("usage: pandora stages set RAW_STAGE STAGE --workspace W [--source S]", field="stage")
            if args.stage not in STAGES:
                raise InputError(f"{args.stage!r} is not a stage; use one of {', '.join(STAGES)}", field="stage")
            conn.execute(
                "INSERT INTO stage_mappings (workspace_id, source, raw_stage, stage_normalized, origin)"
                " VALUES (%(workspace_id)s, %(source)s, %(raw)s, %(stage)s, 'user')"
                " ON CONFLICT (workspace_id, source, raw_stage) DO UPDATE SET stage_normalized = EXCLUDED.stage_normalized,"
                " origin = 'user', confidence = NULL, updated_at = now()",
                {"workspace_id": ws["id"], "source": args.source, "raw": args.raw, "stage": args.stage},
            )
        rows = conn.execute(
            "SELECT source, raw_stage, stage_normalized, origin, confidence FROM stage_mappings"
            " WHERE workspace_id = %(workspace_id)s ORDER BY source, raw_stage", {"workspace_id": ws["id"]},
        ).fetchall()
    if args.action == "set":
        # Re-normalise rows already stored (the pipeline's stage step reads the mapping).
        with open_database(settings) as db:
            run_post_sync(db, ws["id"])
    text = "\n".join(f"{r['source']:<12} {r['raw_stage']!r:<32} -> {r['stage_normalized']:<14} ({r['origin']})"
                     for r in rows) or "no stage mappings yet (imports add them as they meet new stages)"
    return {"stage_mappings": rows}, text


def relink_cmd(args, settings: Settings):
    with open_database(settings) as db:
        with db.connection() as conn:
            ws = get_workspace(conn, args.workspace)
        steps = run_post_sync(db, ws["id"])
    return {"workspace_id": ws["id"], "steps": steps}, steps_text(steps)


def steps_text(steps: list[dict[str, Any]]) -> str:
    """One line per pipeline step: its name, how long it took and what it changed, as counts per kind of change
    ("conversations.email_match 1,204; conversations.crm_native 310"), or "no changes"."""
    width = max((len(s["name"]) for s in steps), default=0)
    return "\n".join(
        f"{s['name']:<{width}}  {s['ms']:>9,.1f} ms  "
        + ("; ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in s["changed"].items())
           or "no changes")
        for s in steps)


def register(add) -> None:
    p = add("import", import_cmd, "preview/apply a CSV or Excel export; apply|rollback|list batches")
    p.add_argument("target", metavar="FILE|apply|rollback|list")
    p.add_argument("batch", nargs="?", metavar="BATCH", help="batch id for apply / rollback")
    p.add_argument("--workspace", required=True)
    p.add_argument("--entity", choices=["deals", "contacts", "accounts", "leads", "activities"])
    p.add_argument("--sheet", help="the Excel sheet to read (default: the one that holds data)")
    p.add_argument("--map", action="append", metavar='"Header=field"', help="override the column mapping")
    p.add_argument("--yes", action="store_true", help="apply right away instead of previewing")
    p.add_argument("--force", action="store_true", help="roll back even if rows changed since")

    p = add("stages", stages_cmd, "list or set how raw stages map to normalized stages")
    p.add_argument("action", choices=["list", "set"])
    p.add_argument("raw", nargs="?", help="the raw stage as the source writes it")
    p.add_argument("stage", nargs="?", help=f"one of {', '.join(STAGES)}")
    p.add_argument("--workspace", required=True)
    p.add_argument("--source", default="csv_import")

    p = add("relink", relink_cmd, "run the post-sync pipeline (links, stages) over a workspace now")
    p.add_argument("--workspace", required=True)

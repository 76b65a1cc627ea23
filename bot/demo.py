"""`pandora demo`: create (or refresh) the "Demo Co" workspace from the seeded generator and report what is in it.

Re-running with the same seed, scale and day writes nothing new (every row comes back unchanged), so the
command is safe to run before every demo. Another seed, scale or day is another dataset under the same source
ids (conv-00550 may be another account's call by then): its rows replace the demo's (`clear_dataset`) instead of
being upserted over them, which would keep the old CRM links (links are sticky) and the rows the new dataset
lacks. The workspace (its id, context, Slack install) stays; what it was built with is kept in its settings.
The report's numbers are read back from the database.
"""
from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from bot.render.text import render_text
from core.context import update_section
from core.errors import NotFound
from core.db.database import open_database
from core.settings import Settings
from core.synthetic import COMPANY_DOMAIN, COMPANY_NAME, ENTITY_ORDER, generate, write_dataset
from core.synthetic.writer import clear_dataset
from core.synthetic.summary import summarize
from core.workspaces import ensure_workspace
from skills import registry
from skills.runtime import run_skill

DEMO_SKILLS = ("forecast-rollup", "pipeline-hygiene", "data-quality-audit")
DEFAULT_SEED = 7
DEFAULT_SCALE = 1
DEMO_BUSINESS_MODEL = {"company_name": COMPANY_NAME, "gtm_motion": "sales-led, mid-market",
                       "sales_cycle_days": 75, "acv_range": {"avg": 45000}, "pricing_model": "annual subscription"}


def demo(args, settings: Settings) -> tuple[dict[str, Any], str]:
    seed = _arg(args, "seed", DEFAULT_SEED)
    scale = _arg(args, "scale", DEFAULT_SCALE)
    today = getattr(args, "today", None)
    started = time.perf_counter()
    dataset = generate(seed=seed, scale=scale, today=today)
    with open_database(settings) as db:
        built = {"seed": seed, "scale": scale, "today": dataset.today.isoformat()}
        with db.connection() as conn:
            ws = ensure_workspace(conn, COMPANY_NAME)
            # The business context the pipeline and skills read (internal domains, cycle, deal size).
            update_section(conn, ws["id"], "business_model", DEMO_BUSINESS_MODEL)
            update_section(conn, ws["id"], "definitions", {"internal_domains": [COMPANY_DOMAIN]})
            before = conn.execute("SELECT settings -> 'demo' AS built FROM workspaces WHERE id = %s",
                                  (ws["id"],)).fetchone()["built"]
        rebuilt = None  # what the replaced demo was built with ({}: not recorded, a workspace older than the record)
        if before != built and clear_dataset(db, ws["id"]):
            rebuilt = before or {}
        written = write_dataset(db, ws["id"], dataset)  # also runs the post-sync pipeline
        with db.connection() as conn:
            conn.execute("UPDATE workspaces SET settings = jsonb_set(settings, '{demo}', %s) WHERE id = %s",
                         (Jsonb(built), ws["id"]))
            summary = summarize(conn, ws["id"], dataset.today)
        reports = [run_skill(db, settings, ws["id"], name, today=dataset.today, trigger="demo")
                   for name in DEMO_SKILLS if _installed(name)]
    totals = summary.pop("totals")
    data = {
        "workspace": {"id": ws["id"], "name": ws["name"]},
        "seed": seed, "scale": scale, "today": dataset.today, "rebuilt_from": rebuilt,
        "counts": {t: {"total": totals[t], **written[t]} for t in ENTITY_ORDER},
        **summary,
        "reports": {r.skill: r.to_dict() for r in reports},
        "seconds": round(time.perf_counter() - started, 2),
    }
    return data, render(data) + "".join("\n\n" + render_text(r) for r in reports)


def _installed(name: str) -> bool:
    try:
        registry.get(name)
        return True
    except NotFound:
        return False


def render(data: dict[str, Any]) -> str:
    ws, q = data["workspace"], data["quarter"]
    lines = [f"{ws['name']} workspace {ws['id']}  (seed {data['seed']}, scale {data['scale']}, "
             f"as of {data['today']}, {data['seconds']} s)"]
    was = data["rebuilt_from"]
    if was is not None:
        lines.append(f"  rebuilt: it held the demo of seed {was.get('seed')}, scale {was.get('scale')} as of {was.get('today')}"
                     if was else "  rebuilt: it held a demo of unrecorded seed, scale and day")
    for table, c in data["counts"].items():
        lines.append(f"  {table:<19}{c['total']:>7,}   +{c['inserted']:,} new  {c['updated']:,} updated  "
                     f"{c['unchanged']:,} unchanged")
    pipe, won = data["open_pipeline"], data["closed_won_this_quarter"]
    lines.append(f"{'Open pipeline':<21}{_money(pipe['amount']):>12}  {pipe['count']:,} deals")
    lines.append(f"{'Won ' + q['name']:<21}{_money(won['amount']):>12}  {won['count']:,} deals")
    lines.append("Deals by stage       " + " · ".join(f"{s['stage']} {s['count']}" for s in data["deals_by_stage"]))
    if data["team_quota"] is not None:
        lines.append(f"{'Quota ' + q['name']:<21}{_money(data['team_quota']):>12}  team")
        for rep in data["reps"]:
            pct = f"{rep['attainment']:.0%}" if rep["attainment"] is not None else "—"
            lines.append(f"  {rep['name']:<19}{_money(rep['quota']):>12}  won {_money(rep['won'])} ({pct})")
    refs = data["references"]
    lines.append(f"{'References resolved':<21}{refs['resolved']:>12,}  of {refs['total']:,}")
    return "\n".join(lines)


def register(add) -> None:
    p = add("demo", demo, "create or refresh the Demo Co sample workspace")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--scale", type=int, default=DEFAULT_SCALE,
                   help="size multiplier: 1 is ~400 deals, 10 is ~4,000 (default 1)")
    p.add_argument("--today", type=date.fromisoformat, default=None,
                   help="pretend today is YYYY-MM-DD (reproducible demos; default: today)")


def _arg(args, name: str, default: int) -> int:
    value = getattr(args, name, None)
    return default if value is None else value


def _money(value: Decimal | int | float | None) -> str:
    return "—" if value is None else f"${value:,.0f}"

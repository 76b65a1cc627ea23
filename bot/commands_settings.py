"""Handlers for `pandora quota set|list` and `pandora context show|set`."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation

from core.context import SECTIONS, get_context, lookup, update_section
from core.db.database import open_database
from core.errors import InputError
from core.quotas import check_quota_config, fiscal_quarter, list_quotas, set_rep_quota, upsert_quota_period
from core.workspaces import get_workspace


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        raise InputError(f"{what}: {text!r} is not an amount", field=what) from None
    if value < 0:
        raise InputError(f"{what}: an amount cannot be negative", field=what)
    return value


def _rep(spec: str) -> tuple[str, Decimal, str | None]:
    """'Dana Reyes=150000' or 'Dana Reyes=150000:dana@acme.io'."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip():
        raise InputError(f"--rep expects \"Name=amount[:email]\", got {spec!r}", field="rep")
    amount, _, email = rest.partition(":")
    return name.strip(), _amount(amount, f"--rep {name.strip()}"), email.strip() or None


def quota_cmd(args, settings):
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        if args.action == "set":
            ctx = get_context(conn, ws["id"])
            fy = int(lookup(ctx, "business_model.fiscal_year_start_month", 1))
            day = date.fromisoformat(args.start) if args.start else date.today()
            period = fiscal_quarter(day, fy)
            start, end = period.start_date, period.end_date
            if args.end:
                end = date.fromisoformat(args.end)
            if end < start:
                raise InputError("--end is before the period's start", field="end")
            if args.team is None and not args.rep:
                raise InputError("pandora quota set needs --team AMOUNT and/or --rep \"Name=amount\"", field="team")
            period_id = upsert_quota_period(conn, ws["id"], args.name or period.name, args.type, start, end,
                                            _amount(args.team, "--team") if args.team is not None else None)
            for spec in args.rep or []:
                name, amount, email = _rep(spec)
                set_rep_quota(conn, ws["id"], period_id, name, email, amount)
        periods = list_quotas(conn, ws["id"])
        active = check_quota_config(conn, ws["id"])
    lines = [f"{p['name']}  {p['start_date']} .. {p['end_date']}  team {p['team_quota'] or '-'}"
             + "".join(f"\n  {r['rep_name']:<24} {r['quota_amount']}" for r in p["reps"]) for p in periods]
    lines.append(f"active: {active.source}" + (f" ({active.period.name})" if active.period else "")
                 + (f" - {active.hint}" if active.hint else ""))
    return {"periods": periods, "active": active.to_dict()}, "\n".join(lines)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def context_cmd(args, settings):
    with open_database(settings) as db, db.connection() as conn:
        ws = get_workspace(conn, args.workspace)
        if args.action == "set":
            if args.section not in SECTIONS:
                raise InputError(f"pandora context set SECTION KEY=VALUE …: SECTION is one of {', '.join(SECTIONS)}", field="section")
            patch: dict = {}
            for pair in args.pairs:
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise InputError(f"expected KEY=VALUE (e.g. sales_cycle_days=60), got {pair!r}", field="pair")
                node = patch
                *parents, leaf = key.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = _value(value)
            update_section(conn, ws["id"], args.section, patch)
        ctx = get_context(conn, ws["id"])
    shown = {args.section: ctx[args.section]} if args.section in SECTIONS else ctx
    return shown, json.dumps(shown, indent=2, default=str)


def register(add) -> None:
    p = add("quota", quota_cmd, "set or list quota periods and per-rep quotas")
    p.add_argument("action", choices=["set", "list"])
    p.add_argument("--workspace", required=True)
    p.add_argument("--team", help="the team's quota for the period")
    p.add_argument("--rep", action="append", metavar='"Name=amount[:email]"', help="one rep's quota (repeatable)")
    p.add_argument("--start", help="a day in the period (default today): the fiscal quarter containing it")
    p.add_argument("--end", help="override the period's last day (YYYY-MM-DD)")
    p.add_argument("--type", default="quarter", choices=["month", "quarter", "year"])
    p.add_argument("--name", help="period name (default e.g. FY2026 Q4)")

    p = add("context", context_cmd, "show or set the business context (5 sections)")
    p.add_argument("action", choices=["show", "set"])
    p.add_argument("section", nargs="?", help=", ".join(SECTIONS))
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="values are JSON when they parse (60, [\"a.io\"])")
    p.add_argument("--workspace", required=True)

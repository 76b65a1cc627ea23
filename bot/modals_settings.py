"""The context layer editor and the quota editor modals.

Context: one multiline input per section of `core.context` (JSON, or one `key: value` per line with dotted
keys for nesting), prefilled with the section as skills read it (stored values over the defaults). What the
user submits becomes the section: a key deleted from the box goes back to its default. Every section is
validated by `core.context.update_section` inside a savepoint; if any section is wrong nothing is saved and
each wrong section shows its own error naming the field.

Quota: a fiscal quarter (the current one by default), the team amount and per-rep amounts ("Name, email,
amount" per line, amounts written the way people write them: 150000, $150k, 1.2M). The rep list is the whole
list: a rep left out loses the period's quota. The prefilled values are the current quarter's; picking
another quarter saves into that quarter. Neither modal ever writes outside the workspace it is given.
"""
from __future__ import annotations

import calendar
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.modals_base import (ModalOutcome, error_text, metadata, modal, option, select_input, selected, text_input,
                             text_value)
from bot.render.blocks import context, section
from connectors.file_import.values import parse_amount
from core.context import SECTIONS, get_context, lookup, update_section
from core.errors import InputError
from core.quotas import (Period, fiscal_quarter, list_quotas, previous_quarter, set_rep_quota,
                         upsert_quota_period)

CONTEXT_CALLBACK = "context_submit"
QUOTA_CALLBACK = "quota_submit"
SECTION_LABELS = {"business_model": "Business model", "team_structure": "Team structure",
                  "goals_and_targets": "Goals and targets", "definitions": "Definitions",
                  "operational_maturity": "Operational maturity"}


def _block(section_name: str) -> str:
    return f"ctx_{section_name}"


def _show(values: dict[str, Any]) -> str:
    text = json.dumps(values, indent=2, default=str)
    return text if len(text) <= 3000 else json.dumps(values, separators=(",", ":"), default=str)


def context_view(db, workspace_id) -> dict[str, Any]:
    with db.connection() as conn:
        ctx = get_context(conn, workspace_id)
    blocks = [section("Business context that every analysis reads. Edit a section as JSON or one `key: value` "
                      "per line (`thresholds.stale_deal_days: 21`). Delete a key to go back to its default.")]
    blocks += [text_input(_block(s), SECTION_LABELS[s], initial=_show(ctx[s]), multiline=True, optional=True)
               for s in SECTIONS]
    return modal(CONTEXT_CALLBACK, "Business context", blocks, metadata={})


def _scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_section(name: str, text: str) -> dict[str, Any]:
    """A section as typed: a JSON object, or `key: value` lines (values are JSON when they parse)."""
    if not text.strip():
        return {}
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: line {exc.lineno}, column {exc.colno}: {exc.msg} (not valid JSON)",
                             field=name) from None
        if not isinstance(value, dict):
            raise InputError(f"{name} must be a JSON object like {{\"key\": value}}", field=name)
        return value
    result: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, raw = line.partition(":")
        if not sep or not key.strip():
            raise InputError(f"{name}: line {number}: expected `key: value`, got {line.strip()!r}", field=name)
        node = result
        *parents, leaf = [part.strip() for part in key.strip().split(".")]
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"{name}: line {number}: {key.strip()} conflicts with an earlier line", field=name)
        node[leaf] = _scalar(raw.strip()) if raw.strip() else None
    return result


def _patch(desired: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The patch that turns `current` into `desired`: keys missing from desired become None (= default)."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            patch[key] = _patch(value, current[key])
        else:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch


def submit_context(db, settings, workspace_id, view: dict[str, Any]) -> ModalOutcome:
    errors: dict[str, str] = {}
    parsed: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        try:
            parsed[name] = parse_section(name, text_value(view, _block(name)))
        except InputError as exc:
            errors[_block(name)] = error_text(exc.message)
    changed: list[str] = []
    with db.connection() as conn:
        current = get_context(conn, workspace_id)  # also opens the transaction the savepoints nest in
        for name in SECTIONS:  # validate what parsed too, so every wrong section is named at once
            if name not in parsed or parsed[name] == current[name]:
                continue
            try:
                with conn.transaction():
                    update_section(conn, workspace_id, name, _patch(parsed[name], current[name]))
                changed.append(name)
            except InputError as exc:
                errors[_block(name)] = error_text(exc.message)
        if errors:
            conn.rollback()  # one wrong section saves nothing: the user fixes it and submits the whole form
            return ModalOutcome(errors=errors)
    if not changed:
        return ModalOutcome(message="Business context unchanged.")
    return ModalOutcome(message="Saved business context: " + ", ".join(SECTION_LABELS[n] for n in changed) + ".",
                        data={"changed": changed})


# --- quota ------------------------------------------------------------------------------------------------------

def _fy_start(conn, workspace_id) -> int:
    return int(lookup(get_context(conn, workspace_id), "business_model.fiscal_year_start_month", 1) or 1)


def _periods(today: date, fy_start: int) -> list[Period]:
    current = fiscal_quarter(today, fy_start)
    following = fiscal_quarter(current.end_date + timedelta(days=1), fy_start)
    return [previous_quarter(today, fy_start), current, following]


def _amount_text(value: Any) -> str:
    if value is None:
        return ""
    return format(Decimal(value).normalize(), "f")


def quota_view(db, workspace_id, *, today: date | None = None) -> dict[str, Any]:
    today = today or date.today()
    with db.connection() as conn:
        fy_start = _fy_start(conn, workspace_id)
        stored = list_quotas(conn, workspace_id)
    periods = _periods(today, fy_start)
    current = periods[1]
    existing = next((p for p in stored if p["period_type"] == "quarter" and p["start_date"] == current.start_date), None)
    reps = "\n".join(", ".join(v for v in (r["rep_name"], r["rep_email"], _amount_text(r["quota_amount"])) if v)
                     for r in (existing or {}).get("reps", []))
    options = [option(f"{p.name} ({p.start_date:%b %-d} – {p.end_date:%b %-d, %Y})", p.start_date.isoformat())
               for p in periods]
    blocks = [
        select_input("quota_period", "Period", options, initial=current.start_date.isoformat()),
        text_input("quota_team", "Team quota", initial=_amount_text((existing or {}).get("team_quota")),
                   optional=True, placeholder="e.g. 1200000 or $1.2M"),
        text_input("quota_reps", "Rep quotas", initial=reps, multiline=True, optional=True,
                   placeholder="Dana Reyes, dana@acme.io, 150000",
                   hint="One rep per line: Name, email (optional), amount. A rep left out has no quota for the "
                        "period."),
        context(f"The fiscal year starts in {calendar.month_name[fy_start]} (business context). "
                f"The values shown are {current.name}'s."),
    ]
    return modal(QUOTA_CALLBACK, "Quotas", blocks, metadata={"fy_start": fy_start})


def _parse_amount(text: str, what: str) -> Decimal:
    try:
        amount, _ = parse_amount(text)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not an amount (e.g. 150000, $150k or 1.2M)", field=what) from None
    if amount is None:
        raise InputError(f"{what}: the amount is missing", field=what)
    if amount < 0:
        raise InputError(f"{what}: a quota cannot be negative", field=what)
    return amount


_REP_LINE = re.compile(r"^(?P<name>[^,;\t=]+?)\s*[,;\t=]\s*(?:(?P<email>[^,;\t\s]+@[^,;\t\s]+)\s*[,;\t]\s*)?"
                       r"(?P<amount>.+)$")


def parse_reps(text: str) -> list[tuple[str, str | None, Decimal]]:
    reps: list[tuple[str, str | None, Decimal]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _REP_LINE.match(line.strip())
        if not match:
            raise InputError(f"line {number}: expected `Name, email, amount`, got {line.strip()!r}", field="reps")
        name = match["name"].strip()
        if name.casefold() in seen:
            raise InputError(f"line {number}: {name} is listed twice", field="reps")
        seen.add(name.casefold())
        reps.append((name, match["email"], _parse_amount(match["amount"].strip(), f"line {number} ({name})")))
    return reps


def submit_quota(db, settings, workspace_id, view: dict[str, Any]) -> ModalOutcome:
    fy_start = int(metadata(view).get("fy_start") or 1)
    errors: dict[str, str] = {}
    chosen = selected(view, "quota_period")
    try:
        day = date.fromisoformat(chosen[0]) if chosen else date.today()
    except ValueError:
        day = date.today()
    period = fiscal_quarter(day, fy_start)
    team = None
    team_text = text_value(view, "quota_team")
    try:
        team = _parse_amount(team_text, "Team quota") if team_text else None
    except InputError as exc:
        errors["quota_team"] = error_text(exc.message)
    try:
        reps = parse_reps(text_value(view, "quota_reps"))
    except InputError as exc:
        errors["quota_reps"] = error_text(exc.message)
        reps = []
    if not errors and team is None and not reps:
        errors["quota_team"] = "Enter a team quota, or at least one rep quota below."
    if errors:
        return ModalOutcome(errors=errors)
    with db.connection() as conn:
        period_id = upsert_quota_period(conn, workspace_id, period.name, period.period_type, period.start_date,
                                        period.end_date, team)
        for name, email, amount in reps:
            set_rep_quota(conn, workspace_id, period_id, name, email, amount)
        conn.execute("DELETE FROM rep_quotas WHERE workspace_id = %(workspace_id)s AND period_id = %(period_id)s"
                     " AND NOT (rep_name = ANY(%(names)s))",
                     {"workspace_id": str(workspace_id), "period_id": period_id, "names": [r[0] for r in reps]})
    shown = f"team {team:,.0f}" if team is not None else "no team number"
    return ModalOutcome(message=f"Saved {period.name} quotas: {shown}, {len(reps)} rep quota{'s' if len(reps) != 1 else ''}.",
                        data={"period": period.name, "team_quota": team, "reps": len(reps)})

"""The context layer: one row per workspace, five JSONB sections of business context.

Skills pass the relevant parts to their prompts; post-sync steps read their thresholds from it. Reading always
returns every section merged over `DEFAULTS`, so callers never test for missing keys. Writing merges a patch
into one section (validated: known section, JSON object).
"""
from __future__ import annotations

import copy
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from core.errors import InputError

SECTIONS = ("business_model", "team_structure", "goals_and_targets", "definitions", "operational_maturity")

DEFAULTS: dict[str, dict[str, Any]] = {
    "business_model": {
        "company_name": None,
        "gtm_motion": None,
        "sales_cycle_days": 90,          # the workspace norm a deal's cycle is compared with
        "acv_range": {"avg": 50000},     # average deal size for velocity and "large deal" rules
        "fiscal_year_start_month": 1,
    },
    "team_structure": {},
    "goals_and_targets": {
        "revenue_target": None,
        "pipeline_coverage_target": 3.0,
        "thresholds": {
            "stale_deal_days": 14,       # no activity for this long = stale
            "critical_stale_days": 30,
            "min_contacts_per_deal": 2,  # fewer engaged contacts = single-threaded
            "cwd_lookback_days": 90,     # conversations-without-deals window
            "transcript_max_age_days": 7,  # a cached call transcript older than this is fetched again
        },
    },
    "definitions": {
        "internal_domains": [],          # empty = inferred from the user directory and organizers
        "activity_weights": {"meeting": 10, "call": 5, "email": 2, "note": 1, "task": 1},
        "qualification_framework": "MEDDIC",
        "excluded_owners": [],
    },
    "operational_maturity": {},
}


def _merge(base: dict[str, Any], over: dict[str, Any], *, drop_none: bool = False) -> dict[str, Any]:
    """Deep merge. A None in `over` keeps the base value, or with `drop_none` removes the key (a patch's way
    of saying "back to the default")."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if value is None:
            if drop_none:
                out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, drop_none=drop_none)
        else:
            out[key] = copy.deepcopy(value)
    return out


def get_context(conn: psycopg.Connection, workspace_id) -> dict[str, dict[str, Any]]:
    """All five sections, stored values merged over the defaults."""
    row = conn.execute(
        "SELECT business_model, team_structure, goals_and_targets, definitions, operational_maturity"
        " FROM context_layer WHERE workspace_id = %(workspace_id)s",
        {"workspace_id": workspace_id},
    ).fetchone() or {}
    return {s: _merge(DEFAULTS[s], row.get(s) or {}) for s in SECTIONS}


def _number(path: str, value: Any, *, low: float = 0, high: float | None = None, integer: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high) and (not integer or float(value).is_integer())
    if not ok:
        kind = "a whole number" if integer else "a number"
        bound = f" between {low} and {high}" if high is not None else f" of at least {low}"
        raise InputError(f"context {path} must be {kind}{bound}, got {value!r}", field=path)


def _domains(path: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(d, str) and "." in d and "@" not in d and " " not in d.strip()
                                              for d in value):
        raise InputError(f"context {path} must be a list of domains like [\"acme.io\"], got {value!r}", field=path)


# What a stored value must look like, by dotted path (None values always pass: they mean "not set").
VALIDATORS = {
    "business_model.sales_cycle_days": lambda p, v: _number(p, v, low=1, integer=True),
    "business_model.fiscal_year_start_month": lambda p, v: _number(p, v, low=1, high=12, integer=True),
    "business_model.acv_range.avg": lambda p, v: _number(p, v, low=1),
    "goals_and_targets.revenue_target": _number,
    "goals_and_targets.quarterly_quota": _number,
    "goals_and_targets.pipeline_coverage_target": lambda p, v: _number(p, v, low=0.1),
    "goals_and_targets.quotas.team": _number,
    "goals_and_targets.thresholds.stale_deal_days": lambda p, v: _number(p, v, low=1, integer=True),
    "goals_and_targets.thresholds.critical_stale_days": lambda p, v: _number(p, v, low=1, integer=True),
    "goals_and_targets.thresholds.min_contacts_per_deal": lambda p, v: _number(p, v, low=1, integer=True),
    "goals_and_targets.thresholds.cwd_lookback_days": lambda p, v: _number(p, v, low=1, integer=True),
    "goals_and_targets.thresholds.transcript_max_age_days": lambda p, v: _number(p, v, low=0),
    "definitions.internal_domains": _domains,
}


def validate(section: str, values: dict[str, Any]) -> None:
    for path, check in VALIDATORS.items():
        head, _, rest = path.partition(".")
        if head != section:
            continue
        value = lookup({section: values}, path)
        if value is not None:
            check(path, value)
    weights = values.get("activity_weights") if section == "definitions" else None
    if weights is not None:
        if not isinstance(weights, dict):
            raise InputError("context definitions.activity_weights must map activity types to numbers", field="activity_weights")
        for key, weight in weights.items():
            _number(f"definitions.activity_weights.{key}", weight)


def update_section(conn: psycopg.Connection, workspace_id, section: str, patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `patch` into one section, validate the result and store it; returns the section as read
    (over the defaults). A key set to null removes the override (the default applies again)."""
    if section not in SECTIONS:
        raise InputError(f"unknown context section {section!r}; use one of {', '.join(SECTIONS)}", field="section")
    if not isinstance(patch, dict):
        raise InputError(f"context section {section} takes a JSON object", field=section)
    if section == "definitions" and isinstance(patch.get("internal_domains"), list):
        patch = {**patch, "internal_domains": [str(d).strip().lower() for d in patch["internal_domains"]]}
    row = conn.execute(
        sql.SQL("SELECT {col} AS v FROM context_layer WHERE workspace_id = %(workspace_id)s FOR UPDATE").format(
            col=sql.Identifier(section)), {"workspace_id": workspace_id}).fetchone()
    stored = _merge(row["v"] if row else {}, patch, drop_none=True)  # siblings the patch omits survive
    validate(section, _merge(DEFAULTS[section], stored))
    conn.execute(
        sql.SQL(
            "INSERT INTO context_layer (workspace_id, {col}) VALUES (%(workspace_id)s, %(value)s)"
            " ON CONFLICT (workspace_id) DO UPDATE SET {col} = EXCLUDED.{col},"
            " version = context_layer.version + 1, updated_at = now()"
        ).format(col=sql.Identifier(section)),
        {"workspace_id": workspace_id, "value": Jsonb(stored)},
    )
    return get_context(conn, workspace_id)[section]


def lookup(ctx: dict[str, dict[str, Any]], path: str, default: Any = None) -> Any:
    """`lookup(ctx, "goals_and_targets.thresholds.stale_deal_days")`."""
    node: Any = ctx
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if node is None else node

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


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
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


def update_section(conn: psycopg.Connection, workspace_id, section: str, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into one section (top-level keys replace); returns the merged section."""
    if section not in SECTIONS:
        raise InputError(f"unknown context section {section!r}; use one of {', '.join(SECTIONS)}", field="section")
    if not isinstance(patch, dict):
        raise InputError(f"context section {section} takes a JSON object", field=section)
    conn.execute(
        sql.SQL(
            "INSERT INTO context_layer (workspace_id, {col}) VALUES (%(workspace_id)s, %(patch)s)"
            " ON CONFLICT (workspace_id) DO UPDATE SET {col} = context_layer.{col} || EXCLUDED.{col},"
            " version = context_layer.version + 1, updated_at = now()"
        ).format(col=sql.Identifier(section)),
        {"workspace_id": workspace_id, "patch": Jsonb(patch)},
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

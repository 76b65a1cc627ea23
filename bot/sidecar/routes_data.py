"""REST: reading data (the seven query modules, the sales roster, conversations without deals) and the
actions over it (run a skill, relink, HubSpot deal-contact backfill).

Query parameters go straight to the query modules' whitelisted filters: `limit`, `offset`, `cursor`, `sort`
and `direction` page and order; every other parameter is a filter (repeat it for several values:
`?stage=evaluation&stage=decision`). Unknown filters and bad values come back as 400 naming the parameter,
exactly as the query layer words them. Lists answer {items, total, limit, offset, next_cursor}.
"""
from __future__ import annotations

import importlib
from typing import Any

from starlette.routing import Route

from bot.sidecar.deps import Deps
from bot.sidecar.http import Call, endpoint
from bot.sidecar.runs import parse_run_body, run_later, run_now
from connectors.hubspot.deal_contacts import populate_deal_contacts_from_source_data
from core.errors import InputError
from core.pipeline import run_post_sync
from core.pipeline.cwd import conversations_without_deals
from core.queries import MODULES
from core.queries.base import fetch_one
from core.roster import sales_roster

BASE = "/api/workspaces/{workspace_id}"
PAGING = ("limit", "offset", "cursor", "sort", "direction")


def _module(entity: str):
    return importlib.import_module(f"core.queries.{entity}")  # entity is one of MODULES (fixed routes)


def _filters(call: Call) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name in call.query.keys():
        if name in PAGING:
            continue
        values = call.query.getlist(name)
        filters[name] = values if len(values) > 1 else values[0]
    return filters


def _int(call: Call, name: str, default: int | None) -> int | None:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name}: {raw!r} is not a whole number", field=name) from None


def list_entity(entity: str):
    def handler(deps: Deps, call: Call):
        q = call.query
        with deps.db.connection() as conn:
            page = _module(entity).query(
                conn, call.workspace_id, filters=_filters(call), sort=q.get("sort"), direction=q.get("direction"),
                limit=q.get("limit", 50), offset=q.get("offset", 0), cursor=q.get("cursor"))
        return 200, page.to_dict()

    handler.__name__ = f"list_{entity}"
    return handler


def get_entity(entity: str):
    def handler(deps: Deps, call: Call):
        module = _module(entity)
        with deps.db.connection() as conn:
            if hasattr(module, "get"):  # deals and accounts add their related records
                return 200, module.get(conn, call.workspace_id, call.path["row_id"])
            return 200, fetch_one(conn, module.SPEC, call.workspace_id, call.path["row_id"], param="row_id")

    handler.__name__ = f"get_{entity}"
    return handler


def roster(deps: Deps, call: Call):
    with deps.db.connection() as conn:
        return 200, sales_roster(conn, call.workspace_id)


def cwd(deps: Deps, call: Call):
    q = call.query
    with deps.db.connection() as conn:
        return 200, conversations_without_deals(
            conn, call.workspace_id, severity=q.get("severity"), rep=q.get("rep"), account_id=q.get("account_id"),
            days=_int(call, "days", None), limit=_int(call, "limit", 50), offset=_int(call, "offset", 0))


def relink(deps: Deps, call: Call):
    steps = run_post_sync(deps.db, call.workspace_id, incremental=False)
    changed = sum(v for s in steps for v in s["changed"].values() if isinstance(v, int))
    return 200, {"steps": steps, "changed": changed}


def populate_deal_contacts(deps: Deps, call: Call):
    with deps.db.connection() as conn:
        inserted = populate_deal_contacts_from_source_data(conn, call.workspace_id)
    return 200, {"inserted": inserted}


def run_skill_route(deps: Deps, call: Call):
    params, callback_url = parse_run_body(call.json_object())
    if callback_url:
        return 202, run_later(deps, call.workspace_id, call.path["skill"], params, callback_url, trigger="api")
    return 200, run_now(deps, call.workspace_id, call.path["skill"], params, trigger="api")


def routes(deps: Deps, auth) -> list[Route]:
    def r(path: str, fn, method: str = "GET") -> Route:
        return Route(path, endpoint(lambda call: fn(deps, call), auth), methods=[method], name=fn.__name__)

    out = [
        r(f"{BASE}/sales-roster", roster),
        r(f"{BASE}/conversations-without-deals", cwd),
        r(f"{BASE}/import/relink", relink, "POST"),
        r(f"{BASE}/connectors/hubspot/populate-deal-contacts", populate_deal_contacts, "POST"),
        r(f"{BASE}/skills/{{skill}}/run", run_skill_route, "POST"),
    ]
    for entity in MODULES:
        out.append(r(f"{BASE}/{entity}", list_entity(entity)))
        out.append(r(f"{BASE}/{entity}/{{row_id}}", get_entity(entity)))
    return out

"""The Starlette sidecar's own routes: the REST API under /api/… and the webhooks under /webhooks/….

`api_routes(db, settings)` returns plain Starlette routes that `pandora serve` mounts next to the Bolt routes
in one app. Layout: `http` (the endpoint wrapper, JSON and error mapping), `auth` (API keys, webhook
signatures), `routes_connectors` (workspace, connectors, syncs), `routes_data` (queries, roster, CWD, skills,
relink, HubSpot backfill), `webhooks` (inbound), `runs` + `callbacks` (background skill runs and signed
outbound callbacks), `deps` (what handlers share).

Nothing here talks to Slack and nothing here holds state between requests besides background jobs.
"""
from __future__ import annotations

from typing import Callable

import httpx
from starlette.routing import BaseRoute

from bot.sidecar.auth import api_key_auth, webhook_auth
from bot.sidecar.deps import Deps, Jobs
from core.settings import Settings


def api_routes(db, settings: Settings, *, jobs: Jobs | None = None, transport: httpx.BaseTransport | None = None,
               sleep: Callable[[float], None] | None = None) -> list[BaseRoute]:
    """The REST and webhook routes over `db`. `jobs`, `transport` and `sleep` are for tests (await background
    work, fake the network for outbound callbacks, skip retry waits)."""
    from bot.sidecar import routes_connectors, routes_data, routes_oauth, webhooks
    from connectors import load_all

    load_all()  # the connect/sync routes look connectors up by name
    deps = Deps(db, settings, jobs=jobs or Jobs(), transport=transport)
    if sleep is not None:
        deps.sleep = sleep
    key_auth = api_key_auth(db)
    return [
        *routes_connectors.routes(deps, key_auth),
        *routes_data.routes(deps, key_auth),
        *webhooks.routes(deps, webhook_auth(db, deps.vault)),
        *routes_oauth.routes(deps),  # CRM OAuth web flow (no API key: a browser follows a signed link)
    ]


__all__ = ["Jobs", "api_routes"]

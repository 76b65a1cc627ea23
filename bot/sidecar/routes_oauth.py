"""Connecting a CRM through the provider's OAuth web flow: `GET /oauth/{source}/start` and `/callback`.

Generic over any registered connector that exposes an `oauth` spec (`core.sync.protocol.OAuthSpec`):
1. `start?workspace_id=…&link=…` checks the link (an encrypted, expiring token naming the workspace and source,
   made by `start_url` for the Slack connect modal or the CLI — so nobody can attach their own CRM to another
   workspace by guessing its id), stores a one-time `state` (migrations/0011_connector_oauth.sql) and redirects
   to the provider's authorize URL;
2. `callback?code&state` consumes the state (once; expired or unknown states are refused), exchanges the code
   at the token URL, checks the new credentials with the connector's `check_auth`, and saves the connection
   (credentials encrypted; the account info in metadata.account). Salesforce's `instance_url` is kept by its
   spec's `keep` fields.
Pages are plain HTML for a person in a browser; tokens and codes never appear in them or in logs.
"""
from __future__ import annotations

import html
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.sidecar.deps import Deps
from core.connections import save_connection
from core.credentials import Vault
from core.errors import ConfigError, NotFound, PandoraError
from core.sync import registry

log = logging.getLogger("pandora.oauth")
STATE_TTL = 600          # seconds a started flow may take
LINK_TTL = 3600          # seconds a start link stays valid


def start_url(settings, vault: Vault, source: str, workspace_id: str, *, now: float | None = None) -> str:
    """The link a user opens to connect `source` to `workspace_id` (what the Slack modal shows)."""
    link = vault.encrypt({"ws": str(workspace_id), "source": source, "exp": int((now or time.time()) + LINK_TTL)})
    query = urlencode({"workspace_id": str(workspace_id), "link": link.decode()})
    return f"{settings.public_url}/oauth/{source}/start?{query}"


def redirect_uri(settings, source: str) -> str:
    return f"{settings.public_url}/oauth/{source}/callback"


class OAuthFailed(PandoraError):
    code = "oauth_failed"


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
    return HTMLResponse(body, status_code=status)


def _oauth_connector(source: str):
    connector = registry.get(source)
    spec = getattr(connector, "oauth", None)
    if spec is None:
        raise NotFound(f"{connector.label} does not connect through OAuth; use its credential form instead")
    return connector, spec


def _check_link(vault: Vault, link: str, source: str, workspace_id: str) -> None:
    try:
        data = vault.decrypt(link.encode())
    except (PandoraError, ValueError, TypeError):
        data = {}
    if data.get("ws") != workspace_id or data.get("source") != source:
        raise OAuthFailed("This connect link is not valid: ask Pandora for a new one (/pandora connect).")
    if data.get("exp", 0) < time.time():
        raise OAuthFailed("This connect link has expired: ask Pandora for a new one (/pandora connect).")


def begin(deps: Deps, source: str, workspace_id: str, link: str) -> str:
    """Check the link, store a state, return the provider's authorize URL."""
    connector, spec = _oauth_connector(source)
    _check_link(deps.vault(), link, source, workspace_id)
    client_id = spec.client_id(deps.settings)
    if not client_id or not spec.client_secret(deps.settings):
        raise ConfigError(f"{connector.label} OAuth is not configured on this server: set "
                          f"{spec.client_id_setting.upper()} and {spec.client_secret_setting.upper()}",
                          variable=spec.client_id_setting.upper())
    state = secrets.token_urlsafe(32)
    uri = redirect_uri(deps.settings, source)
    with deps.db.connection() as conn:
        conn.execute("DELETE FROM connector_oauth_states WHERE expires_at < now() - interval '1 day'")
        conn.execute("INSERT INTO connector_oauth_states (workspace_id, state, connector_name, redirect_uri, expires_at)"
                     " VALUES (%(workspace_id)s, %(state)s, %(name)s, %(uri)s,"
                     " now() + make_interval(secs => %(ttl)s))",
                     {"workspace_id": workspace_id, "state": state, "name": source, "uri": uri, "ttl": STATE_TTL})
    params = {"client_id": client_id, "redirect_uri": uri, "scope": spec.scope_separator.join(spec.scopes),
              "state": state, "response_type": "code", **spec.authorize_params}
    return f"{spec.authorize_url}?{urlencode(params)}"


def finish(deps: Deps, source: str, code: str, state: str) -> dict[str, Any]:
    """Consume the state, exchange the code, check and save the connection; returns what to tell the user."""
    connector, spec = _oauth_connector(source)
    with deps.db.connection() as conn:
        # The state is the only thing the provider hands back, so this lookup is by state (unique index).
        row = conn.execute("DELETE FROM connector_oauth_states WHERE state = %(state)s AND connector_name = %(name)s"
                           " RETURNING workspace_id, redirect_uri, expires_at > now() AS fresh",
                           {"state": state or "", "name": source}).fetchone()
    if row is None or not row["fresh"]:
        raise OAuthFailed(f"This {connector.label} sign-in was already used or has expired: start again from "
                          "Pandora (/pandora connect).")
    workspace_id = str(row["workspace_id"])
    try:
        with httpx.Client(transport=deps.transport, timeout=30.0) as http:
            response = http.post(spec.token_url, data=spec.token_params(code, row["redirect_uri"], deps.settings))
    except httpx.HTTPError as exc:
        raise OAuthFailed(f"{connector.label} could not be reached to finish signing in ({type(exc).__name__}); "
                          "try again in a minute.") from None
    if response.status_code != 200:
        log.warning("%s token exchange answered %s", source, response.status_code)
        raise OAuthFailed(f"{connector.label} refused the sign-in (HTTP {response.status_code}): start again "
                          "from Pandora (/pandora connect).")
    credentials = spec.credentials(response.json(), now=time.time())
    with connector.client(credentials, {}, transport=deps.transport) as client:
        account = connector.check_auth(client)
    with deps.db.connection() as conn:
        save_connection(conn, deps.vault(), workspace_id, connector.name, credentials,
                        metadata={"account": account, "auth": "oauth"})
    return {"workspace_id": workspace_id, "label": connector.label, "account": account}


def routes(deps: Deps) -> list[Route]:
    async def start(request: Request) -> Response:
        source = request.path_params["source"]
        try:
            url = await run_in_threadpool(begin, deps, source, request.query_params.get("workspace_id", ""),
                                          request.query_params.get("link", ""))
        except PandoraError as exc:
            return _page(404 if isinstance(exc, NotFound) else 400, "Could not start connecting", exc.message)
        return RedirectResponse(url, status_code=302)

    async def callback(request: Request) -> Response:
        source, query = request.path_params["source"], request.query_params
        if query.get("error"):
            return _page(400, "Not connected", f"The sign-in was cancelled ({query.get('error')}); nothing was "
                                               "connected. Start again from Pandora (/pandora connect) when ready.")
        if not query.get("code") or not query.get("state"):
            return _page(400, "Not connected", "The sign-in link is incomplete: start again from Pandora.")
        try:
            done = await run_in_threadpool(finish, deps, source, query["code"], query["state"])
        except PandoraError as exc:
            return _page(404 if isinstance(exc, NotFound) else 400, "Not connected", exc.message)
        portal = (done["account"] or {}).get("portal_id") or (done["account"] or {}).get("organization_id")
        where = f" (account {portal})" if portal else ""
        return _page(200, f"{done['label']} connected", f"{done['label']}{where} is connected to Pandora. "
                     "You can close this tab; the first sync starts with /pandora sync or at the daily run.")

    return [Route("/oauth/{source}/start", start, methods=["GET"]),
            Route("/oauth/{source}/callback", callback, methods=["GET"])]

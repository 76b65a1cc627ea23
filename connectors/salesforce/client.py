"""The Salesforce side of the shared HTTP client: token refresh, the daily API cap, and the org's own fields.

- `TokenRefresher` (an `AuthRefresher`): on 401 INVALID_SESSION_ID the shared client asks it once for a new
  access token (refresh_token grant at the login host), hands the new credentials to `on_credentials` so they
  are stored encrypted, and retries; a refused refresh becomes "reconnect Salesforce".
- `LimitGuard` (the client's `on_response`): names an expired query cursor (INVALID_QUERY_LOCATOR) and reads `Sforce-Limit-Info: api-usage=used/limit` from every
  response and raises RateLimited once usage reaches the pause threshold (95 % by default), and on 403
  REQUEST_LIMIT_EXCEEDED: the sync stops with its committed pages and cursors kept and resumes on the next run,
  leaving the org's last requests to the customer's other integrations.
It never logs or puts tokens into messages.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable

import httpx

from core.errors import AuthError, PageStateExpired, RateLimited
from core.sync.http import HttpClient
from connectors.salesforce.oauth import LOGIN, app_credentials

LABEL = "Salesforce"
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class LimitGuard:
    """Tracks the org's daily API usage; pauses the sync before the cap."""

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold
        self.used: int | None = None
        self.limit: int | None = None

    def __call__(self, response: httpx.Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.used, self.limit = int(match.group(1)), int(match.group(2))
        if response.status_code == 403 and _error_code(response) == "REQUEST_LIMIT_EXCEEDED":
            raise RateLimited(
                "Salesforce refused the request: the org's daily API limit is used up (REQUEST_LIMIT_EXCEEDED). "
                "The sync paused with everything fetched so far saved and resumes where it stopped on the next "
                "run, once the org's 24-hour usage drops.",
                connector="salesforce", status=403, api_used=self.used, api_limit=self.limit,
            )
        if response.status_code == 400 and _error_code(response) == "INVALID_QUERY_LOCATOR":
            # Salesforce drops a query's cursor after ~15 idle minutes: a walk paused longer cannot continue.
            raise PageStateExpired(
                "Salesforce no longer holds the query this sync was paging through (query cursors expire after "
                "about 15 idle minutes); the stream has to start its walk again from its saved position.",
                connector="salesforce", status=400,
            )
        if response.status_code < 400 and self.limit and self.used is not None \
                and self.used >= self.threshold * self.limit:
            raise RateLimited(
                f"Salesforce API usage is at {self.used:,} of the org's {self.limit:,} daily requests "
                f"({self.used / self.limit:.0%}). Pandora paused the sync at {self.threshold:.0%} to leave the "
                "rest to your other integrations; it resumes where it stopped on the next run.",
                connector="salesforce", api_used=self.used, api_limit=self.limit,
            )


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode")
    return None


class TokenRefresher:
    """Refresh-token grant against the org's login host; the new credentials go to `on_credentials`."""

    def __init__(self, credentials: dict[str, Any], *, on_credentials: Callable[[dict], None] | None,
                 transport: httpx.BaseTransport | None, sleep: Callable[[float], None] | None) -> None:
        self.credentials = dict(credentials)
        self.client_id, self.client_secret = app_credentials(credentials)
        self.on_credentials = on_credentials
        self._transport = transport
        self._sleep = sleep
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, str]:
        creds = self.credentials
        if not creds.get("refresh_token"):
            raise AuthError("the session expired and no refresh token is stored", connector="salesforce")
        if not self.client_id:
            raise AuthError("the session expired and this server has no Salesforce connected app "
                            "(SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET) to renew it", connector="salesforce")
        form = {"grant_type": "refresh_token", "refresh_token": creds["refresh_token"], "client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        kwargs = {"sleep": self._sleep} if self._sleep else {}
        with self._lock, HttpClient(creds.get("login_url") or creds.get("instance_url") or LOGIN, connector="salesforce",
                                    label=LABEL, transport=self._transport, **kwargs) as login:
            response = login.request("POST", "/services/oauth2/token", data=form)
            token = login.parse_json(response) or {}
        if not token.get("access_token"):
            raise AuthError("the token endpoint answered without an access token", connector="salesforce")
        # Salesforce may rotate the refresh token; the instance URL stays unless the org moved. (The org's
        # My Domain host answers the token endpoint too, which keeps sandboxes on their own login.)
        self.credentials = {**creds, "access_token": token["access_token"],
                            "refresh_token": token.get("refresh_token") or creds["refresh_token"]}
        if self.on_credentials is not None:
            self.on_credentials(dict(self.credentials))
        return {"Authorization": f"Bearer {token['access_token']}"}

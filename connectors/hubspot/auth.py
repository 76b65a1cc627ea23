"""HubSpot authentication: private-app tokens, and OAuth with a refresh token.

Private-app tokens never expire; a 401 means the token was revoked and the user must reconnect. OAuth access
tokens last 30 minutes (`expires_in: 1800`); an expired one answers 401 `EXPIRED_AUTHENTICATION`. The shared
HTTP client then calls `TokenRefresher.refresh()` once: a refresh_token grant at `/oauth/v1/token`, the new
credentials handed to `on_credentials` (the caller stores them encrypted, before anything else happens: HubSpot
may rotate the refresh token) and new Authorization headers returned.

`OAUTH` describes the web flow for `bot/sidecar/routes_oauth.py`. This module never logs or puts tokens into
error messages.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import httpx

from core.errors import AuthError
from core.settings import Settings
from core.sync.protocol import OAuthSpec

API_BASE = "https://api.hubapi.com"
SCOPES = (
    "oauth", "crm.objects.deals.read", "crm.objects.contacts.read", "crm.objects.companies.read",
    "crm.objects.owners.read", "crm.schemas.deals.read", "crm.schemas.contacts.read",
    "crm.schemas.companies.read", "sales-email-read",
)


def oauth_spec(api_base: str = API_BASE, app_base: str = "https://app.hubspot.com") -> OAuthSpec:
    return OAuthSpec(
        authorize_url=f"{app_base}/oauth/authorize",
        token_url=f"{api_base}/oauth/v1/token",
        scopes=SCOPES,
        client_id_setting="hubspot_client_id",
        client_secret_setting="hubspot_client_secret",
    )


class TokenRefresher:
    """The `AuthRefresher` of an OAuth connection: one refresh_token grant per call."""

    def __init__(self, credentials: dict[str, Any], *, token_url: str, client_id: str | None,
                 client_secret: str | None, on_credentials: Callable[[dict[str, Any]], None] | None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time) -> None:
        self.credentials = dict(credentials)
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.on_credentials = on_credentials
        self.transport = transport
        self.clock = clock
        self.refreshes = 0

    def refresh(self) -> dict[str, str]:
        if not (self.client_id and self.client_secret):
            raise AuthError("HubSpot's access token expired and this server has no HubSpot app credentials "
                            "(HUBSPOT_CLIENT_ID / HUBSPOT_CLIENT_SECRET) to renew it: reconnect HubSpot",
                            connector="hubspot")
        form = {"grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.credentials.get("refresh_token", "")}
        try:
            with httpx.Client(transport=self.transport, timeout=30.0) as http:
                response = http.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise AuthError(f"HubSpot's token endpoint could not be reached ({type(exc).__name__}): "
                            "reconnect HubSpot if this persists", connector="hubspot") from exc
        if response.status_code != 200:
            raise AuthError(f"HubSpot refused to renew the access token (HTTP {response.status_code}): "
                            "reconnect HubSpot", connector="hubspot", status=response.status_code)
        token = response.json()
        self.credentials = credentials_from_token(token, self.credentials, clock=self.clock)
        self.refreshes += 1
        if self.on_credentials is not None:
            self.on_credentials(dict(self.credentials))
        return {"Authorization": f"Bearer {self.credentials['access_token']}"}


def credentials_from_token(token: dict[str, Any], previous: dict[str, Any] | None = None, *,
                           clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """What we store from a token response: the access token, the (possibly rotated) refresh token, and when
    the access token expires (epoch seconds)."""
    if not token.get("access_token"):
        raise AuthError("HubSpot's token response carried no access token: reconnect HubSpot", connector="hubspot")
    creds = dict(previous or {})
    creds["access_token"] = token["access_token"]
    if token.get("refresh_token"):
        creds["refresh_token"] = token["refresh_token"]
    if token.get("expires_in") is not None:
        creds["expires_at"] = int(clock()) + int(token["expires_in"])
    return creds


def app_credentials(credentials: dict[str, Any]) -> tuple[str | None, str | None]:
    """The OAuth app's client id/secret: from the stored credentials when the connect flow kept them, else
    from the settings (read here, when a client is built, never at import)."""
    if credentials.get("client_id") and credentials.get("client_secret"):
        return credentials["client_id"], credentials["client_secret"]
    settings = Settings.from_env()
    return settings.hubspot_client_id, settings.hubspot_client_secret

"""Google Drive authentication: OAuth 2 with a refresh token, or a bare access token for tests and manual use.

Connecting runs Google's web-server flow through the sidecar (`OAUTH` → `/oauth/google_drive/start`), asking for
`drive.readonly` (metadata plus the export and download that `content` needs) with `access_type=offline` and
`prompt=consent`, so Google returns a refresh token every time the user consents. Access tokens last an hour;
an expired one is a 401, on which the shared client calls `TokenRefresher.refresh()` once: a refresh_token grant
at the token endpoint, the new credentials handed to `on_credentials` (stored encrypted before anything else
happens) and new headers returned. Google usually keeps the refresh token; when it sends a new one we keep that.
A connection made with only an access token simply fails with "reconnect Google Drive" when it expires.
The OAuth app's id and secret come from the stored credentials when the connect flow kept them, else from
Settings (GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET), read when a client is built. Tokens never reach logs or
error messages.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import httpx

from core.errors import AuthError
from core.settings import Settings
from core.sync.protocol import OAuthSpec

AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
LABEL = "Google Drive"


def oauth_spec(token_url: str = TOKEN_URL, authorize_url: str = AUTHORIZE_URL) -> OAuthSpec:
    return OAuthSpec(authorize_url=authorize_url, token_url=token_url, scopes=SCOPES,
                     client_id_setting="google_client_id", client_secret_setting="google_client_secret",
                     authorize_params={"access_type": "offline", "prompt": "consent",
                                       "include_granted_scopes": "true"})


def app_credentials(credentials: dict[str, Any]) -> tuple[str | None, str | None]:
    if credentials.get("client_id") and credentials.get("client_secret"):
        return credentials["client_id"], credentials["client_secret"]
    settings = Settings.from_env()
    return settings.google_client_id, settings.google_client_secret


class TokenRefresher:
    """The `AuthRefresher` of an OAuth connection: one refresh_token grant per call."""

    def __init__(self, credentials: dict[str, Any], *, token_url: str,
                 on_credentials: Callable[[dict[str, Any]], None] | None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time) -> None:
        self.credentials = dict(credentials)
        self.token_url = token_url
        self.client_id, self.client_secret = app_credentials(credentials)
        self.on_credentials = on_credentials
        self.transport = transport
        self.clock = clock
        self.refreshes = 0
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, str]:
        if not self.credentials.get("refresh_token"):
            raise AuthError("the access token expired and no refresh token is stored", connector="google_drive")
        if not (self.client_id and self.client_secret):
            raise AuthError("the access token expired and this server has no Google OAuth app "
                            "(GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET) to renew it", connector="google_drive")
        form = {"grant_type": "refresh_token", "refresh_token": self.credentials["refresh_token"],
                "client_id": self.client_id, "client_secret": self.client_secret}
        with self._lock:
            try:
                with httpx.Client(transport=self.transport, timeout=30.0) as http:
                    response = http.post(self.token_url, data=form)
            except httpx.HTTPError as exc:
                raise AuthError(f"Google's token endpoint could not be reached ({type(exc).__name__})",
                                connector="google_drive") from exc
            if response.status_code != 200:
                raise AuthError(f"Google refused to renew the access token (HTTP {response.status_code})",
                                connector="google_drive", status=response.status_code)
            try:
                token = response.json()
            except ValueError:
                token = {}
            if not token.get("access_token"):
                raise AuthError("Google's token response carried no access token", connector="google_drive")
            creds = {**self.credentials, "access_token": token["access_token"]}
            if token.get("refresh_token"):
                creds["refresh_token"] = token["refresh_token"]
            if token.get("expires_in") is not None:
                creds["expires_at"] = int(self.clock()) + int(token["expires_in"])
            self.credentials = creds
            self.refreshes += 1
        if self.on_credentials is not None:
            self.on_credentials(dict(self.credentials))
        return {"Authorization": f"Bearer {self.credentials['access_token']}"}

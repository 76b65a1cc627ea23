"""Salesforce's OAuth 2.0 web-server flow, for the generic `/oauth/{source}/…` routes (`connector.oauth`).

The token response's `instance_url` is the org's API host and is kept with the tokens. Sandboxes log in at
https://test.salesforce.com (`oauth_spec(LOGIN_SANDBOX)`). The connected app's consumer key and secret come
from Settings (SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET); nothing secret lives here.
"""
from __future__ import annotations

from typing import Any

from core.settings import Settings
from core.sync.protocol import OAuthSpec

LOGIN, LOGIN_SANDBOX = "https://login.salesforce.com", "https://test.salesforce.com"
SCOPES = ("api", "refresh_token")


def oauth_spec(login_url: str = LOGIN) -> OAuthSpec:
    return OAuthSpec(authorize_url=f"{login_url}/services/oauth2/authorize",
                     token_url=f"{login_url}/services/oauth2/token", scopes=SCOPES,
                     client_id_setting="salesforce_client_id", client_secret_setting="salesforce_client_secret",
                     keep=("instance_url", "id"))


def app_credentials(credentials: dict[str, Any]) -> tuple[str | None, str | None]:
    """The connected app's key/secret for the refresh grant: stored with the connection when it was connected
    that way, else from the settings (read when a client is built, never at import)."""
    if credentials.get("client_id"):
        return credentials["client_id"], credentials.get("client_secret")
    settings = Settings.from_env()
    return settings.salesforce_client_id, settings.salesforce_client_secret

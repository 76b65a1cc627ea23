"""What a connector is: credential fields, an auth check, an optional user directory, and declared streams.

Connectors are declarative (after dlt's verified sources and the Meltano SDK): a stream names its endpoint,
paginator, records path, incremental cursor field and normalize function; the one orchestrator in
`core.sync.orchestrator` runs every stream of every connector. No connector writes its own paging loop or
its own entity writes (rows go through the one upsert path; `Stream.on_written` may only derive link rows
from what was just written, in the same transaction).

Optional hooks a connector may add (the orchestrator checks for them):
- `prepare(client, ctx) -> dict`: fetched before the streams run (owners, pipelines, property definitions);
  the dict is merged into `connections.metadata` and into `ctx.metadata` for normalize functions.
- `client(..., on_credentials=...)`: a connector that refreshes an OAuth token calls `on_credentials(new)` with
  the whole new credential dict; the caller persists it encrypted before the request is retried.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import httpx

from core.sync.http import HttpClient
from core.sync.paginators import Paginator


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True
    required: bool = True
    help: str = ""


@dataclass
class StreamContext:
    """What normalize functions may need besides the record: whose data it is and the connection's metadata."""

    workspace_id: str
    connector: str
    metadata: dict[str, Any]
    partition: dict[str, Any] | None = None
    # The saved state of every stream (`connections.sync_cursors`) and whether a full re-sync was asked for,
    # so `streams()` can pick an endpoint: e.g. HubSpot walks the list endpoint on a first or full sync (or to
    # finish a list walk that was killed) and the search endpoint once a cursor exists.
    cursors: dict[str, Any] = field(default_factory=dict)
    full: bool = False


Normalize = Callable[[dict[str, Any], StreamContext], "dict[str, Any] | None"]
Related = Callable[[dict[str, Any], StreamContext], Iterable[tuple[str, dict[str, Any]]]]
# Called with each page's raw records before normalize; may add to them in place (associations, extra
# properties) with its own requests. Must raise rather than drop data it could not fetch.
Enrich = Callable[[HttpClient, list[dict[str, Any]], StreamContext], None]
# Called inside the page's transaction after its rows were upserted: {table: rows written}. Returns counts.
OnWritten = Callable[[Any, StreamContext, "dict[str, list[dict[str, Any]]]"], "dict[str, int] | None"]
# Called inside EVERY page's transaction (rows or not) with the page's raw records, after its rows were written:
# for change-feed entries that carry no row to write (a removed file). Returns {table: {"updated": n, ...}}.
OnPage = Callable[[Any, StreamContext, "list[dict[str, Any]]"], "dict[str, dict[str, int]] | None"]


@dataclass(frozen=True)
class Stream:
    """One endpoint feeding one entity table.

    - `cursor_field`: dotted path of the record's last-modified value; the largest value seen becomes the
      next run's `since` (records are expected in ascending cursor order or the whole stream is read).
    - `since`: builds the request part of an incremental run from the saved cursor:
      `{"params": {...}}` and/or `{"json": {...}}`.
    - `partitions`: for per-user fetching (e.g. Gong per tracked rep): each partition dict is merged into the
      request params (or body under "json") and gets its own saved state; partitions run sequentially.
    - `related`: extra rows for other tables derived from the same record, e.g. stage history of a deal.
    - `enrich`: adds to a page's raw records before normalize (HubSpot: v4 associations in one batch call).
    - `on_written`: derives link rows from the page just written, in its transaction (HubSpot deal_contacts).
    - `cursor_ceiling`: for walks NOT in cursor order (a list by id): given the walk's start (epoch seconds),
      the highest cursor the next run may start from, so a record modified during the walk, after we read
      it, is fetched again next time instead of hiding behind a later record's timestamp.
    - `final_cursor`: for change feeds whose next position is in the LAST page's payload, not in the records
      (Google Drive `newStartPageToken`): `final_cursor(payload, ctx)` is saved as the stream's cursor.
    - `on_page`: sees every page's raw records in its transaction, whether or not they made rows (Google Drive:
      a `removed` change has no file to upsert; the connector soft-deletes the row it has, if any).
    """

    name: str
    entity: str
    path: str
    paginator: Paginator
    normalize: Normalize
    records_path: str = "results"
    method: str = "GET"
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    cursor_field: str | None = None
    since: Callable[[str], dict[str, dict[str, Any]]] | None = None
    partitions: Callable[[StreamContext], list[dict[str, Any]]] | None = None
    related: Related | None = None
    enrich: Enrich | None = None
    on_written: OnWritten | None = None
    cursor_ceiling: Callable[[float], Any] | None = None
    final_cursor: Callable[[Any, StreamContext], Any] | None = None
    on_page: OnPage | None = None


class Connector(Protocol):
    name: str
    label: str
    credential_fields: list[CredentialField]

    def client(
        self, credentials: dict[str, Any], metadata: dict[str, Any], *, transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        on_credentials: Callable[[dict[str, Any]], None] | None = None,
    ) -> HttpClient:
        """`on_credentials` is optional for connectors without token refresh; callers pass it only to a
        connector whose `client` accepts it (see `accepts_on_credentials`)."""
        ...

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """Cheap authenticated call; returns account info to keep in metadata; raises AuthError."""
        ...

    def streams(self, ctx: StreamContext) -> list[Stream]: ...


@dataclass(frozen=True)
class OAuthSpec:
    """How a connector's OAuth web flow works; `bot/sidecar/routes_oauth.py` drives it for any connector that
    exposes one as `connector.oauth`.

    The routes redirect to `authorize_url` with client_id, redirect_uri, scope (joined by `scope_separator`),
    state and `authorize_params`; the callback posts `token_params(...)` form-encoded to `token_url` and turns
    the response into stored credentials with `credentials(...)`: access_token, refresh_token, expires_at
    (epoch seconds) and the `keep` fields of the token response (Salesforce: instance_url).
    The app's client id/secret are read from Settings by attribute name, never stored here.
    """

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_id_setting: str
    client_secret_setting: str
    scope_separator: str = " "
    authorize_params: dict[str, str] = field(default_factory=dict)
    keep: tuple[str, ...] = ()

    def client_id(self, settings: Any) -> str | None:
        return getattr(settings, self.client_id_setting, None)

    def client_secret(self, settings: Any) -> str | None:
        return getattr(settings, self.client_secret_setting, None)

    def token_params(self, code: str, redirect_uri: str, settings: Any) -> dict[str, str]:
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": self.client_id(settings) or "", "client_secret": self.client_secret(settings) or ""}

    def credentials(self, token: dict[str, Any], *, now: float) -> dict[str, Any]:
        creds: dict[str, Any] = {"access_token": token.get("access_token")}
        if token.get("refresh_token"):
            creds["refresh_token"] = token["refresh_token"]
        if token.get("expires_in") is not None:
            creds["expires_at"] = int(now) + int(token["expires_in"])
        creds.update({k: token[k] for k in self.keep if token.get(k) is not None})
        return creds


def accepts_on_credentials(connector: Any) -> bool:
    """Whether `connector.client` takes `on_credentials` (older connectors and test fakes may not)."""
    import inspect

    try:
        params = inspect.signature(connector.client).parameters
    except (TypeError, ValueError):
        return False
    return "on_credentials" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def client_for(connector: Any, credentials: dict[str, Any], metadata: dict[str, Any], **kwargs: Any) -> HttpClient:
    """`connector.client(...)` for a connect flow: a token the connector refreshes while checking the
    credentials is written back into `credentials` (in place), so what the caller saves next is the live one."""
    if accepts_on_credentials(connector):
        kwargs["on_credentials"] = credentials.update
    return connector.client(credentials, metadata, **kwargs)


class SupportsUserDirectory(Protocol):
    def list_users(self, client: HttpClient) -> list[dict[str, Any]]:
        """The source's user directory: [{id, name, email, ...}] (stored in connections.metadata)."""
        ...

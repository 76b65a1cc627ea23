"""What a connector is: credential fields, an auth check, an optional user directory, and declared streams.

Connectors are declarative (after dlt's verified sources and the Meltano SDK): a stream names its endpoint,
paginator, records path, incremental cursor field and normalize function; the one orchestrator in
`core.sync.orchestrator` runs every stream of every connector. No connector writes its own paging loop or
its own database writes.
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


Normalize = Callable[[dict[str, Any], StreamContext], "dict[str, Any] | None"]
Related = Callable[[dict[str, Any], StreamContext], Iterable[tuple[str, dict[str, Any]]]]


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


class Connector(Protocol):
    name: str
    label: str
    credential_fields: list[CredentialField]

    def client(
        self, credentials: dict[str, Any], metadata: dict[str, Any], *, transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> HttpClient: ...

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """Cheap authenticated call; returns account info to keep in metadata; raises AuthError."""
        ...

    def streams(self, ctx: StreamContext) -> list[Stream]: ...


class SupportsUserDirectory(Protocol):
    def list_users(self, client: HttpClient) -> list[dict[str, Any]]:
        """The source's user directory: [{id, name, email, ...}] (stored in connections.metadata)."""
        ...

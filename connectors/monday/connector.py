"""The monday.com connector: board items → `tasks`, over the GraphQL API (https://api.monday.com/v2).

Credentials: one API token (a personal token or an app's OAuth token), sent as `Authorization: <token>` with
`API-Version: 2024-10`; `check_auth` reads `me`. Which boards: `connections.metadata.boards` (board ids) when
set, else every board the token can see (`boards(limit:, page:)`), active ones only unless
`metadata.include_archived_boards`; documents are skipped. `list_boards(client)` lists them for a picker.
Subitems come with the boards they belong to: each synced board's subitems column (type `subtasks`, whose
`settings_str` names the subitems board in `boardIds`) adds that subitems board to the sync, its items written as
tasks of the parent board (`project`) with `custom_fields.parent_item` (see connectors.monday.normalize); a
subitems board is never synced for itself (listed alone, it has no board a user would recognise).

Before the streams (`prepare`, stored in connection metadata): the users directory (`users`, to turn a people
column's ids into names and e-mails) and each synced board's columns (`board_info`: titles, types, status
labels and done colors).

Two streams per board, each with its own saved state:
- `items:<board>` — `boards(ids:) { items_page(limit: 500) }`, then root `next_items_page(cursor:)` until the
  cursor is null (`GraphQLCursor`). Incremental: monday has no change feed, so a later run filters
  `items_page(query_params: {rules: [{column_id: "__last_updated__", compare_attribute: "UPDATED_AT",
  operator: greater_than_or_equals, compare_value: ["EXACT", <day>]}]})`, where <day> is the day before the
  newest `updated_at` seen (the filter is day-granular and evaluated in the account's time zone, hence the
  extra day; re-read items are upserted as unchanged). The saved point never passes the walk's start
  (`cursor_ceiling`), so an item edited during a walk is read again. An expired cursor (60 minutes after the
  walk's first request) restarts the board's walk from that saved point (PageStateExpired, `restart=True`).
- `removals:<board>` — `items_page` returns active items only, so archived and deleted items are found in the
  board's activity log (`archive_pulse`, `delete_pulse`, `restore_pulse`… since the last run; the first run
  looks back one day) and re-read with `items(ids:, exclude_nonactive: false)`, whose `state` sets or clears
  `deleted_at`. An item monday no longer returns at all (purged from the trash) keeps its row.
Deal links are made after the sync in SQL (`connectors.monday.steps`).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx

from connectors.monday import queries as q
from connectors.monday.client import LABEL, MondayClient
from connectors.monday.columns import column_settings
from connectors.monday.normalize import Board, normalize_item, users_by_id
from core.errors import AuthError, ConnectorError
from core.sync.http import HttpClient, RateLimiter, RetryPolicy
from core.sync.paginators import GraphQLCursor, PageNumber, iterate_pages
from core.sync.protocol import CredentialField, Stream, StreamContext

API_URL = "https://api.monday.com/v2"
PAGE_SIZE = 500             # items_page / next_items_page maximum
ITEMS_BY_ID_MAX = 100       # root `items(ids:)` maximum
REMOVAL_EVENTS = ("delete_pulse", "archive_pulse", "restore_pulse", "unarchive_pulse", "undelete_pulse",
                  "batch_delete_pulses", "batch_archive_pulses")
FIRST_LOOK_BACK = timedelta(days=1)


def split_url(url: str) -> tuple[str, str]:
    """(origin, path) of the GraphQL URL: httpx would add a trailing slash to a base URL's path."""
    u = httpx.URL(url)
    return str(u.copy_with(path="/", query=None, fragment=None)).rstrip("/"), u.path or "/"


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def updated_since(cursor: str) -> dict[str, Any] | None:
    """The items_page filter for items updated on or after the day before `cursor` (see the module docstring)."""
    try:
        when = datetime.fromisoformat(str(cursor).replace("Z", "+00:00"))
    except ValueError:
        return None
    day = (when.astimezone(timezone.utc) - timedelta(days=1)).date().isoformat()
    return {"rules": [{"column_id": "__last_updated__", "compare_value": ["EXACT", day],
                       "operator": "greater_than_or_equals", "compare_attribute": "UPDATED_AT"}]}


def log_time(created_at: Any) -> float | None:
    """An activity log's `created_at` (a 17-digit count of 100-nanosecond units since the epoch) in seconds."""
    try:
        return float(created_at) / 1e7
    except (TypeError, ValueError):
        return None


def board_ids(metadata: dict[str, Any]) -> list[str] | None:
    """The boards chosen in metadata (ids, or {id, name} objects), or None for every board."""
    chosen = metadata.get("boards")
    if not chosen:
        return None
    ids = [str(b.get("id") if isinstance(b, dict) else b) for b in chosen]
    return [i for i in dict.fromkeys(ids) if i not in ("", "None")]


def subitems_boards(board: dict[str, Any]) -> list[str]:
    """The subitems board ids a board's subitems columns name (`boardIds` in their settings)."""
    ids = []
    for column in board.get("columns") or []:
        if column.get("type") == "subtasks":
            ids += [str(i) for i in column.get("board_ids") or []]
    return list(dict.fromkeys(ids))


def removed_item_ids(record: dict[str, Any]) -> list[str]:
    if record.get("event") not in REMOVAL_EVENTS:
        return []
    try:
        data = json.loads(record.get("data") or "{}") if isinstance(record.get("data"), str) else record.get("data")
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    ids = data.get("pulse_ids") or data.get("item_ids") or data.get("pulse_id") or data.get("item_id")
    return [str(i) for i in (ids if isinstance(ids, list) else [ids]) if i not in (None, "")]


class MondayConnector:
    name = "monday"
    label = LABEL
    credential_fields = [CredentialField(
        "api_token", "API token",
        help="monday.com → your avatar → Developers → My access tokens (or an app's OAuth token)")]

    def __init__(self, api_url: str = API_URL, *, page_size: int = PAGE_SIZE, board_page_size: int = 50,
                 user_page_size: int = 200, activity_page_size: int = 100, rate_per_second: float = 10.0) -> None:
        self.api_url = api_url
        self.page_size = min(page_size, PAGE_SIZE)
        self.board_page_size = board_page_size
        self.user_page_size = user_page_size
        self.activity_page_size = activity_page_size
        self.rate_per_second = rate_per_second

    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None,
               sleep: Callable[[float], None] | None = None) -> HttpClient:
        token = credentials.get("api_token") or credentials.get("access_token") or credentials.get("token")
        if not token:
            raise AuthError(f"No {LABEL} API token is stored: reconnect {LABEL}", connector=self.name)
        limit = metadata.get("rate_limit") or {}
        sleep = sleep or time.sleep
        origin, path = split_url(metadata.get("api_url") or self.api_url)
        per_second = float(limit.get("per_second", self.rate_per_second))
        client = MondayClient(
            origin, connector=self.name, label=self.label, transport=transport, sleep=sleep,
            headers={"Authorization": str(token), "API-Version": str(metadata.get("api_version") or q.API_VERSION)},
            retry=RetryPolicy(max_attempts=int(limit.get("attempts", 6)),
                              max_retry_after=float(limit.get("max_wait", 180.0))),
            rate_limiter=RateLimiter(per_second, burst=max(1, int(per_second)), sleep=sleep),
        )
        client.graphql_path = path
        return client

    def _path(self, client: HttpClient) -> str:
        return getattr(client, "graphql_path", split_url(self.api_url)[1])

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """The token's user and account (`me`)."""
        me = ((client.post_json(self._path(client), json={"query": q.ME}) or {}).get("data") or {}).get("me")
        if not isinstance(me, dict):
            raise ConnectorError(f"{LABEL} answered `me` without a user", connector=self.name)
        account = me.get("account") if isinstance(me.get("account"), dict) else {}
        return {"user_id": str(me.get("id")), "user_name": me.get("name"), "user_email": me.get("email"),
                "account_id": str(account.get("id")) if account.get("id") else None,
                "account_name": account.get("name"), "account_slug": account.get("slug")}

    def _pages(self, client: HttpClient, query: str, records_path: str, page_size: int, **variables: Any):
        for page in iterate_pages(client, method="POST", path=self._path(client), records_path=records_path,
                                  paginator=PageNumber(page_size, in_variables=True),
                                  json={"query": query, "variables": variables}):
            yield from (r for r in page.records if isinstance(r, dict))

    def fetch_users(self, client: HttpClient) -> list[dict[str, Any]]:
        """The account's users directory [{id, name, email}] (read once per sync by `prepare`)."""
        return [{"id": str(u["id"]), "name": u.get("name"), "email": (u.get("email") or "").lower() or None}
                for u in self._pages(client, q.USERS, "data.users", self.user_page_size) if u.get("id") is not None]

    def fetch_boards(self, client: HttpClient, ids: list[str] | None = None, *, include_archived: bool = False,
                     kind: str = "board") -> list[dict[str, Any]]:
        """Boards with their columns: `ids` or every board the token sees; never deleted ones, archived ones
        only when asked, and only boards of `kind` ("board": item boards, no subitems boards or documents;
        "sub_items_board")."""
        variables: dict[str, Any] = {"state": "all" if include_archived else "active"}
        if ids:
            variables["ids"] = ids
        out = []
        for b in self._pages(client, q.BOARDS, "data.boards", self.board_page_size, **variables):
            if b.get("state") == "deleted" or (b.get("type") or "board") != kind:
                continue
            if b.get("state") == "archived" and not include_archived:
                continue
            out.append({"id": str(b["id"]), "name": b.get("name"), "state": b.get("state"),
                        "columns": [column_settings(c) for c in b.get("columns") or [] if isinstance(c, dict)]})
        return out

    def list_boards(self, client: HttpClient, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """[{id, name, state}] of the boards a picker can offer."""
        return [{k: b[k] for k in ("id", "name", "state")}
                for b in self.fetch_boards(client, include_archived=include_archived)]

    def prepare(self, client: HttpClient, ctx: StreamContext) -> dict[str, Any]:
        archived = bool(ctx.metadata.get("include_archived_boards"))
        boards = self.fetch_boards(client, board_ids(ctx.metadata), include_archived=archived)
        parents = {sub: {"id": b["id"], "name": b.get("name")} for b in boards for sub in subitems_boards(b)}
        if parents:
            for sub in self.fetch_boards(client, list(parents), include_archived=archived, kind="sub_items_board"):
                boards.append({**sub, "parent_board": parents[sub["id"]]})
        return {"users": self.fetch_users(client), "board_info": boards,
                "users_fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    # --- streams -----------------------------------------------------------------------------------------------

    def streams(self, ctx: StreamContext) -> list[Stream]:
        path = split_url(ctx.metadata.get("api_url") or self.api_url)[1]
        users = users_by_id(ctx.metadata)
        out: list[Stream] = []
        boards = {b.id: b for b in (Board(info, ctx.metadata) for info in ctx.metadata.get("board_info") or [])}
        for board in boards.values():
            out += [self._items(board, users, path), self._removals(board, users, path, boards)]
        return out

    def _items(self, board: Board, users: dict[str, dict[str, Any]], path: str) -> Stream:
        return Stream(
            name=f"items:{board.id}", entity="tasks", path=path, method="POST",
            body={"query": q.ITEMS_PAGE, "variables": {"board": [board.id], "limit": self.page_size}},
            paginator=GraphQLCursor("data.boards.0.items_page.cursor", "cursor", q.NEXT_ITEMS_PAGE,
                                    next_cursor_path="data.next_items_page.cursor",
                                    next_records_path="data.next_items_page.items"),
            records_path="data.boards.0.items_page.items",
            cursor_field="updated_at", cursor_ceiling=iso_utc,
            since=lambda cursor: {"json": {"variables": {"qp": updated_since(cursor)}}},
            normalize=lambda record, ctx: normalize_item(record, board, users),
        )

    def _removals(self, board: Board, users: dict[str, dict[str, Any]], path: str,
                  boards: dict[str, Board]) -> Stream:
        """A removed item is read with its own board's columns: a subitem's removal may be logged on its parent
        board (monday logs subitem events with parent_board_id)."""
        def own_board(item: dict[str, Any]) -> Board:
            return boards.get(str((item.get("board") or {}).get("id")), board)

        first_from = iso_utc(time.time() - FIRST_LOOK_BACK.total_seconds())
        return Stream(
            name=f"removals:{board.id}", entity="tasks", path=path, method="POST",
            body={"query": q.ACTIVITY, "variables": {"board": [board.id], "from": first_from}},
            paginator=PageNumber(self.activity_page_size, in_variables=True),
            records_path="data.boards.0.activity_logs",
            cursor_field="created_at", cursor_ceiling=lambda started: str(int(started * 1e7)),
            since=lambda cursor: {"json": {"variables": {"from": iso_utc(log_time(cursor) or 0)}}},
            enrich=lambda client, records, ctx: self._attach_items(client, records, path),
            normalize=lambda record, ctx: None,  # the log entry itself is not a task; its items are (`related`)
            related=lambda record, ctx: [("tasks", row) for row in (normalize_item(i, own_board(i), users)
                                                                     for i in record.get("_items") or []) if row],
        )

    def _attach_items(self, client: HttpClient, records: list[dict[str, Any]], path: str) -> None:
        """Each removed/restored item once per page (the newest event), with its current state from `items`."""
        first: dict[str, dict[str, Any]] = {}
        for record in records:  # activity logs come newest first
            for item_id in removed_item_ids(record):
                first.setdefault(item_id, record)
        ids = list(first)
        for start in range(0, len(ids), ITEMS_BY_ID_MAX):
            chunk = ids[start:start + ITEMS_BY_ID_MAX]
            payload = client.post_json(path, json={"query": q.ITEMS_BY_ID,
                                                   "variables": {"ids": chunk, "limit": len(chunk)}}) or {}
            for item in (payload.get("data") or {}).get("items") or []:
                if isinstance(item, dict) and str(item.get("id")) in first:
                    first[str(item["id"])].setdefault("_items", []).append(item)

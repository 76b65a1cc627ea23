"""A fake monday.com GraphQL API (POST /v2) built from ../shared/fixtures/monday.

It answers the documents `connectors.monday.queries` sends — `me`, `users(limit:, page:)`,
`boards(ids:, limit:, page:, state:)`, `boards(ids:) { items_page(limit:, query_params:) }`, root
`next_items_page(cursor:, limit:)`, `boards(ids:) { activity_logs(from:, limit:, page:) }` and root
`items(ids:, exclude_nonactive: false)` — by reading the root field and the variables (it is not a GraphQL
parser). What it reproduces:
- items_page returns active items only, `limit` at most 500; its cursor names the rest of that result set and
  lives 60 minutes from the walk's first request (the fake's clock: `advance(s)`), or until
  `expire_cursors()` (now, or after N more item-page requests); an expired cursor gets the fixture error with
  HTTP 200 and `data.next_items_page: null`;
- `query_params.rules` on `__last_updated__` (UPDATED_AT, greater_than_or_equals, ["EXACT", "YYYY-MM-DD"]);
- a per-minute complexity budget (`budget_per_minute`, each query costs about 10 per item asked for): a query
  that does not fit gets COMPLEXITY_BUDGET_EXHAUSTED (fixture shape, HTTP 200) with `retry_in_seconds` until the
  window resets; `complexity { before after query reset_in_x_seconds }` is answered when asked for;
- a wrong token is HTTP 401 (body constructed); `unauthorized = True` answers every request with the HTTP-200
  UserUnauthorizedException fixture;
- `script`: replies (status, body[, headers]) played, in order, to the next item-page requests (None lets one
  through); `requests`: every parsed body with its headers.
Test helpers: `add_board`, `add_item` (`parent=`: a subitem), `subitems_board`, `update_item`, `archive_item` / `delete_item` / `restore_item` (which
also write the activity log entry monday would), `seed_fixture_board()`.
"""
from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from tests.fakes.server import FakeServer, send_json

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "monday")
if not os.path.isdir(FIXTURES):
    FIXTURES = "/work/shared/fixtures/monday"
BOARD = "1234567890"
CURSOR_LIFETIME = 3600
NOT_AUTHENTICATED = {"errors": [{"message": "Not Authenticated", "extensions": {"code": "UNAUTHENTICATED",
                                                                              "status_code": 401}}]}  # constructed
STATUS_LABELS = {"0": "Working on it", "1": "Done", "2": "Stuck"}


def fixture(name: str) -> Any:
    with open(os.path.join(FIXTURES, name)) as fh:
        return json.load(fh)


def column(col_id: str, title: str, kind: str, labels: dict | None = None, done: list | None = None) -> dict:
    settings = {"labels": labels, "done_colors": done} if labels is not None else {}
    return {"id": col_id, "title": title, "type": kind, "settings_str": json.dumps(settings)}


def cell(col_id: str, kind: str, text: str | None = None, value: Any = None, *, raw: str | None = None,
         **extra: Any) -> dict:
    """A column value as monday returns it: `value` is JSON-encoded here (`raw` is sent as is)."""
    encoded = raw if raw is not None else (None if value is None else json.dumps(value))
    return {"id": col_id, "type": kind, "text": text if text is not None else "", "value": encoded, **extra}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


FIXTURE_COLUMNS = [
    column("person", "Owner", "people"),
    column("status", "Status", "status", STATUS_LABELS, [1]),
    column("date4", "Due date", "date"),
    column("text", "Account", "text"),
    column("numbers", "Amount", "numbers"),
    column("link", "Deal link", "link"),
]


class FakeMonday(FakeServer):
    base_path = "/v2"

    def __init__(self, token: str = "monday-test-token") -> None:
        super().__init__()
        self.token = token
        self.users = [{"id": "4012345", "name": "Jon Snow", "email": "Jon.Snow@example.com", "enabled": True},
                      {"id": "4012346", "name": "Dana Manager", "email": "dana.manager@example.com", "enabled": True}]
        self.boards: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.skew = 0.0
        self.budget_per_minute = 10_000_000
        self._window: tuple[float, float] | None = None   # (window start, complexity used)
        self.cursors: dict[str, dict[str, Any]] = {}
        self._expire_after: int | None = None
        self.script: list[Any] = []
        self.unauthorized = False
        self.exhausted = 0  # how many queries got COMPLEXITY_BUDGET_EXHAUSTED
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next_id = 9_900_000_000

    # --- clock, cursors, budget --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        self.skew += max(0.0, float(seconds))

    def expire_cursors(self, after_requests: int = 0) -> None:
        """Expire every cursor now, or when the `after_requests`-th item-page request from now arrives."""
        with self._lock:
            if after_requests <= 0:
                for c in self.cursors.values():
                    c["expired"] = True
            else:
                self._expire_after = after_requests

    def _charge(self, cost: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        now = self.now()
        start, used = self._window or (now, 0.0)
        if now >= start + 60:
            start, used = now, 0.0
        reset = max(1, math.ceil(start + 60 - now))
        left = self.budget_per_minute - used
        if cost > left:
            self._window = (start, used)
            self.exhausted += 1
            error = fixture("error_complexity_budget_exhausted.json")
            error["errors"][0]["extensions"].update(complexity=cost, complexity_budget_left=int(left),
                                                    complexity_budget_limit=self.budget_per_minute,
                                                    retry_in_seconds=reset)
            return error, {}
        self._window = (start, used + cost)
        return None, {"before": int(left), "after": int(left - cost), "query": cost, "reset_in_x_seconds": reset}

    # --- data helpers ------------------------------------------------------------------------------------------

    def add_board(self, board_id: str, name: str, columns: list[dict] | None = None, *, state: str = "active",
                  kind: str = "board") -> dict[str, Any]:
        board = {"id": str(board_id), "name": name, "state": state, "type": kind,
                 "columns": copy.deepcopy(columns if columns is not None else FIXTURE_COLUMNS)}
        self.boards[str(board_id)] = board
        self.logs.setdefault(str(board_id), [])
        return board

    def add_item(self, board_id: str, name: str, cells: list[dict] | None = None, *, item_id: str | None = None,
                 updated_at: str | None = None, created_at: str | None = None, state: str = "active",
                 group: dict | None = None, parent: str | None = None) -> dict[str, Any]:
        """An item of `board_id`; with `parent`, a subitem (its board is then the parent board's subitems board,
        `subitems_board`) of that item."""
        if item_id is None:
            self._next_id += 1
            item_id = str(self._next_id)
        stamp = updated_at or iso(self.now())
        item = {"id": str(item_id), "name": name, "state": state,
                "url": f"https://example-team.monday.com/boards/{board_id}/pulses/{item_id}",
                "created_at": created_at or stamp, "updated_at": stamp, "creator_id": "4012345",
                "group": group or {"id": "topics", "title": "This week"}, "column_values": list(cells or []),
                "parent_item": {"id": str(parent)} if parent is not None else None, "_board": str(board_id)}
        self.items[str(item_id)] = item
        return item

    def subitems_board(self, parent_board: str, board_id: str, columns: list[dict] | None = None) -> dict[str, Any]:
        """The subitems board of `parent_board` (type sub_items_board, named as monday names it), and the
        parent's subitems column (type `subtasks`, `boardIds` in its settings) that points at it."""
        parent = self.boards[str(parent_board)]
        parent["columns"].append({"id": "subitems", "title": "Subitems", "type": "subtasks", "settings_str": json.dumps(
            {"allowMultipleItems": True, "itemTypeName": "column.subtasks.title", "displayType": "BOARD_INLINE",
             "boardIds": [int(board_id)]})})
        return self.add_board(board_id, f"Subitems of {parent['name']}", columns, kind="sub_items_board")

    def update_item(self, item_id: str, name: str | None = None, cells: list[dict] | None = None) -> None:
        item = self.items[str(item_id)]
        if name is not None:
            item["name"] = name
        for new in cells or []:
            item["column_values"] = [new if c["id"] == new["id"] else c for c in item["column_values"]]
        item["updated_at"] = iso(self.now())
        self._log(item, "update_name" if name is not None else "update_column_value")

    def _log(self, item: dict[str, Any], event: str, board: str | None = None) -> None:
        stamp = self.now()
        self.logs.setdefault(board or item["_board"], []).append({
            "id": str(uuid.uuid4()), "event": event, "entity": "pulse", "account_id": "123456",
            "user_id": "4012345", "created_at": str(int(stamp * 1e7)),
            "data": json.dumps({"board_id": int(item["_board"]), "group_id": item["group"]["id"],
                                "pulse_id": int(item["id"]), "pulse_name": item["name"]})})

    def _set_state(self, item_id: str, state: str, event: str, logged_on: str | None = None) -> None:
        item = self.items[str(item_id)]
        item["state"], item["updated_at"] = state, iso(self.now())
        self._log(item, event, logged_on)

    def archive_item(self, item_id: str) -> None:
        self._set_state(item_id, "archived", "archive_pulse")

    def delete_item(self, item_id: str, *, logged_on: str | None = None) -> None:
        """`logged_on`: the board whose activity log records it (monday may log a subitem's on its parent's)."""
        self._set_state(item_id, "deleted", "delete_pulse", logged_on)

    def restore_item(self, item_id: str) -> None:
        self._set_state(item_id, "active", "restore_pulse")

    def seed_fixture_board(self) -> dict[str, Any]:
        """Board 1234567890 "Deal desk tasks" with the four fixture items (first page + two next pages)."""
        board = self.add_board(BOARD, "Deal desk tasks")
        pages = [fixture("boards_items_page_CONSTRUCTED.json")["data"]["boards"][0]["items_page"],
                 fixture("next_items_page_CONSTRUCTED.json")["data"]["next_items_page"],
                 fixture("next_items_page_last_CONSTRUCTED.json")["data"]["next_items_page"]]
        for page in pages:
            for raw in page["items"]:
                item = self.add_item(BOARD, raw["name"], copy.deepcopy(raw["column_values"]), item_id=raw["id"],
                                     updated_at=raw["updated_at"], created_at="2026-04-20T09:00:00Z",
                                     state=raw["state"], group=raw["group"])
                item["url"] = f"https://example-team.monday.com/boards/{BOARD}/pulses/{raw['id']}"
        return board

    def item_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "items_page(" in r.get("query", "")]

    # --- HTTP ----------------------------------------------------------------------------------------------------

    def handle_post(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            body = json.loads(handler.rfile.read(length) or b"{}")
        except ValueError:
            return send_json(handler, 400, {"errors": [{"message": "invalid JSON"}]})
        if handler.path.split("?")[0] != "/v2":
            return send_json(handler, 404, {"errors": [{"message": "not found"}]})
        query, variables = str(body.get("query") or ""), body.get("variables") or {}
        with self._lock:
            self.requests.append({**body, "headers": dict(handler.headers)})
            item_page = "items_page(" in query
            scripted = self.script.pop(0) if item_page and self.script else None
            if item_page and self._expire_after is not None:
                self._expire_after -= 1
                if self._expire_after <= 0:
                    self._expire_after = None
                    for c in self.cursors.values():
                        c["expired"] = True
        if handler.headers.get("Authorization") != self.token:
            return send_json(handler, 401, NOT_AUTHENTICATED)
        if self.unauthorized:
            return send_json(handler, 200, fixture("error_user_unauthorized_http200.json"))
        if scripted is not None:
            status, reply, *headers = scripted
            return send_json(handler, status, reply, headers[0] if headers else None)
        with self._lock:
            status, reply = self._answer(query, variables)
        send_json(handler, status, reply)

    def _answer(self, query: str, v: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "me {" in query:
            me = {k: self.users[0][k] for k in ("id", "name", "email")}
            return self._reply(query, 10, {"me": {**me, "account": {"id": "123456", "name": "Example",
                                                                    "slug": "example-team"}}})
        if "users(" in query:
            limit, page = int(v.get("limit") or 25), int(v.get("page") or 1)
            users = [{k: u[k] for k in ("id", "name", "email", "enabled")} for u in self.users]
            return self._reply(query, 10 + limit, {"users": users[(page - 1) * limit: page * limit]})
        if "next_items_page(" in query:
            return self._next_page(query, v)
        if "items_page(" in query:
            return self._first_page(query, v)
        if "activity_logs(" in query:
            return self._activity(query, v)
        if "exclude_nonactive" in query:
            ids = [str(i) for i in v.get("ids") or []]
            if len(ids) > 100 or int(v.get("limit") or 25) > 100:
                return 200, {"errors": [{"message": "limit is 100",
                                         "extensions": {"code": "InvalidArgumentException"}}]}
            found = [{**self._public(self.items[i]), "board": {"id": self.items[i]["_board"]}}
                     for i in ids if i in self.items]
            return self._reply(query, 10 + 10 * len(ids), {"items": found})
        if "boards(" in query:
            return self._boards(query, v)
        return 200, {"errors": [{"message": "unknown query", "extensions": {"code": "GraphQLValidationError"}}]}

    def _reply(self, query: str, cost: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        error, complexity = self._charge(cost)
        if error is not None:
            return 200, error
        if "complexity {" in query:
            data = {"complexity": complexity, **data}
        return 200, {"data": data, "account_id": 123456}

    def _public(self, item: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("_")}
        return out

    def _boards(self, query: str, v: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        limit, page, state = int(v.get("limit") or 25), int(v.get("page") or 1), v.get("state") or "active"
        boards = [b for b in self.boards.values() if not v.get("ids") or b["id"] in {str(i) for i in v["ids"]}]
        boards = [b for b in boards if state == "all" or b["state"] == state]
        return self._reply(query, 10 + 10 * limit, {"boards": copy.deepcopy(boards[(page - 1) * limit: page * limit])})

    def _matches(self, item: dict[str, Any], qp: dict[str, Any] | None) -> bool:
        for rule in (qp or {}).get("rules") or []:
            if rule.get("column_id") != "__last_updated__" or rule.get("compare_attribute") != "UPDATED_AT" \
                    or rule.get("operator") != "greater_than_or_equals" or rule["compare_value"][0] != "EXACT":
                raise ValueError(f"the fake does not support the rule {rule}")
            if item["updated_at"][:10] < rule["compare_value"][1]:
                return False
        return True

    def _first_page(self, query: str, v: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        limit = int(v.get("limit") or 25)
        if limit > 500:
            return 200, {"errors": [{"message": "limit must be at most 500",
                                     "extensions": {"code": "InvalidArgumentException"}}]}
        board_ids = [str(b) for b in v.get("board") or []]
        try:
            ids = [i for i, it in self.items.items() if it["_board"] in board_ids and it["state"] == "active"
                   and self._matches(it, v.get("qp"))]
        except ValueError as exc:
            return 200, {"errors": [{"message": str(exc), "extensions": {"code": "InvalidArgumentException"}}]}
        page, cursor = self._take(ids, limit, self.now())
        boards = [{"id": b, "items_page": {"cursor": cursor, "items": page}} for b in board_ids if b in self.boards]
        return self._reply(query, 10 + 10 * limit, {"boards": boards})

    def _take(self, ids: list[str], limit: int, created: float) -> tuple[list[dict[str, Any]], str | None]:
        page = [self._public(self.items[i]) for i in ids[:limit]]
        rest = ids[limit:]
        if not rest:
            return page, None
        token = uuid.uuid4().hex
        self.cursors[token] = {"ids": rest, "created": created, "expired": False}
        return page, token

    def _next_page(self, query: str, v: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        limit = int(v.get("limit") or 25)
        cursor = self.cursors.get(str(v.get("cursor")))
        if cursor is None or cursor["expired"] or self.now() - cursor["created"] > CURSOR_LIFETIME:
            return 200, fixture("error_cursor_expired_CONSTRUCTED.json")
        ids = [i for i in cursor["ids"] if i in self.items and self.items[i]["state"] == "active"]
        page, token = self._take(ids, limit, cursor["created"])
        return self._reply(query, 10 + 10 * limit, {"next_items_page": {"cursor": token, "items": page}})

    def _activity(self, query: str, v: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        limit, page = int(v.get("limit") or 25), int(v.get("page") or 1)
        since = v.get("from")
        floor = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1e7 if since else 0
        boards = []
        for b in [str(x) for x in v.get("board") or []]:
            logs = sorted((e for e in self.logs.get(b, []) if int(e["created_at"]) >= floor),
                          key=lambda e: -int(e["created_at"]))
            boards.append({"id": b, "activity_logs": copy.deepcopy(logs[(page - 1) * limit: page * limit])})
        return self._reply(query, 10 + limit, {"boards": boards})

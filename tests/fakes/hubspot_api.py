"""A local fake of HubSpot's CRM API (v3 objects, search, v4 associations, owners, pipelines, properties,
OAuth token endpoint), reproducing the shapes in ../shared/fixtures/hubspot and the documented behaviour:

- every property value is a string; unset ones are null; ids are strings, v4 `toObjectId` numbers;
- list: `GET /crm/v3/objects/{type}?limit=&after=&properties=&archived=`, ordered by id, `paging.next.after`
  absent on the last page (max 100 per page); URLs longer than `max_url` answer 414;
- search: `POST /crm/v3/objects/{type}/search` with filterGroups (EQ/GT/GTE/LT/LTE), one sort, `limit` (≤ 200)
  and `after` (an offset): `after + limit > 10,000` answers 400 (the 10k cap); archived records never match;
- v4 batch read answers 207 with `numErrors`/`errors` for ids scripted in `assoc_failures` (transient) and
  NO_ASSOCIATIONS_FOUND for ids without associations; more than `assoc_page` links come with paging;
- rate limits: a rolling `window` (10 s) of `max_requests` per portal → 429 TEN_SECONDLY_ROLLING with
  policyName and X-HubSpot-RateLimit-* headers; `storm` scripts a run of 429s; search requests also count
  against `search_per_second` per portal (→ 429 SECONDLY, the real body);
- OAuth: `POST /oauth/v1/token` (authorization_code, refresh_token) issues 30-minute tokens; `expire(token)`
  makes a token answer 401 EXPIRED_AUTHENTICATION;
- per-portal data: each token belongs to one portal (two workspaces, two portals).
Knobs are plain attributes a test may change while the server runs. Loopback only.
"""
from __future__ import annotations

import bisect
import copy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, send_json

FIXTURES = "/work/shared/fixtures/hubspot"
SEARCH_CAP = 10_000
MODIFIED = {"contacts": "lastmodifieddate"}


def modified_property(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


def hs_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse(value: Any) -> Any:
    """Filter/sort key: datetimes and numbers compare as such, other strings as text."""
    if value is None:
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return text


class Store:
    """One object type's records: explicit dicts plus an optional lazy generator (cheap 100k-row portals)."""

    def __init__(self) -> None:
        self.records: dict[int, dict] = {}
        self.factory: Callable[[int], dict] | None = None
        self.generated: range = range(0)
        self._ids: list[int] | None = None

    def ids(self) -> list[int]:
        if self._ids is None:
            self._ids = sorted(set(self.records) | set(self.generated))
        return self._ids

    def get(self, object_id: int) -> dict | None:
        if object_id in self.records:
            return self.records[object_id]
        if object_id in self.generated and self.factory:
            return self.factory(object_id)
        return None

    def put(self, record: dict) -> None:
        new = int(record["id"]) not in self.records and int(record["id"]) not in self.generated
        self.records[int(record["id"])] = record
        if new:
            self._ids = None


@dataclass
class Portal:
    portal_id: int
    stores: dict[str, Store] = field(default_factory=dict)
    # (from type, to type) -> {from id: [(to id, [association types])]}
    associations: dict[tuple[str, str], dict[str, list]] = field(default_factory=dict)
    assoc_factory: Callable[[str, str, str], list] | None = None
    owners: list[dict] = field(default_factory=list)
    pipelines: list[dict] = field(default_factory=list)
    properties: dict[str, list[dict]] = field(default_factory=dict)
    hits: deque = field(default_factory=deque)   # request times in the rolling window
    search_hits: deque = field(default_factory=deque)  # search request times in the last second

    def store(self, object_type: str) -> Store:
        return self.stores.setdefault(object_type, Store())


def record(object_id: int | str, object_type: str, modified: datetime, archived: bool = False, **props: Any) -> dict:
    """A HubSpot-shaped record: every property a string (or None), timestamps in HubSpot's format."""
    stamp = hs_time(modified)
    created = hs_time(modified - timedelta(days=30))
    properties = {"hs_object_id": str(object_id), "createdate": created, modified_property(object_type): stamp}
    properties.update({k: (None if val is None else str(val)) for k, val in props.items()})
    out = {"id": str(object_id), "properties": properties, "createdAt": created, "updatedAt": stamp,
           "archived": archived}
    if archived:
        out["archivedAt"] = stamp
    return out


def _load(name: str) -> Any:
    with open(f"{FIXTURES}/{name}") as fh:
        return json.load(fh)


class FakeHubSpot(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.portals: dict[int, Portal] = {}
        self.tokens: dict[str, int] = {}          # access token -> portal id
        self.refresh_tokens: dict[str, int] = {}
        self.expired: set[str] = set()
        self.revoked_refresh: set[str] = set()
        self.expire_every_refresh = False         # a refreshed token is dead on arrival (second 401)
        self.codes: dict[str, int] = {}           # OAuth authorization codes -> portal
        self.max_url = 4000
        self.max_requests: int | None = None      # per portal per window; None = no limit
        self.window = 10.0
        self.storm = 0                            # next N API requests answer 429
        self.search_per_second: int | None = None  # search requests per portal per second; None = no limit
        self.storm_headers = {"Retry-After": "1"}
        self.assoc_failures: dict[str, int] = {}  # from id -> how many more reads fail for it
        self.assoc_page = 500
        self.on_request: Callable[[str, str, int], None] | None = None  # (method, path, number)
        self.block: Callable[[str, str, int], bool] | None = None
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.log: list[tuple[str, str, dict]] = []
        self.violations = 0                       # 429s answered by the rolling-window limit
        self.search_violations = 0                # 429 SECONDLY answered by the search limit
        self.token_requests: list[dict] = []
        self._lock = threading.RLock()
        self._counter = 0

    # -- setup -------------------------------------------------------------------------------------------------
    def add_portal(self, portal_id: int, token: str, *, pipelines: bool = True) -> Portal:
        portal = Portal(portal_id)
        if pipelines:
            portal.pipelines = _load("pipelines_deals_CONSTRUCTED.json")["results"]
        owners = _load("owners_list.json")["results"] + _load("owners_list_last_page_CONSTRUCTED.json")["results"]
        portal.owners = copy.deepcopy(owners)
        for object_type in ("deals", "contacts", "companies"):
            portal.properties[object_type] = [{"name": "hs_object_id", "type": "number", "hubspotDefined": True}]
        self.portals[portal_id] = portal
        self.tokens[token] = portal_id
        return portal

    def portal_of(self, token: str) -> Portal:
        return self.portals[self.tokens[token]]

    def issue_tokens(self, portal_id: int) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            access, refresh = f"at-{portal_id}-{self._counter}", f"rt-{portal_id}-{self._counter}"
            self.tokens[access] = portal_id
            self.refresh_tokens[refresh] = portal_id
            if self.expire_every_refresh and self._counter > 1:
                self.expired.add(access)
        return {"token_type": "bearer", "access_token": access, "refresh_token": refresh, "expires_in": 1800}

    def expire(self, token: str) -> None:
        self.expired.add(token)

    def on_stop(self) -> None:
        self.release.set()

    def requests_to(self, fragment: str) -> list[tuple[str, str, dict]]:
        return [r for r in self.log if fragment in r[1]]

    # -- HTTP --------------------------------------------------------------------------------------------------
    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        self._handle(handler, "GET", None)

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        self._handle(handler, "POST", raw)

    def _handle(self, handler, method: str, raw: bytes | None) -> None:
        split = urlsplit(handler.path)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        if path == "/oauth/v1/token":
            return self._token(handler, parse_qs((raw or b"").decode()))
        body = json.loads(raw) if raw else {}
        with self._lock:
            self.log.append((method, path, body if method == "POST" else query))
            number = len(self.log)
        if len(handler.path) > self.max_url:
            return send_json(handler, 414, {"status": "error", "message": "URI Too Long"})
        token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token in self.expired:
            return send_json(handler, 401, _load("error_401_expired_token.json"))
        if token not in self.tokens:
            return send_json(handler, 401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                            "message": "Authentication credentials not found."})
        portal = self.portal_of(token)
        limited = self._rate(portal) or self._search_rate(portal, method, path)
        if limited is not None:
            return send_json(handler, 429, *limited)
        if self.on_request:
            self.on_request(method, path, number)
        if self.block and self.block(method, path, number):
            self.blocked.set()
            self.release.wait()
        try:
            status, payload = self._route(portal, method, path, query, body)
        except KeyError as exc:
            status, payload = 404, {"status": "error", "message": f"not found: {exc}"}
        send_json(handler, status, payload, self._limit_headers(portal))

    def _search_rate(self, portal: Portal, method: str, path: str):
        """The search endpoints' own per-second limit, counted apart from the burst window (HubSpot answers
        429 with policyName SECONDLY past it)."""
        if self.search_per_second is None or method != "POST" or not path.endswith("/search"):
            return None
        with self._lock:
            now = time.monotonic()
            while portal.search_hits and portal.search_hits[0] <= now - 1.0:
                portal.search_hits.popleft()
            if len(portal.search_hits) >= self.search_per_second:
                self.search_violations += 1
                return _load("error_429_secondly_legacy.json"), {"X-HubSpot-RateLimit-Interval-Milliseconds": "1000"}
            portal.search_hits.append(now)
        return None

    def _limit_headers(self, portal: Portal) -> dict[str, str]:
        if self.max_requests is None:
            return {}
        return {"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
                "X-HubSpot-RateLimit-Max": str(self.max_requests),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.max_requests - len(portal.hits)))}

    def _rate(self, portal: Portal):
        with self._lock:
            if self.storm > 0:
                self.storm -= 1
                return _load("error_429_ten_secondly_rolling_CONSTRUCTED.json"), dict(self.storm_headers)
            if self.max_requests is None:
                return None
            now = time.monotonic()
            while portal.hits and portal.hits[0] <= now - self.window:
                portal.hits.popleft()
            if len(portal.hits) >= self.max_requests:
                self.violations += 1
                headers = {k: v for k, v in _load("error_429_ten_secondly_rolling_CONSTRUCTED.headers.json").items()
                           if k not in ("status", "Content-Type", "Retry-After")}
                headers["X-HubSpot-RateLimit-Max"] = str(self.max_requests)
                return _load("error_429_ten_secondly_rolling_CONSTRUCTED.json"), headers
            portal.hits.append(now)
        return None

    def _token(self, handler, form: dict[str, list[str]]) -> None:
        form = {k: v[-1] for k, v in form.items()}
        self.token_requests.append(form)
        if not form.get("client_id") or not form.get("client_secret"):
            return send_json(handler, 400, {"status": "BAD_CLIENT_ID", "message": "missing client credentials"})
        if form.get("grant_type") == "refresh_token":
            portal_id = self.refresh_tokens.get(form.get("refresh_token", ""))
            if portal_id is None or form.get("refresh_token") in self.revoked_refresh:
                return send_json(handler, 400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})
        elif form.get("grant_type") == "authorization_code":
            portal_id = self.codes.pop(form.get("code", ""), None)
            if portal_id is None:
                return send_json(handler, 400, {"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code"})
        else:
            return send_json(handler, 400, {"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type"})
        send_json(handler, 200, self.issue_tokens(portal_id))

    # -- routes ------------------------------------------------------------------------------------------------
    def _route(self, portal: Portal, method: str, path: str, query: dict, body: dict):
        parts = path.strip("/").split("/")
        if path == "/account-info/v3/details":
            return 200, {"portalId": portal.portal_id, "timeZone": "US/Eastern", "companyCurrency": "USD",
                         "uiDomain": "app.hubspot.com"}
        if path == "/crm/v3/owners":
            archived = query.get("archived") == "true"
            return self._list([o for o in portal.owners if bool(o.get("archived")) == archived], query, 100)
        if path == "/crm/v3/pipelines/deals":
            return 200, {"results": portal.pipelines}
        if parts[:3] == ["crm", "v3", "properties"]:
            return 200, {"results": portal.properties.get(parts[3], [])}
        if parts[:3] == ["crm", "v4", "associations"] and parts[-2:] == ["batch", "read"]:
            return self._associations(portal, parts[3], parts[4], body)
        if parts[:3] == ["crm", "v3", "objects"]:
            object_type = parts[3]
            store = portal.store(object_type)
            if len(parts) == 4 and method == "GET":
                return self._list_objects(store, query)
            if parts[4:] == ["search"]:
                return self._search(store, object_type, body)
            if parts[4:] == ["batch", "read"]:
                found = [store.get(int(i["id"])) for i in body.get("inputs", [])]
                return 200, {"status": "COMPLETE", "results": [
                    _project(r, body.get("properties")) for r in found if r is not None]}
        return 404, {"status": "error", "message": f"no route {method} {path}"}

    def _list(self, items: list[dict], query: dict, max_limit: int):
        limit = min(int(query.get("limit", 10)), max_limit)
        start = int(query["after"]) if query.get("after") else 0
        page = {"results": items[start:start + limit]}
        if start + limit < len(items):
            page["paging"] = {"next": {"after": str(start + limit)}}
        return 200, page

    def _list_objects(self, store: Store, query: dict):
        limit = min(int(query.get("limit", 10)), 100)
        archived = query.get("archived") == "true"
        props = query["properties"].split(",") if query.get("properties") else None
        ids = store.ids()
        i = bisect.bisect_left(ids, int(query["after"])) if query.get("after") else 0
        out = []
        while i < len(ids) and len(out) < limit:
            rec = store.get(ids[i])
            if rec is not None and bool(rec.get("archived")) == archived:
                out.append(_project(rec, props))
            i += 1
        page: dict[str, Any] = {"results": out}
        while i < len(ids):  # the next id that will actually be listed
            rec = store.get(ids[i])
            if rec is not None and bool(rec.get("archived")) == archived:
                page["paging"] = {"next": {"after": str(ids[i]), "link": f"?after={ids[i]}"}}
                break
            i += 1
        return 200, page

    def _search(self, store: Store, object_type: str, body: dict):
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
        if limit > 200:
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": "limit must be <= 200"}
        if after + limit > SEARCH_CAP:
            return 400, _load("error_400_search_beyond_10000_CONSTRUCTED.json")
        groups = body.get("filterGroups") or []
        rows = []
        for object_id in store.ids():
            rec = store.get(object_id)
            if rec is None or rec.get("archived"):
                continue
            if groups and not any(all(_match(rec, f) for f in g.get("filters", [])) for g in groups):
                continue
            rows.append(rec)
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return 400, {"status": "error", "category": "VALIDATION_ERROR", "message": "only one sort is supported"}
        if sorts:
            prop = sorts[0]["propertyName"]
            rows.sort(key=lambda r: (_parse(_value(r, prop)) is None, _parse(_value(r, prop)) or 0),
                      reverse=sorts[0].get("direction") == "DESCENDING")
        page: dict[str, Any] = {"total": len(rows),
                                "results": [_project(r, body.get("properties")) for r in rows[after:after + limit]]}
        if after + limit < len(rows):
            page["paging"] = {"next": {"after": str(after + limit)}}
        return 200, page

    def _associations(self, portal: Portal, from_type: str, to_type: str, body: dict):
        table = portal.associations.get((from_type, to_type), {})
        results, errors = [], []
        for item in body.get("inputs", []):
            from_id = str(item["id"])
            with self._lock:
                failing = self.assoc_failures.get(from_id, 0)
                if failing:
                    self.assoc_failures[from_id] = failing - 1
            if failing:
                errors.append({"status": "error", "category": "INTERNAL_ERROR", "message": "try again",
                               "context": {"fromObjectId": [from_id]}})
                continue
            links = table.get(from_id)
            if links is None and portal.assoc_factory:
                links = portal.assoc_factory(from_type, to_type, from_id)
            if not links:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                               "message": f"No {to_type} is associated with {from_type} {from_id}.",
                               "context": {"fromObjectId": [from_id]}, "links": {}, "errors": []})
                continue
            start = int(item.get("after") or 0)
            chunk = links[start:start + self.assoc_page]
            result: dict[str, Any] = {"from": {"id": from_id}, "to": [
                {"toObjectId": int(to_id), "associationTypes": types or [
                    {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]} for to_id, types in chunk]}
            if start + self.assoc_page < len(links):
                result["paging"] = {"next": {"after": str(start + self.assoc_page), "link": None}}
            results.append(result)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                   "startedAt": "2026-05-01T07:25:37.401Z", "completedAt": "2026-05-01T07:25:37.433Z"}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return 207, payload
        return 200, payload


def _value(rec: dict, prop: str) -> Any:
    if prop == "hs_object_id":
        return rec["id"]
    return (rec.get("properties") or {}).get(prop)


def _match(rec: dict, f: dict) -> bool:
    have, want = _parse(_value(rec, f["propertyName"])), _parse(f.get("value"))
    if have is None:
        return False
    op = f["operator"]
    try:
        return {"EQ": have == want, "GT": have > want, "GTE": have >= want, "LT": have < want,
                "LTE": have <= want, "NEQ": have != want}[op]
    except TypeError:
        return False


def _project(rec: dict, props: list[str] | None) -> dict:
    """The record as HubSpot returns it for a property list: asked-for properties (null when unset)."""
    out = {k: val for k, val in rec.items() if k != "properties"}
    have = rec.get("properties") or {}
    wanted = props or ["hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate"]
    out["properties"] = {p: have.get(p) for p in wanted if p in have or props}
    return out

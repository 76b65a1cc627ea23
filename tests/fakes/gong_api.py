"""A fake Gong v2 API on loopback, built from ../shared/fixtures/gong and Gong's documented behaviour.

- Basic auth (`access_key:secret`); anything else is 401 `{"errors": ["Access denied"]}`.
- `GET /v2/workspaces`; `GET /v2/users` with `?cursor=` paging (`records.cursor` present while more remain).
- `POST /v2/calls/extensive`: `filter.primaryUserIds` / `fromDateTime` (inclusive) / `toDateTime` (exclusive)
  on the call start, ascending by start; the same body plus `"cursor"` for the next page. `context` is only
  returned when `contentSelector.context` is asked for and `parties` only with `exposedFields.parties`.
  An empty window is the real API's 404 "No calls found corresponding to the provided filters".
- `POST /v2/calls/transcript`: `filter.callIds` → `callTranscripts[]` of {callId, transcript: [{speakerId,
  topic, sentences[{start, end, text}]}]} from `transcripts` (call id → monologues; seed with
  `load("calls_transcript_CONSTRUCTED.json")`); no known call among the ids is the "No calls found" 404.
  `calls/extensive` also honours `filter.callIds`.
- Rate limit: at most `per_second` requests in any rolling second (default 3), else 429 with `Retry-After`;
  `throttle(n)` scripts n 429s (Retry-After 2, the fixture) before the next answers. Violations are counted;
  `clock` (default time.monotonic) times the window.
"""
from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, send_json

FIXTURES = "/work/shared/fixtures/gong"


def load(name: str) -> Any:
    with open(f"{FIXTURES}/{name}") as fh:
        return json.load(fh)


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def make_call(call_id: str, user_id: str, started: str, *, title: str = "Call", parties: list | None = None,
              context: list | None = None, duration: int = 600) -> dict[str, Any]:
    return {"metaData": {"id": str(call_id), "url": f"https://app.gong.io/call?id={call_id}", "title": title,
                         "scheduled": started, "started": started, "duration": duration,
                         "primaryUserId": str(user_id), "direction": "Conference", "system": "Zoom",
                         "scope": "External", "media": "Video", "language": "eng", "isPrivate": False},
            "context": context or [], "parties": parties or []}


def make_user(user_id: str, first: str, last: str, email: str) -> dict[str, Any]:
    return {"id": str(user_id), "emailAddress": email, "firstName": first, "lastName": last, "active": True,
            "title": "Account Executive"}


class FakeGong(FakeServer):
    def __init__(self, access_key: str = "key", secret: str = "secret", *, page_size: int = 100,
                 per_second: float | None = 3) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{access_key}:{secret}".encode()).decode()
        self.page_size = page_size
        self.per_second = per_second
        self.users: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.transcripts: dict[str, list[dict[str, Any]]] = {}   # call id → monologues
        self.log: list[tuple[str, str, dict, Any]] = []   # (method, path, query, body)
        self.violations = 0
        self.clock = time.monotonic   # the rolling second's clock (a test may share a virtual one)
        self._throttle = 0
        self._recent: deque[float] = deque()
        self._lock = threading.RLock()

    # -- knobs ---------------------------------------------------------------------------------------------
    def throttle(self, times: int = 1) -> None:
        with self._lock:
            self._throttle += times

    def calls_requests(self) -> list[dict[str, Any]]:
        return [body for method, path, _q, body in self.log if path == "/v2/calls/extensive"]

    def transcript_requests(self) -> list[dict[str, Any]]:
        return [body for method, path, _q, body in self.log if path == "/v2/calls/transcript"]

    # -- plumbing ------------------------------------------------------------------------------------------
    def _gate(self, handler: BaseHTTPRequestHandler, method: str, body: Any) -> tuple[str, dict] | None:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.log.append((method, url.path, query, body))
            if handler.headers.get("Authorization") != self.auth:
                send_json(handler, 401, load("error_401_CONSTRUCTED.json"))
                return None
            if self._throttle > 0:
                self._throttle -= 1
                send_json(handler, 429, load("error_429_CONSTRUCTED.json"), {"Retry-After": "2"})
                return None
            if self.per_second:
                now = self.clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self.per_second:
                    self.violations += 1
                    send_json(handler, 429, load("error_429_CONSTRUCTED.json"), {"Retry-After": "1"})
                    return None
                self._recent.append(now)
        return url.path, query

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        gate = self._gate(handler, "GET", None)
        if gate is None:
            return
        path, query = gate
        if path == "/v2/workspaces":
            return send_json(handler, 200, {"requestId": "r", "workspaces": [{"id": "623457276584334",
                                                                             "name": "Example Co"}]})
        if path == "/v2/users":
            return self._page(handler, self.users, "users", query.get("cursor"))
        send_json(handler, 404, {"errors": [f"unknown path {path}"]})

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}") if length else {}
        gate = self._gate(handler, "POST", body)
        if gate is None:
            return
        path, _query = gate
        if path == "/v2/calls/transcript":
            return self._transcript(handler, body)
        if path != "/v2/calls/extensive":
            return send_json(handler, 404, {"errors": [f"unknown path {path}"]})
        flt = body.get("filter") or {}
        users = flt.get("primaryUserIds")
        if users is not None and (not isinstance(users, list) or not users):
            return send_json(handler, 400, {"requestId": "r", "errors": [
                "filter.primaryUserIds: must not be empty but can be null or can be omitted"]})
        selector = body.get("contentSelector") or {}
        with self._lock:
            chosen = []
            for call in sorted(self.calls, key=lambda c: _when(c["metaData"]["started"])):
                start = _when(call["metaData"]["started"])
                if users is not None and call["metaData"]["primaryUserId"] not in users:
                    continue
                if flt.get("callIds") is not None and call["metaData"]["id"] not in [str(i) for i in flt["callIds"]]:
                    continue
                if flt.get("fromDateTime") and start < _when(flt["fromDateTime"]):
                    continue
                if flt.get("toDateTime") and start >= _when(flt["toDateTime"]):
                    continue
                out = copy.deepcopy(call)
                if not selector.get("context"):
                    out.pop("context", None)
                if not (selector.get("exposedFields") or {}).get("parties"):
                    out.pop("parties", None)
                chosen.append(out)
        if not chosen:
            return send_json(handler, 404, load("error_404_no_calls.json"))
        self._page(handler, chosen, "calls", body.get("cursor"))

    def _transcript(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        ids = [str(i) for i in (body.get("filter") or {}).get("callIds") or []]
        with self._lock:
            chosen = [{"callId": i, "transcript": copy.deepcopy(self.transcripts[i])}
                      for i in ids if i in self.transcripts]
        if not chosen:
            return send_json(handler, 404, load("error_404_no_calls.json"))
        self._page(handler, chosen, "callTranscripts", body.get("cursor"))

    def _page(self, handler: BaseHTTPRequestHandler, items: list, key: str, cursor: str | None) -> None:
        offset = 0
        if cursor:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])
            except (ValueError, IndexError):
                return send_json(handler, 400, {"errors": ["cursor: invalid"]})
        chunk = items[offset:offset + self.page_size]
        records: dict[str, Any] = {"totalRecords": len(items), "currentPageSize": len(chunk),
                                   "currentPageNumber": offset // self.page_size}
        if offset + self.page_size < len(items):
            records["cursor"] = base64.urlsafe_b64encode(f"{key}:{offset + self.page_size}".encode()).decode()
        send_json(handler, 200, {"requestId": "r", "records": records, key: chunk})

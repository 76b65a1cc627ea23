"""A local fake of HubSpot's CRM list endpoint, for tests that need a real HTTP server.

It imitates `GET /crm/v3/objects/deals` (served at `/v1/deals`): records shaped like HubSpot deals (string
property values, ISO-8601 UTC `hs_lastmodifieddate`), ordered by (hs_lastmodifieddate, id), paged with an
opaque `after` cursor under `paging.next.after` that is absent on the last page, and filtered by `since`
(hs_lastmodifieddate > since) the way an incremental sync asks. Knobs let a test script failures (429 with
Retry-After, 5xx, 401), hang on a page to kill a sync mid-walk, or return the same cursor forever.

Every knob is a plain attribute that a test may change while the server runs. It never touches the network
beyond 127.0.0.1.
"""
from __future__ import annotations

import base64
import copy
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer, send_json as _send


def make_deal(
    deal_id: int | str,
    *,
    modified: str,
    dealname: str | None = None,
    amount: str = "1200.50",
    dealstage: str = "appointmentscheduled",
    closedate: str = "2026-03-31",
) -> dict[str, Any]:
    """One HubSpot-shaped deal record (every property a string, as HubSpot returns them)."""
    return {
        "id": str(deal_id),
        "properties": {
            "dealname": dealname or f"Deal {deal_id}",
            "amount": amount,
            "dealstage": dealstage,
            "closedate": closedate,
            "hs_lastmodifieddate": modified,
        },
        "updatedAt": modified,
        "archived": False,
    }


def make_deals(count: int, *, first_id: int = 1001, start: str = "2026-01-01T00:00:00Z") -> list[dict[str, Any]]:
    """`count` deals with ids first_id… and modification times one minute apart from `start`."""
    base = _parse_time(start)
    return [
        make_deal(first_id + i, modified=(base + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        for i in range(count)
    ]


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    time: float


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        prefix, _, number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
    except ValueError:  # bad base64 or bytes that aren't text
        prefix, number = "", ""
    if prefix != "offset" or not number.isdigit():
        raise ValueError(f"Invalid 'after' cursor: {cursor}")
    return int(number)


class PagedApi(FakeServer):
    http11 = False
    """The fake server; `with PagedApi(records) as api:` serves at `api.url` until the block ends.

    fail_plan entries are consumed in order; each fires on the first request whose 1-based number is
    >= its `on_request` (or on the next request when it has none) and may repeat `times` times:
    `{"on_request": 2, "status": 429, "headers": {"Retry-After": "1"}, "body": {...}, "times": 1}`.
    """

    def __init__(
        self,
        records: list[dict[str, Any]] | None = None,
        *,
        page_size: int = 100,
        fail_plan: list[dict[str, Any]] | None = None,
        require_token: str | None = None,
        block_on_page: int | None = None,
        loop_cursor: bool = False,
    ) -> None:
        super().__init__()
        self.records = records if records is not None else []
        self.page_size = page_size
        self.fail_plan = [dict(entry) for entry in fail_plan or []]
        self.require_token = require_token
        self.block_on_page = block_on_page
        self.loop_cursor = loop_cursor
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def on_stop(self) -> None:
        self.release.set()  # never leave a handler hanging on a blocked page

    def _next_failure(self, number: int) -> dict[str, Any] | None:
        if not self.fail_plan or self.fail_plan[0].get("on_request", number) > number:
            return None
        failure = self.fail_plan[0]
        failure["times"] = failure.get("times", 1) - 1
        if failure["times"] <= 0:
            self.fail_plan.pop(0)
        return failure

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append(LoggedRequest("GET", split.path, query, time.time()))
            failure = self._next_failure(len(self.requests))
        if failure is not None:
            body = failure.get("body", {"status": "error", "message": "scripted failure"})
            return _send(handler, failure["status"], body, failure.get("headers"))
        if self.require_token is not None:
            if handler.headers.get("Authorization") != f"Bearer {self.require_token}":
                return _send(handler, 401, {
                    "status": "error", "category": "INVALID_AUTHENTICATION",
                    "message": "Authentication credentials not found.",
                })
        if split.path != "/v1/deals":
            return _send(handler, 404, {"status": "error", "message": f"no route {split.path}"})
        try:
            limit = int(query.get("limit", self.page_size))
            offset = _decode_cursor(query["after"]) if "after" in query else 0
            since = _parse_time(query["since"]) if "since" in query else None
        except ValueError as exc:
            return _send(handler, 400, {"status": "error", "category": "VALIDATION_ERROR", "message": str(exc)})

        if self.block_on_page is not None and offset // max(limit, 1) + 1 == self.block_on_page:
            self.blocked.set()
            self.release.wait()

        with self._lock:
            rows = copy.deepcopy(self.records)
        if since is not None:
            rows = [r for r in rows if _parse_time(r["properties"]["hs_lastmodifieddate"]) > since]
        rows.sort(key=lambda r: (_parse_time(r["properties"]["hs_lastmodifieddate"]), r["id"].zfill(20)))
        page: dict[str, Any] = {"results": rows[offset:offset + limit]}
        if self.loop_cursor:
            page["paging"] = {"next": {"after": _encode_cursor(limit)}}
        elif offset + limit < len(rows):
            page["paging"] = {"next": {"after": _encode_cursor(offset + limit)}}
        _send(handler, 200, page)

"""The monday.com side of the shared HTTP client: GraphQL errors that arrive with HTTP 200, the complexity budget,
and expired item cursors.

monday.com answers application errors with HTTP 200 and an `errors[]` array, sometimes next to partial `data`:
a page is only taken when `errors` is absent, so partial data is never mistaken for a whole page. What each
error means here:
- `COMPLEXITY_BUDGET_EXHAUSTED` (the per-minute complexity budget): wait `extensions.retry_in_seconds`, retry;
- `FIELD_LIMIT_EXCEEDED` / `RATE_LIMIT_EXCEEDED` / concurrency limits (HTTP 200 or 429, old and new error shapes):
  wait `retry_in_seconds` (or `Retry-After`), retry; a wait beyond the retry budget (a daily cap) stops the sync
  with RateLimited — the committed pages and cursors stay and the next run resumes;
- an expired `next_items_page` cursor (60 minutes after the walk's first request): PageStateExpired with
  `restart=True`, so the sync engine walks that board again from its saved incremental point;
- unauthenticated / `UserUnauthorizedException`, HTTP 401/403: AuthError "reconnect Monday.com";
- anything else: ConnectorError naming the code, message and path.

Pacing: every query asks for `complexity { before after query reset_in_x_seconds }`. When the budget left
(`after`) would not pay for another query as costly as the last one, the client sleeps until the budget resets
before sending the next request, so a long walk slows down instead of running into the exhausted error (which
is still handled, for budgets shared with the customer's other integrations).

It also drops GraphQL variables a query does not declare: the sync engine sends a stream's variables (board,
filters) with every page, and `next_items_page` only takes the cursor and the limit.
It never logs or puts the token into messages.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

import httpx

from core.errors import AuthError, ConnectorError, PageStateExpired, RateLimited
from core.sync.http import HttpClient

LABEL = "Monday.com"
BUDGET_CODES = {"COMPLEXITY_BUDGET_EXHAUSTED", "ComplexityException"}
LIMIT_CODES = {"FIELD_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED", "RateLimitExceeded", "maxConcurrencyExceeded",
               "CONCURRENCY_LIMIT_EXCEEDED", "IP_RATE_LIMIT_EXCEEDED", "DAILY_LIMIT_EXCEEDED"}
AUTH_CODES = {"UserUnauthorizedException", "UNAUTHENTICATED", "Unauthenticated", "USER_UNAUTHORIZED",
              "UserUnauthroizedException"}  # (the misspelling is what versions before 2024-01 sent)
CURSOR_CODES = {"CursorException", "CursorExpiredError", "CURSOR_EXPIRED"}
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def errors_of(payload: Any) -> list[dict[str, Any]]:
    """The body's errors in one shape: `errors[]` (2024-01+) or the older top-level `error_code`."""
    if not isinstance(payload, dict):
        return []
    found = payload.get("errors")
    if isinstance(found, list) and found:
        return [e if isinstance(e, dict) else {"message": str(e)} for e in found]
    if isinstance(found, dict):
        return [found]
    if payload.get("error_code") or payload.get("error_message"):
        return [{"message": payload.get("error_message"), "extensions": {
            "code": payload.get("error_code"), "status_code": payload.get("status_code"),
            **(payload.get("error_data") if isinstance(payload.get("error_data"), dict) else {})}}]
    return []


def code_of(error: dict[str, Any]) -> str:
    ext = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
    return str(ext.get("code") or error.get("error_code") or error.get("code") or "")


def retry_in(error: dict[str, Any]) -> float | None:
    """`retry_in_seconds` wherever this error shape keeps it."""
    ext = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
    for where in (ext, ext.get("error_data"), error.get("error_data"), error):
        if isinstance(where, dict) and where.get("retry_in_seconds") is not None:
            try:
                return max(0.0, float(where["retry_in_seconds"]))
            except (TypeError, ValueError):
                return None
    return None


def _status_of(error: dict[str, Any]) -> int | None:
    ext = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
    try:
        return int(ext.get("status_code") or error.get("status_code") or 0) or None
    except (TypeError, ValueError):
        return None


def retry_after_from_body(response: httpx.Response) -> float | None:
    """An HTTP 429 carrying a monday error body: its `retry_in_seconds` (else the shared client reads Retry-After)."""
    try:
        errors = errors_of(response.json())
    except ValueError:
        return None
    return retry_in(errors[0]) if errors else None


def declared_only(body: Any) -> Any:
    """The request body with only the variables its query declares."""
    if not isinstance(body, dict) or not isinstance(body.get("variables"), dict) or "query" not in body:
        return body
    declared = set(_VARIABLE.findall(str(body["query"])))
    return {**body, "variables": {k: v for k, v in body["variables"].items() if k in declared}}


class MondayClient(HttpClient):
    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, pace: bool = True, **kwargs: Any):
        super().__init__(*args, retry_after_from=retry_after_from_body, **kwargs)
        self._clock = clock
        self.pace = pace
        self.budget_left: float | None = None
        self.last_cost: float | None = None
        self._reset_at: float | None = None
        self.paced = 0  # how often the client waited for the budget to reset (reported in tests)

    def _wait_for_budget(self) -> None:
        if not self.pace or self.budget_left is None or self.last_cost is None or self._reset_at is None:
            return
        if self.budget_left >= self.last_cost:
            return
        wait = max(0.0, self._reset_at - self._clock())
        self.budget_left = None  # the budget is whole again once we have waited
        if wait > 0:
            self.paced += 1
            self._sleep(wait)

    def _note_complexity(self, payload: Any) -> None:
        data = payload.get("data") if isinstance(payload, dict) else None
        complexity = data.get("complexity") if isinstance(data, dict) else None
        if not isinstance(complexity, dict):
            return
        try:
            self.budget_left = float(complexity["after"])
            self.last_cost = float(complexity.get("query") or (float(complexity["before"]) - self.budget_left))
            self._reset_at = self._clock() + float(complexity.get("reset_in_x_seconds") or 60)
        except (KeyError, TypeError, ValueError):
            self.budget_left = None

    def request(self, method: str, url: str, *, json: Any = None, **kwargs: Any) -> httpx.Response:
        json = declared_only(json)
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_budget()
            try:
                response = super().request(method, url, json=json, **kwargs)
            except RateLimited as exc:  # HTTP 429 past the retry budget
                raise RateLimited(f"{LABEL} rate limit reached: {exc.message}. The sync stopped with everything "
                                  "fetched so far saved and resumes on the next run.",
                                  **{**exc.details, "retry_after": exc.retry_after}) from exc
            except AuthError as exc:
                message = exc.message if "reconnect" in exc.message else f"{exc.message}; reconnect {LABEL}"
                raise AuthError(message, **exc.details) from exc
            payload = self.parse_json(response)
            self._note_complexity(payload)
            errors = errors_of(payload)
            if not errors:
                return response
            self._raise_or_wait(errors[0], method, response.request.url.path, attempt)

    def _raise_or_wait(self, error: dict[str, Any], method: str, path: str, attempt: int) -> None:
        code, status = code_of(error), _status_of(error)
        message = str(error.get("message") or error.get("error_message") or code)[:200]
        details = {"connector": self.connector, "method": method, "path": path, "code": code or None}
        if code in BUDGET_CODES or code in LIMIT_CODES or status == 429:
            self.stats.rate_limited += 1
            wait = retry_in(error)
            if wait is None:
                wait = 60.0 if code in BUDGET_CODES else self.retry.backoff(attempt)
            if wait > self.retry.max_retry_after or attempt >= self.retry.max_attempts:
                raise RateLimited(f"{LABEL} limit reached ({code or status}: {message}); retry in {wait:.0f} s. "
                                  "The sync stopped with everything fetched so far saved and resumes on the next "
                                  "run.", retry_after=wait, attempts=attempt, **details)
            self.budget_left = None
            self._wait(wait, method, path, f"answered {code or status}", attempt)
            return
        if code in CURSOR_CODES or "cursor" in message.lower() and "expired" in message.lower():
            raise PageStateExpired(
                f"{LABEL} expired the item cursor this sync was paging with (cursors live 60 minutes from a "
                "board walk's first request); the board is read again from its saved point.",
                restart=True, **details)
        if code in AUTH_CODES or status in (401, 403):
            raise AuthError(f"{LABEL} refused the API token ({message}): reconnect {LABEL} with a token that "
                            "can read these boards", status=status, **details)
        where = error.get("path")
        raise ConnectorError(f"monday: {method} {path} returned error {code or status or ''}: {message}"
                             + (f" (at {'.'.join(map(str, where))})" if isinstance(where, list) else ""), **details)

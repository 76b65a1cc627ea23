"""The Google Drive side of the shared HTTP client: Google's error envelope, its 403 rate limits, and the one
request parameter Drive doesn't have.

- Errors arrive as `{"error": {"code", "message", "errors": [{"domain", "reason", "message", ...}]}}`; the
  `reason` decides what a failure means, so every error this client raises names it (details["reason"]).
- Rate limits are 429 *or* 403 `userRateLimitExceeded` / `rateLimitExceeded`. The shared client retries 429
  itself; a 403 is final there (it is usually a permission problem), so this client retries the rate-limit
  403s with the same RetryPolicy backoff and raises RateLimited when they outlast it. Other 403s stay
  AuthError ("reconnect"), except `exportSizeLimitExceeded`, a ConnectorError the content module names.
- An invalid or expired changes page token is 400 `invalid` on `pageToken`: PageStateExpired, so the engine
  restarts a resumed walk from its saved start token and `prepare` falls back to a full listing.
- Streams declare `folderId` as a partition parameter (one listing per folder); it becomes the
  `'<id>' in parents` clause of `q` here, the way Gong's client folds its filter into the body.
It never puts tokens or query strings into messages.
"""
from __future__ import annotations

from typing import Any

import httpx

from core.errors import AuthError, ConnectorError, PageStateExpired, RateLimited
from core.sync.http import HttpClient

LABEL = "Google Drive"
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
EXPORT_TOO_LARGE = "exportSizeLimitExceeded"


def quote(value: str) -> str:
    """A string literal for a Drive query (`q`): single quotes and backslashes escaped."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def google_error(response: httpx.Response | None) -> dict[str, Any]:
    """{"code", "message", "reason", "location"} from Google's error envelope (empty when it isn't one)."""
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return {}
    first = next((e for e in error.get("errors") or [] if isinstance(e, dict)), {})
    return {"code": error.get("code"), "message": error.get("message") or first.get("message"),
            "reason": first.get("reason") or error.get("status"), "location": first.get("location")}


def _fold(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params or "folderId" not in params:
        return params
    out = dict(params)
    clause = f"{quote(out.pop('folderId'))} in parents"
    out["q"] = f"{clause} and {out['q']}" if out.get("q") else clause
    return out


class DriveClient(HttpClient):
    """HttpClient + Google's error reasons. `scope` is set by the connector: the folder tree a sync resolves
    files against (its lookups are cached for the life of this client, i.e. one sync)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, on_response=self._remember, **kwargs)
        self._last: httpx.Response | None = None
        self.scope: Any = None

    def _remember(self, response: httpx.Response) -> None:
        self._last = response

    def request(self, method: str, url: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        params = _fold(params)
        attempt = 0
        while True:
            attempt += 1
            self._last = None
            try:
                return super().request(method, url, params=params, **kwargs)
            except ConnectorError as exc:
                status = exc.details.get("status")
                error = google_error(self._last) if status else {}
                if status == 403 and error.get("reason") in RATE_LIMIT_REASONS:
                    self.stats.rate_limited += 1
                    if attempt < self.retry.max_attempts:
                        self._wait(self.retry.backoff(attempt), method.upper(), exc.details.get("path", url),
                                   f"answered 403 {error['reason']}", attempt)
                        continue
                raise self._translate(exc, error, attempt) from None

    def _translate(self, exc: ConnectorError, error: dict[str, Any], attempt: int) -> ConnectorError:
        """The same failure with Google's reason and message instead of a raw body excerpt."""
        if not error or exc.details.get("status") == 401:  # a 401 here already says why and "reconnect"
            return exc
        details = {**exc.details, "reason": error.get("reason")}
        where = f"{self.connector}: {details.get('method', '')} {details.get('path', '')}".rstrip()
        said = f"answered {details.get('status')} {error.get('reason') or ''}: {error.get('message') or ''}".strip()
        reason, status = error.get("reason"), details.get("status")
        if status == 403 and reason in RATE_LIMIT_REASONS:
            details["attempts"] = attempt
            return RateLimited(f"{where} {said} (still after {attempt} attempts); the sync resumes where it "
                               "stopped on the next run", **details)
        if status == 400 and error.get("location") == "pageToken":
            return PageStateExpired(f"{where} {said}: the saved changes page token is no longer valid", **details)
        if status == 403 and reason != EXPORT_TOO_LARGE:
            return AuthError(f"{where} {said}; check that the connected Google account can read this file or "
                             f"reconnect {self.label}", **details)
        return type(exc)(f"{where} {said}", **details)

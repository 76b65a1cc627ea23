"""The one HTTP client every connector shares: retries, backoff, rate limiting and error mapping.

Connectors describe streams; this module is where a request actually leaves the process. It retries what a
retry can fix (5xx, transport errors, 429 within budget), waits the way the source asks (`Retry-After` or a
connector's own header), spaces calls with a token bucket, and turns every failure into the Pandora error tree
with a message that names the connector, method, path and status.

OAuth sources hand it an `AuthRefresher`: on a 401 the client asks it once for new headers (a refreshed access
token), retries the request with them and keeps them for later requests; a second 401, or a refresh that fails,
is an AuthError telling the user to reconnect the source. `on_response` sees every response first (Salesforce
tracks its daily API usage there and raises RateLimited to pause before the cap).

It must never put headers (Authorization, API tokens) or query strings (which may carry keys) into error
messages or logs, and never read the environment: base URL, credentials and limits are passed in.
"""
from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import httpx

from core.errors import AuthError, ConnectorError, PandoraError, RateLimited, RetriableError

log = logging.getLogger("pandora.http")

Sleep = Callable[[float], None]
RetryAfterFrom = Callable[[httpx.Response], "float | None"]
OnResponse = Callable[[httpx.Response], None]


class AuthRefresher(Protocol):
    """Gets fresh credentials after a 401 (an OAuth refresh-token grant) and persists them itself.

    `refresh()` returns the headers to send from now on (e.g. {"Authorization": "Bearer …"}) and raises any
    PandoraError (or other exception) when the source refuses: the client turns that into "reconnect <Label>".
    """

    def refresh(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; `max_retry_after` separates a pause from a daily cap."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def backoff(self, attempt: int) -> float:
        """Full jitter (uniform over [0, capped exponential]) so parallel syncs don't retry in lockstep."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class RateLimiter:
    """A thread-safe token bucket: `rate_per_second` sustained, up to `burst` calls back to back.

    Callers reserve a token under the lock and sleep outside it, so concurrent callers queue up in order
    instead of all waking at once.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = float(rate_per_second)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()
        self.acquired = 0
        self.waited = 0.0

    def acquire(self, path: str | None = None) -> float:
        """Take one token, sleeping until it is due; returns the seconds waited. (`path`, the request's, is for
        limiters that pace some endpoints on their own, such as HubSpot's search; a token bucket ignores it.)"""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.acquired += 1
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class ClientStats:
    """Counters a sync run reports: every attempt is a request, every re-attempt a retry."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds (fractional allowed) or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _body_excerpt(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body: the status alone has to do
        return "<unreadable body>"
    return " ".join(text.split())[:limit]


class HttpClient:
    """One `httpx.Client` per connection, with Pandora's retry, rate-limit and error policy around it."""

    def __init__(
        self,
        base_url: str,
        *,
        connector: str,
        headers: dict[str, str] | None = None,
        auth: AuthRefresher | None = None,
        label: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        retry_after_from: RetryAfterFrom | None = None,
        on_response: OnResponse | None = None,
    ) -> None:
        self.connector = connector
        self.label = label or connector.replace("_", " ").title()
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter
        self.stats = ClientStats()
        self._sleep = sleep
        self._retry_after_from = retry_after_from
        self._on_response = on_response
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.parse_json(self.request("GET", url, **kwargs))

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self.parse_json(self.request("POST", url, **kwargs))

    def parse_json(self, response: httpx.Response) -> Any:
        """The decoded body (None when empty); a body that isn't JSON is a ConnectorError, not a ValueError."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            method, path = response.request.method, response.request.url.path
            raise ConnectorError(
                f"{self.connector}: {method} {path} answered {response.status_code} with invalid JSON: "
                f"{_body_excerpt(response)}",
                connector=self.connector, method=method, path=path, status=response.status_code,
            ) from exc

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one logical request; returns a 2xx/3xx response or raises from the Pandora error tree."""
        method = method.upper()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            request = self._client.build_request(
                method, url, params=params, json=json, data=data, headers=headers
            )
            path = request.url.path
            if self.rate_limiter is not None:
                self.rate_limiter.acquire(path)
            self.stats.requests += 1
            try:
                response = self._client.send(request)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {str(exc)[:200]}"
                if attempt >= self.retry.max_attempts:
                    raise RetriableError(
                        f"{self.connector}: {method} {path} failed after {attempt} attempts ({failure})",
                        connector=self.connector, method=method, path=path, attempts=attempt,
                    ) from exc
                self._wait(self.retry.backoff(attempt), method, path, failure, attempt)
                continue
            except httpx.HTTPError as exc:  # redirects, undecodable content: retrying won't help
                raise ConnectorError(
                    f"{self.connector}: {method} {path} failed: {type(exc).__name__}: {str(exc)[:200]}",
                    connector=self.connector, method=method, path=path,
                ) from exc

            if self._on_response is not None:
                self._on_response(response)
            status = response.status_code
            if status < 400:
                return response
            if status == 401 and self.auth is not None and not refreshed:
                refreshed = True
                self._refresh(method, path, response)
                attempt -= 1  # the retry with a fresh token is not a failed attempt
                continue
            hint = None
            if status == 429:
                self.stats.rate_limited += 1
                hint = self._retry_after(response)
                if hint is not None and hint > self.retry.max_retry_after:
                    raise self._error(method, path, response, attempt, retry_after=hint)
            if status not in self.retry.retry_statuses or attempt >= self.retry.max_attempts:
                raise self._error(method, path, response, attempt, retry_after=hint)
            delay = hint if hint is not None else self.retry.backoff(attempt)
            self._wait(delay, method, path, f"answered {status}", attempt)

    def _refresh(self, method: str, path: str, response: httpx.Response) -> None:
        """One refresh per logical request: new headers on success, AuthError "reconnect <Label>" otherwise."""
        self.stats.retries += 1
        try:
            fresh = self.auth.refresh()
        except Exception as exc:  # whatever the token endpoint said, the user's way out is to reconnect
            why = exc.message if isinstance(exc, PandoraError) else f"{type(exc).__name__}"
            raise AuthError(
                f"{self.label} rejected the stored login and refreshing it failed ({why}): reconnect {self.label}",
                connector=self.connector, method=method, path=path, status=response.status_code,
            ) from exc
        self._client.headers.update(fresh)
        log.info("%s: %s %s answered 401; token refreshed, retrying once", self.connector, method, path)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """The connector's own signal first (it knows its headers), then the standard `Retry-After`."""
        if self._retry_after_from is not None:
            custom = self._retry_after_from(response)
            if custom is not None:
                return max(0.0, float(custom))
        return parse_retry_after(response.headers.get("Retry-After"))

    def _wait(self, delay: float, method: str, path: str, why: str, attempt: int) -> None:
        self.stats.retries += 1
        log.debug(
            "%s: %s %s %s; retry %d/%d in %.2fs",
            self.connector, method, path, why, attempt + 1, self.retry.max_attempts, delay,
        )
        if delay > 0:
            self._sleep(delay)

    def _error(
        self, method: str, path: str, response: httpx.Response, attempt: int, *, retry_after: float | None
    ) -> ConnectorError:
        status = response.status_code
        message = f"{self.connector}: {method} {path} answered {status}: {_body_excerpt(response)}"
        details = dict(connector=self.connector, method=method, path=path, status=status, attempts=attempt)
        if status == 401:
            return AuthError(f"{message}; reconnect {self.label}", **details)
        if status == 403:
            return AuthError(message, **details)
        if status == 429:
            return RateLimited(message, retry_after=retry_after, **details)
        if status >= 500:
            return RetriableError(message, **details)
        return ConnectorError(message, **details)

"""HubSpot's burst limit, kept the way HubSpot counts it: at most N requests in any rolling window.

A token bucket (core.sync.http.RateLimiter) can only be made safe for a rolling window by keeping its burst
small (burst + rate x window <= N), and then every pause of ours — writing a page to the database between
requests — is capacity lost for good. This limiter remembers when its last N requests were sent and lets a
request go as soon as fewer than N were sent in the window before it, so time spent writing is made up by
the next requests: the sync runs at the limit, never above it. `headroom` requests are left for clock
skew between our send times and HubSpot's arrival times (and for anything else using the same app).

It has the interface the shared HTTP client expects of a rate limiter (`acquire()`); it never sleeps while
holding its lock.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class RollingWindowLimiter:
    def __init__(self, max_requests: int, window: float = 10.0, *, headroom: int = 2,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.capacity = max(1, int(max_requests) - max(0, headroom))
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._behind = 0.0  # waits the sleep function cut short (a test's, which only records them)
        self.acquired = 0
        self.waited = 0.0

    def acquire(self, path: str | None = None) -> float:
        """Block until a request may be sent (and count it as sent); returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock() + self._behind
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.capacity:
                    self._sent.append(now)
                    self.acquired += 1
                    self.waited += waited
                    return waited
                wait = self._sent[0] + self.window - now + 0.001
            before = self._clock()
            self._sleep(wait)
            waited += wait
            with self._lock:  # time as this limiter sees it moves on by the wait either way: it never spins
                self._behind += max(0.0, wait - (self._clock() - before))


class SearchPacedLimiter:
    """HubSpot's two limits on one client: the burst limit counts every request, and the CRM search endpoints
    (`POST /crm/v3/objects/{type}/search`) have their own, a few requests per second per token, whatever the
    burst allows (a 429 SECONDLY past it). A search waits for its own window first and takes its burst slot
    last, so the burst limiter records the time the request really leaves."""

    def __init__(self, burst: RollingWindowLimiter, search: RollingWindowLimiter) -> None:
        self.burst = burst
        self.search = search

    def acquire(self, path: str | None = None) -> float:
        waited = self.search.acquire(path) if path and path.endswith("/search") else 0.0
        return waited + self.burst.acquire(path)

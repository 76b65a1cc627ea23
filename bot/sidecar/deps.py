"""What the sidecar's handlers share: the database, settings, the credentials vault and background jobs.

Built once by `api_routes` and closed over by every route; tests inject an httpx transport (outbound
callbacks), a `sleep` (no real waiting between retries) and call `jobs.join()` to wait for background work.
Nothing here reads the environment.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from core.credentials import Vault
from core.settings import Settings

log = logging.getLogger("pandora.sidecar")


class Jobs:
    """Background threads started by the sidecar (async skill runs, syncs), so they can be awaited."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, fn: Callable[[], Any], name: str) -> threading.Thread:
        def guarded() -> None:
            try:
                fn()
            except Exception:  # a background job has no caller left to answer: log it
                log.exception("sidecar job %s failed", name)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self.track(thread)
        thread.start()
        return thread

    def track(self, thread: threading.Thread | None) -> None:
        if thread is None:
            return
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def join(self, timeout: float = 30.0) -> bool:
        """Wait for every job started so far; True when all finished within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


@dataclass
class Deps:
    db: Any
    settings: Settings
    jobs: Jobs = field(default_factory=Jobs)
    transport: httpx.BaseTransport | None = None   # outbound webhook calls (tests: a MockTransport)
    sleep: Callable[[float], None] = time.sleep
    _vault: Vault | None = None

    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault.from_settings(self.settings)
        return self._vault

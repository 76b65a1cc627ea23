"""Shared by the sidecar tests (no tests of its own): a TestClient over the real routes, API keys made through
core.api_keys, webhook signing the way a sender would do it, and a local receiver for outbound callbacks."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.sidecar import Jobs, api_routes
from core.api_keys import create_api_key, ensure_webhook_secret
from core.credentials import Vault
from core.workspaces import create_workspace
from tests.fakes.server import FakeServer, send_json


class Api:
    """A client for one workspace: `api.get("/deals")` is GET /api/workspaces/{ws}/deals with its key."""

    def __init__(self, client: TestClient, workspace_id: str, key: str, jobs: Jobs) -> None:
        self.client, self.workspace_id, self.key, self.jobs = client, str(workspace_id), key, jobs

    @property
    def base(self) -> str:
        return f"/api/workspaces/{self.workspace_id}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str = "", **params):
        return self.client.get(self.base + path, params=params or None, headers=self.headers())

    def post(self, path: str, body=None):
        return self.client.post(self.base + path, json=body, headers=self.headers())


def make_client(db, settings, *, transport=None) -> tuple[TestClient, Jobs]:
    jobs = Jobs()
    app = Starlette(routes=api_routes(db, settings, jobs=jobs, transport=transport, sleep=lambda s: None))
    return TestClient(app, raise_server_exceptions=False), jobs


def new_workspace(db, name: str = "Sidecar") -> str:
    import uuid

    with db.connection() as conn:
        return str(create_workspace(conn, f"{name} {uuid.uuid4().hex[:6]}")["id"])


def new_key(db, workspace_id, label: str = "test") -> str:
    with db.connection() as conn:
        return create_api_key(conn, workspace_id, label)[1]


def webhook_secret_for(db, settings, workspace_id) -> str:
    with db.connection() as conn:
        return ensure_webhook_secret(conn, Vault.from_settings(settings), workspace_id)[0]


def signed(secret: str, body: dict | bytes, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers a sender computes (independently of the code under test)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"X-Pandora-Timestamp": str(ts), "X-Pandora-Signature": f"v1={digest}",
                 "Content-Type": "application/json"}


class Receiver(FakeServer):
    """Accepts POSTs (answering `statuses` in turn, then 200) and records (headers, raw body)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        super().__init__()
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        self._lock = threading.Lock()

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.received.append(({k: v for k, v in handler.headers.items()}, raw))
            status = self.statuses.pop(0) if self.statuses else 200
        send_json(handler, status, {"ok": status < 300})
        if status < 300:
            self.got.set()

"""A fake Fireflies GraphQL API (POST /graphql) built from ../shared/fixtures/fireflies.

Answers the three queries the connector sends — `user`, `users { user_id name email }` and
`transcripts(organizer_email:, fromDate:, limit:, skip:)` — from in-memory users and transcripts, newest first
like the real API, with `limit` capped at 50 (more is `invalid_arguments`). Errors come the Fireflies way: a
GraphQL `errors[]` array with `code` and `extensions.status`, with HTTP 200 unless `http_errors` is set.
Knobs: `script` (error bodies answered, in order, to the next transcripts requests), `daily_limit` (requests
beyond it get `too_many_requests`), `requests` (every parsed body, for assertions).
`transcript(id:)` answers `sentences` from `sentences` (transcript id → list, see `sentence`); an id not among
`transcripts` is the fixture's `object_not_found` error (a Transcript instead of a User)."""
from __future__ import annotations

import copy
import json
import os
import threading
import time
from datetime import datetime
from typing import Any

from tests.fakes.server import FakeServer, send_json

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "fireflies")
if not os.path.isdir(FIXTURES):
    FIXTURES = "/work/shared/fixtures/fireflies"


def fixture(name: str) -> Any:
    with open(os.path.join(FIXTURES, name)) as fh:
        return json.load(fh)


def error_body(code: str, message: str, status: int, **metadata: Any) -> dict[str, Any]:
    ext: dict[str, Any] = {"code": code, "status": status}
    if metadata:
        ext["metadata"] = metadata
    return {"data": None, "errors": [{"message": message, "code": code, "friendly": True, "extensions": ext}]}


def too_many_requests(retry_after_ms: float) -> dict[str, Any]:
    body = fixture("error_too_many_requests_CONSTRUCTED.json")
    body["errors"][0]["extensions"]["metadata"]["retryAfter"] = retry_after_ms
    return body


def sentence(index: int, speaker: str | None, text: str, start: float, speaker_id: int = 0) -> dict[str, Any]:
    """One Sentence (docs.fireflies.ai/schema/sentence): times are seconds, documented as strings."""
    return {"index": index, "speaker_id": speaker_id, "speaker_name": speaker, "text": text, "raw_text": text,
            "start_time": f"{start:.2f}", "end_time": f"{start + 2:.2f}"}


def not_found(object_type: str = "Transcript") -> dict[str, Any]:
    body = fixture("error_object_not_found.json")
    body["errors"][0]["message"] = f"{object_type} not found"
    body["errors"][0]["extensions"]["metadata"]["objectType"] = object_type
    return body


def transcript(tid: str, organizer: str, date_ms: int, **extra: Any) -> dict[str, Any]:
    rec = {"id": tid, "title": f"Call {tid}", "date": date_ms, "duration": 30.0, "organizer_email": organizer,
           "host_email": organizer, "participants": [organizer], "meeting_attendees": [], "speakers": [],
           "transcript_url": f"https://app.fireflies.ai/view/{tid}", "meeting_link": None, "summary": None}
    rec.update(extra)
    return rec


class FakeFireflies(FakeServer):
    def __init__(self, api_key: str = "ff-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.users: list[dict[str, Any]] = copy.deepcopy(fixture("users_CONSTRUCTED.json")["data"]["users"])
        self.transcripts: list[dict[str, Any]] = copy.deepcopy(fixture("transcripts_CONSTRUCTED.json")["data"]["transcripts"])
        self.script: list[dict[str, Any]] = []
        self.daily_limit: int | None = None
        self.http_errors = False
        self.requests: list[dict[str, Any]] = []
        self.sentences: dict[str, list[dict[str, Any]]] = {}   # transcript id → sentences
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return super().url + "/graphql"

    def transcript_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "transcripts(" in r.get("query", "")]

    def transcript_fetches(self) -> list[dict[str, Any]]:
        """The `transcript(id:)` requests (one call's sentences), not the `transcripts(...)` listings."""
        return [r for r in self.requests if "transcript(" in r.get("query", "")]

    def _send(self, handler, body: dict[str, Any]) -> None:
        status = 200
        if self.http_errors and body.get("errors"):
            status = int(body["errors"][0].get("extensions", {}).get("status", 400))
        send_json(handler, status, body)

    def handle_post(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            body = json.loads(handler.rfile.read(length) or b"{}")
        except ValueError:
            return send_json(handler, 400, {"errors": [{"message": "invalid JSON", "code": "bad_request"}]})
        if handler.path.split("?")[0] != "/graphql":
            return send_json(handler, 404, {"errors": [{"message": "not found"}]})
        with self._lock:
            self.requests.append(body)
            count = len(self.requests)
            scripted = self.script.pop(0) if self.script and "transcripts(" in body.get("query", "") else None
            # (the script is popped only by transcripts requests)
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._send(handler, fixture("error_auth_failed_CONSTRUCTED.json"))
        if self.daily_limit is not None and count > self.daily_limit:
            return self._send(handler, too_many_requests(time.time() * 1000 + 6 * 3600 * 1000))
        if scripted is not None:  # a None entry lets that request through
            return self._send(handler, scripted)
        query, variables = body.get("query", ""), body.get("variables") or {}
        if "transcripts(" in query:
            return self._send(handler, self._transcripts(variables))
        if "transcript(" in query:
            return self._send(handler, self._transcript(variables))
        if "users {" in query or "users{" in query:
            return self._send(handler, {"data": {"users": [
                {k: u.get(k) for k in ("user_id", "name", "email")} for u in self.users]}})
        if "user {" in query or "user{" in query:
            u = self.users[0]
            return self._send(handler, {"data": {"user": {k: u.get(k) for k in ("user_id", "name", "email")}}})
        return self._send(handler, error_body("invalid_arguments", "unknown query", 400))

    def _transcript(self, variables: dict[str, Any]) -> dict[str, Any]:
        tid = str(variables.get("id") or "")
        if not any(t["id"] == tid for t in self.transcripts):
            return not_found("Transcript")
        return {"data": {"transcript": {"id": tid, "sentences": copy.deepcopy(self.sentences.get(tid, []))}}}

    def _transcripts(self, variables: dict[str, Any]) -> dict[str, Any]:
        limit, skip = int(variables.get("limit") or 50), int(variables.get("skip") or 0)
        if limit > 50:
            return fixture("error_invalid_arguments.json")
        rows = list(self.transcripts)
        if variables.get("organizer_email"):
            rows = [t for t in rows if t.get("organizer_email") == variables["organizer_email"]]
        if variables.get("fromDate"):
            since = datetime.fromisoformat(variables["fromDate"].replace("Z", "+00:00")).timestamp() * 1000
            rows = [t for t in rows if t["date"] >= since]
        rows.sort(key=lambda t: (-t["date"], t["id"]))
        return {"data": {"transcripts": copy.deepcopy(rows[skip:skip + limit])}}

"""A local fake of Fireworks' OpenAI-compatible chat completions API, for tests of every CLASSIFY-tier caller.

`with FakeFireworks(replies=[...]) as fw:` serves `POST {fw.url}/chat/completions` (fw.url ends in
`/inference/v1`, so it is a drop-in `base_url` for `openai.OpenAI`) and `GET {fw.url}/models` on 127.0.0.1 until
the block ends. It checks `Authorization: Bearer <api_key>` (401 in OpenAI's error shape otherwise), records
each request body in `.requests` (and its headers, case-insensitive, in `.headers`), and answers with a real `chat.completion`
payload whose message content comes from, in order: the queue of `replies`, else `responder(request_json)`, else
`default_content`. A reply is a str (the content), a dict (JSON-encoded as the content) or a `Reply` (content
plus status, headers, delay, finish_reason, tool_calls) for per-request failures.

Knobs, all plain attributes a test may change while the server runs: `delay` (seconds before every answer, to
trigger client timeouts), `status` (+ `status_headers`, e.g. 429 with Retry-After, or 500: every request fails),
`invalid_json` (every content becomes text that is not JSON). It never touches the network beyond 127.0.0.1.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler

from typing import Any, Callable

from tests.fakes.server import FakeServer, send_json as _send

INVALID_JSON = "Sure! Here is the mapping: {entity: deals,"
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}


@dataclass
class Reply:
    content: str | dict | None = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] | None = None
    error: str | None = None   # message of the error body when status != 200


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which the openai SDK turns into APIStatusError subclasses."""
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"), "param": None,
                      "code": code}}


class FakeFireworks(FakeServer):
    base_path = "/inference/v1"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        replies: list[str | dict | Reply] | None = None,
        responder: Callable[[dict[str, Any]], str | dict | Reply] | None = None,
        default_content: str | dict = "OK",
        delay: float = 0.0,
        status: int | None = None,
        status_headers: dict[str, str] | None = None,
        invalid_json: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key          # None accepts any bearer token
        self.replies: list[str | dict | Reply] = list(replies or [])
        self.responder = responder
        self.default_content = default_content
        self.delay = delay
        self.status = status
        self.status_headers = dict(status_headers or {})
        self.invalid_json = invalid_json
        self.requests: list[dict[str, Any]] = []
        self.headers: list[Message] = []
        self._lock = threading.Lock()

    # -- handlers ------------------------------------------------------------------------------------------------

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.api_key is None:
            return handler.headers.get("Authorization", "").startswith("Bearer ")
        return handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        if not self._authorized(handler):
            return _send(handler, 401, error_body(401, "Invalid API key", "invalid_api_key"))
        if handler.path.rstrip("/") != "/inference/v1/models":
            return _send(handler, 404, error_body(404, f"no route {handler.path}"))
        _send(handler, 200, {"object": "list", "data": [
            {"id": "accounts/fireworks/models/deepseek-v3", "object": "model", "owned_by": "fireworks"}]})

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if handler.path.rstrip("/") != "/inference/v1/chat/completions":
            return _send(handler, 404, error_body(404, f"no route {handler.path}"))
        if not self._authorized(handler):
            return _send(handler, 401, error_body(401, "Invalid API key", "invalid_api_key"))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return _send(handler, 400, error_body(400, "request body is not JSON"))
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            return _send(handler, 400, error_body(400, "'model' and 'messages' are required"))
        if body.get("stream"):
            return _send(handler, 400, error_body(400, "streaming is not supported by the fake"))
        reply = self.scripted_reply(handler, body, error_body)
        if reply is None:
            return
        _send(handler, 200, self._completion(body, reply), reply.headers)

    def _reply_for(self, body: dict[str, Any], queued: str | dict | Reply | None) -> Reply:
        source = queued if queued is not None else (
            self.responder(body) if self.responder is not None else self.default_content)
        reply = source if isinstance(source, Reply) else Reply(content=source)
        if isinstance(reply.content, dict):
            reply.content = json.dumps(reply.content)
        if self.invalid_json:
            reply.content = INVALID_JSON
        return reply

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = reply.content if isinstance(reply.content, str) else None
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        completion_tokens = max(1, len(content or "") // 4)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }



"""A local fake of Anthropic's Messages API, for tests of every SYNTHESIZE-tier caller (skills, conversations).

`with FakeAnthropic(replies=[...]) as fake:` serves on 127.0.0.1 until the block ends; `fake.url` is a drop-in
`base_url` for `anthropic.Anthropic` (the SDK appends /v1/messages). Routes:
- `POST /v1/messages`: checks the API key (`x-api-key`, or `Authorization: Bearer`, which anthropic SDK 2.x sends)
  and the `anthropic-version` header, validates the body's shape (model, max_tokens, messages with user/assistant
  roles, system; `stream` is refused; temperature/top_p/top_k are refused under API version 2026-10-21 or later,
  as the real API does), records the body in `.requests` and the headers in `.headers`, and answers a real
  Message payload (id, type "message", role, model, content blocks, stop_reason, stop_sequence, usage).
- `POST /v1/messages/count_tokens` ({"input_tokens": n}) and `GET /v1/models`.
Errors use Anthropic's shape: {"type": "error", "error": {"type": …, "message": …}, "request_id": …}.

The answer's content comes from, in order: the queue of `replies`, else `responder(request_json)`, else
`default_text`. A reply is a str (one text block), a dict (JSON-encoded into one text block), a list of content
blocks (see `text_block`, `tool_use_block`; stop_reason "tool_use" when one is a tool_use) or a `Reply` (content
plus status, headers, delay, stop_reason, usage) for per-request failures.

Tool use is checked as the real API checks it: `tools` entries need a name and an object input_schema, and every
tool_use block an assistant turn holds must be answered by a tool_result with its id in the next user message
(HTTP 400 otherwise). `tool_results(request)` returns the tool_result blocks a recorded request sent back.

Knobs, plain attributes a test may change while the server runs: `delay` (seconds before every answer, to trigger
client timeouts), `status` (+ `status_headers`: every request fails, e.g. 429 with retry-after, 529 overloaded,
500). Usage is ≈ characters / 4 of the request's system + messages and of the answer, unless a Reply sets it.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler

from typing import Any, Callable

from tests.fakes.server import FakeServer, send_json as _send

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
NO_SAMPLING_FROM = "2026-10-21"   # the API version from which sampling parameters are rejected


@dataclass
class Reply:
    content: str | dict | list[dict[str, Any]] | None = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stop_reason: str | None = None          # default: "tool_use" with a tool_use block, else "end_turn"
    usage: dict[str, int] | None = None     # e.g. {"input_tokens": 1200, "output_tokens": 300}
    error: str | None = None                # message of the error body when status != 200


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id or f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": input}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}


class FakeAnthropic(FakeServer):
    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        replies: list[str | dict | list | Reply] | None = None,
        responder: Callable[[dict[str, Any]], str | dict | list | Reply] | None = None,
        default_text: str = "OK",
        delay: float = 0.0,
        status: int | None = None,
        status_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key          # None accepts any key
        self.replies: list[str | dict | list | Reply] = list(replies or [])
        self.responder = responder
        self.default_text = default_text
        self.delay = delay
        self.status = status
        self.status_headers = dict(status_headers or {})
        self.requests: list[dict[str, Any]] = []
        self.headers: list[Message] = []
        self._lock = threading.Lock()

    # -- checks ----------------------------------------------------------------------------------------------------

    def _auth_error(self, handler: BaseHTTPRequestHandler) -> str | None:
        key = handler.headers.get("x-api-key")
        if key is None:
            auth = handler.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if key is None:
            return "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return "invalid x-api-key"
        return None

    def _body_error(self, body: Any, version: str) -> str | None:
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return "max_tokens: Field required (a positive integer)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            if not isinstance(m.get("content"), (str, list)):
                return f"messages.{i}.content: Field required"
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            return "system: Input should be a valid string or list of text blocks"
        if body.get("stream"):
            return "stream: streaming is not supported by the fake"
        if (problem := _tool_error(body)) is not None:
            return problem
        if version >= NO_SAMPLING_FROM:
            for name in SAMPLING_PARAMS:
                if name in body:
                    return f"{name}: Extra inputs are not permitted"
        return None

    # -- handlers --------------------------------------------------------------------------------------------------

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        if (problem := self._auth_error(handler)) is not None:
            return _send(handler, 401, error_body(401, problem))
        if handler.path.split("?")[0].rstrip("/") != "/v1/models":
            return _send(handler, 404, error_body(404, f"no route {handler.path}"))
        _send(handler, 200, {"data": [{"type": "model", "id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6",
                                       "created_at": "2026-02-17T00:00:00Z"}],
                             "has_more": False, "first_id": "claude-sonnet-4-6", "last_id": "claude-sonnet-4-6"})

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0].rstrip("/")
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return _send(handler, 404, error_body(404, f"no route {handler.path}"))
        if (problem := self._auth_error(handler)) is not None:
            return _send(handler, 401, error_body(401, problem))
        version = handler.headers.get("anthropic-version")
        if not version:
            return _send(handler, 400, error_body(400, "anthropic-version: header is required"))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return _send(handler, 400, error_body(400, "request body is not valid JSON"))
        if path.endswith("count_tokens"):
            return _send(handler, 200, {"input_tokens": _input_tokens(body if isinstance(body, dict) else {})})
        if (problem := self._body_error(body, version)) is not None:
            return _send(handler, 400, error_body(400, problem))
        reply = self.scripted_reply(handler, body, error_body)
        if reply is None:
            return
        _send(handler, 200, self._message(body, reply), {"request-id": f"req_{uuid.uuid4().hex[:24]}", **reply.headers})

    def _reply_for(self, body: dict[str, Any], queued: Any) -> Reply:
        source = queued if queued is not None else (
            self.responder(body) if self.responder is not None else self.default_text)
        return source if isinstance(source, Reply) else Reply(content=source)

    def _message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = reply.content
        if isinstance(content, dict):
            content = json.dumps(content)
        blocks = [text_block(content)] if isinstance(content, str) else list(content or [])
        has_tool = any(b.get("type") == "tool_use" for b in blocks)
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        answered = json.dumps(blocks) if has_tool else text
        usage = {"input_tokens": _input_tokens(body), "output_tokens": max(1, len(answered) // 4),
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}
        usage.update(reply.usage or {})
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": reply.stop_reason or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None,
            "usage": usage,
        }


def _tool_error(body: dict[str, Any]) -> str | None:
    """The real API's tool-use rules: `tools` entries need a name and an object input_schema; every tool_use
    an assistant message holds must be answered by a tool_result (same id) in the very next user message, and a
    tool_result must answer a tool_use of the message before it."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
                return f"tools.{i}.name: Field required"
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{i}.input_schema: must be a JSON schema of type object"
    messages = body["messages"]
    for i, m in enumerate(messages):
        blocks = m["content"] if isinstance(m["content"], list) else []
        asked = [b.get("id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        answered = [b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if asked and m["role"] != "assistant":
            return f"messages.{i}: tool_use blocks may only appear in assistant messages"
        if answered:
            before = messages[i - 1] if i else None
            prior = [b.get("id") for b in (before["content"] if before and isinstance(before["content"], list) else [])
                     if isinstance(b, dict) and b.get("type") == "tool_use"] if before and before["role"] == "assistant" else []
            stray = [t for t in answered if t not in prior]
            if m["role"] != "user" or stray:
                return (f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {stray or answered}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
        if asked:
            after = messages[i + 1] if i + 1 < len(messages) else None
            if after is None:
                if tools is None:
                    return f"messages.{i}: tool_use blocks need `tools` in the request"
                continue  # a prefilled final assistant turn
            given = [b.get("tool_use_id") for b in (after["content"] if isinstance(after["content"], list) else [])
                     if isinstance(b, dict) and b.get("type") == "tool_result"]
            missing = [t for t in asked if t not in given]
            if missing:
                return (f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                        f"after: {', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                        "`tool_result` block in the next message.")
    return None


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a recorded request's last user message (what the caller sent back)."""
    last = request["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]


def _input_tokens(body: dict[str, Any]) -> int:
    parts = [body.get("system") or "", body.get("messages") or [], body.get("tools") or []]
    return max(1, sum(len(p if isinstance(p, str) else json.dumps(p)) for p in parts) // 4)



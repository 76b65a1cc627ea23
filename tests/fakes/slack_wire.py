"""How the fake Slack reads requests and checks payloads the way Slack does: Bearer / Basic auth, bodies in any
of the encodings slack_sdk sends (form, multipart, JSON; JSON-in-a-string arguments decoded), and block
validation with slack_sdk's own models. Used by tests/fakes/slack_api.py only."""
from __future__ import annotations

import base64
import json
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

JSON_ARGS = ("blocks", "view", "files", "attachments", "metadata")


def blocks_problem(blocks: Any, *, limit: int = 50) -> str | None:
    """What Slack would reject in a blocks list (too many, or a block its models refuse), else None."""
    if not blocks:
        return None
    if not isinstance(blocks, list):
        return "blocks must be a JSON array"
    if len(blocks) > limit:
        return f"no more than {limit} items allowed [json-pointer:/blocks]"
    for i, raw in enumerate(blocks):
        try:
            block = Block.parse(raw)
            if block is None:
                return f"unsupported block [json-pointer:/blocks/{i}]"
            block.validate_json()
        except (SlackObjectFormationError, TypeError, KeyError, AttributeError) as exc:
            return f"{exc} [json-pointer:/blocks/{i}]"
    return None


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def bearer(handler: BaseHTTPRequestHandler) -> str | None:
    auth = handler.headers.get("Authorization") or ""
    return auth[7:].strip() or None if auth.startswith("Bearer ") else None


def basic(handler: BaseHTTPRequestHandler) -> tuple[str, str] | None:
    auth = handler.headers.get("Authorization") or ""
    if not auth.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
    return user, password


def params_of(handler: BaseHTTPRequestHandler, query: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    body = read_body(handler) if handler.command == "POST" else b""
    ctype = handler.headers.get("Content-Type") or ""
    if body and ctype.startswith("application/json"):
        params.update(json.loads(body))
    elif body and ctype.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            params[name] = payload if part.get_filename() else payload.decode()
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in JSON_ARGS:
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                pass  # Slack would answer invalid_blocks / invalid_arguments; leave it for the method to judge
    return params


def send_bytes(handler: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass

"""The sidecar's HTTP plumbing: one wrapper turns a plain, synchronous handler into a Starlette endpoint.

`endpoint(deps, handler, auth=...)` reads the body (size-capped), parses JSON, authenticates the caller (an
API key for /api/…, a webhook signature for /webhooks/…), runs the handler in the thread pool (handlers use
the blocking psycopg pool) and serialises what it returns. Every failure becomes
`{"error": {"code", "message", …}}` with a status from `STATUS` — never a traceback: an unexpected exception
is logged server-side and answered with a generic 500.

Handlers receive a `Call` and return `(status, data)`; they never build responses or catch errors themselves.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from core.errors import (AuthError, ConfigError, ConnectorError, DatabaseError, InputError, NotFound, PandoraError,
                         SkillError, SyncInProgress)

log = logging.getLogger("pandora.sidecar")
MAX_BODY = 10 * 1024 * 1024  # a webhook batch of 1,000 records fits easily; anything bigger is a mistake


class ApiError(PandoraError):
    """An HTTP-level refusal with its own status (401 unauthorized, 400 bad body, 413 too large)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.status = status
        self.code = code


# Most specific first. A connector that rejects the credentials it was given is the caller's input being
# unprocessable (422), not the caller being unauthenticated with us (401).
STATUS: list[tuple[type[PandoraError], int]] = [
    (SyncInProgress, 409),
    (NotFound, 404),
    (InputError, 400),
    (AuthError, 422),
    (ConnectorError, 422),
    (SkillError, 422),
    (ConfigError, 422),
    (DatabaseError, 503),
    (PandoraError, 400),
]


def status_of(exc: PandoraError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    return next(status for cls, status in STATUS if isinstance(exc, cls))


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def dumps(data: Any) -> bytes:
    return json.dumps(data, default=_default, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: BaseException) -> Response:
    if isinstance(exc, PandoraError):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, ApiError) and exc.status == 401 else None
        return json_response(status_of(exc), {"error": exc.to_dict()}, headers)
    log.exception("sidecar: unexpected error")  # the details go to the server log, never to the caller
    return json_response(500, {"error": {"code": "internal_error",
                                         "message": "Pandora hit an unexpected error; it has been logged"}})


@dataclass
class Call:
    """What a handler gets: the path parameters, query, parsed body and the authenticated workspace."""

    request: Request
    path: dict[str, Any]
    query: QueryParams
    raw: bytes
    body: Any = None
    workspace_id: str | None = None
    key_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty)."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise ApiError(400, "bad_request", "the request body must be a JSON object")
        return self.body


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the request body is over {limit // (1024 * 1024)} MB")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"the request body is over {limit // (1024 * 1024)} MB")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_request", f"the request body is not valid JSON ({exc})") from None


Authenticate = Callable[[Call], None]
Handler = Callable[[Call], "tuple[int, Any]"]


def endpoint(handler: Handler, authenticate: Authenticate):
    """A Starlette endpoint running `authenticate(call)` (raises to refuse) then `handler(call)`, both in the
    thread pool. The raw body is read before authenticating: webhook signatures cover it."""

    async def asgi_endpoint(request: Request) -> Response:
        try:
            raw = await read_body(request)
            call = Call(request, dict(request.path_params), request.query_params, raw)

            def run() -> tuple[int, Any]:
                authenticate(call)
                call.body = parse_json(raw)
                return handler(call)

            status, data = await run_in_threadpool(run)
            return json_response(status, data)
        except Exception as exc:  # noqa: BLE001 — every failure becomes a JSON error, never a traceback
            return error_response(exc)

    asgi_endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return asgi_endpoint

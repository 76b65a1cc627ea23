"""One request to a model API with Pandora's retry policy, for both SDKs (openai and anthropic share the same
exception shapes: APITimeoutError < APIConnectionError, APIStatusError with .status_code and .response).

The SDK clients are built with max_retries=0 and this module retries instead: once (LLMConfig.max_retries) on a
timeout, a lost connection, 408, 409, 429 or 5xx/529, after Retry-After when the server sends one — but a
Retry-After longer than `max_wait` is not waited for (the SDKs would sleep for as long as the server asks, which
would hang a Slack reply): the call gives up and the tier falls back. It never raises; `Outcome.reason` says what
went wrong in words a user can read.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("pandora.llm")
BACKOFF = 0.5   # seconds before the retry when the server gives no Retry-After


@dataclass
class Outcome:
    response: Any | None
    attempts: int
    lost_tokens: int = 0        # estimated input of attempts that timed out or lost the connection
    reason: str | None = None   # set when there is no response


def send(request: Callable[[], Any], *, name: str, timeout: float, retries: int, max_wait: float,
         input_estimate: int, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    attempts = lost = 0
    while True:
        attempts += 1
        try:
            return Outcome(request(), attempts, lost)
        except Exception as exc:  # noqa: BLE001 (an LLM problem must end in a fallback, never reach the user)
            kind = _kind(exc)
            if kind in ("timeout", "connection"):
                lost += input_estimate  # the model may have read the prompt before the answer was lost
            reason, retriable, wait = _explain(exc, kind, name, timeout)
            if kind == "other":
                log.warning("%s call failed", name, exc_info=exc)
            if not retriable or attempts > retries:
                return Outcome(None, attempts, lost, reason)
            if wait is not None and wait > max_wait:
                return Outcome(None, attempts, lost, f"{reason}; asked to retry after {wait:g}s")
            sleep(BACKOFF if wait is None else max(wait, 0.0))


def _kind(exc: Exception) -> str:
    names = {c.__name__ for c in type(exc).__mro__}
    for kind, cls in (("timeout", "APITimeoutError"), ("connection", "APIConnectionError"),
                      ("status", "APIStatusError")):
        if cls in names:
            return kind
    return "other"


def _explain(exc: Exception, kind: str, name: str, timeout: float) -> tuple[str, bool, float | None]:
    """(reason, retriable, Retry-After seconds or None)."""
    if kind == "timeout":
        return f"{name} timed out after {timeout:g}s", True, None
    if kind == "connection":
        return f"could not reach {name} ({_brief(exc)})", True, None
    if kind == "other":
        return f"{name} call failed ({type(exc).__name__}: {_brief(exc)})", False, None
    status = getattr(exc, "status_code", 0)
    retriable = status in (408, 409, 429) or status >= 500
    wait = _retry_after(getattr(getattr(exc, "response", None), "headers", None)) if retriable else None
    if status in (401, 403):
        return f"{name} rejected the API key (HTTP {status})", False, None
    if status == 429:
        return f"{name} rate-limited (HTTP 429)", True, wait
    if status == 529:
        return f"{name} overloaded (HTTP 529)", True, wait
    detail = _api_message(exc)
    return f"{name} returned HTTP {status}" + (f": {detail}" if detail else ""), retriable, wait


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for header, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers.get(header)) / scale
        except (TypeError, ValueError):
            continue
    return None


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:200]
    return ""


def _brief(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__

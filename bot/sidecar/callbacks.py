"""Outbound webhooks: signed run-status callbacks, retried, with every attempt recorded in `webhook_deliveries`.

A payload is serialised once; each attempt signs it afresh (`X-Pandora-Timestamp` / `X-Pandora-Signature`, the
same scheme inbound webhooks use) so a retried delivery is never outside the receiver's replay window. 2xx is
delivered; 408, 429, 5xx and transport errors are retried with core.sync.http's backoff policy (honouring
Retry-After); any other status fails at once (the receiver refused it, retrying will not help).

It never raises to its caller (a background job) and never stores the payload or the secret: only url,
event, status code, attempts and a short error.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import httpx

from bot.sidecar.auth import sign_headers
from bot.sidecar.http import dumps
from core.api_keys import ensure_webhook_secret
from core.sync.http import RetryPolicy, parse_retry_after

log = logging.getLogger("pandora.sidecar")
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=10.0, max_retry_after=60.0,
                     retry_statuses=(408, 429, 500, 502, 503, 504))
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def record_delivery(db, workspace_id, url: str, event: str, run_id=None) -> str:
    """A pending delivery row; its id identifies the delivery in logs and in the payload."""
    with db.connection() as conn:
        return str(conn.execute(
            "INSERT INTO webhook_deliveries (workspace_id, run_id, event, url)"
            " VALUES (%(workspace_id)s, %(run_id)s, %(event)s, %(url)s) RETURNING id",
            {"workspace_id": str(workspace_id), "run_id": run_id, "event": event, "url": url},
        ).fetchone()["id"])


def _update(db, workspace_id, delivery_id: str, **values: Any) -> None:
    with db.connection() as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET status = %(status)s, status_code = %(status_code)s, error = %(error)s,"
            " attempts = %(attempts)s,"
            " delivered_at = CASE WHEN %(status)s = 'delivered' THEN now() ELSE delivered_at END"
            " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": str(workspace_id), "id": delivery_id, **values},
        )


def deliver(db, vault, workspace_id, delivery_id: str, url: str, payload: dict[str, Any], *,
            transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None],
            policy: RetryPolicy = POLICY) -> str:
    """POST `payload` to `url`, signed with the workspace's webhook secret (created if it has none yet).
    Returns the final status: delivered | failed."""
    with db.connection() as conn:
        secret, _ = ensure_webhook_secret(conn, vault, workspace_id)
    body = dumps(payload)
    status_code: int | None = None
    error: str | None = None
    with httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=False) as client:
        for attempt in range(1, policy.max_attempts + 1):
            wait = None
            try:
                headers = {"Content-Type": "application/json", "User-Agent": "Pandora-Webhooks/1",
                           "X-Pandora-Event": payload.get("event", ""), "X-Pandora-Delivery": delivery_id,
                           **sign_headers(secret, body)}
                response = client.post(url, content=body, headers=headers)
                status_code, error = response.status_code, None
                if 200 <= status_code < 300:
                    _update(db, workspace_id, delivery_id, status="delivered", status_code=status_code, error=None,
                            attempts=attempt)
                    return "delivered"
                error = f"the receiver answered {status_code}"
                if status_code not in policy.retry_statuses:
                    break
                wait = parse_retry_after(response.headers.get("Retry-After"))
                if wait is not None and wait > policy.max_retry_after:
                    break
            except httpx.HTTPError as exc:
                status_code, error = None, f"{type(exc).__name__}: {str(exc)[:200]}"
            _update(db, workspace_id, delivery_id, status="pending", status_code=status_code, error=error,
                    attempts=attempt)
            if attempt < policy.max_attempts:
                sleep(wait if wait is not None else policy.backoff(attempt))
    log.warning("webhook delivery %s to %s failed: %s", delivery_id, url.split("?")[0], error)
    _update(db, workspace_id, delivery_id, status="failed", status_code=status_code, error=error,
            attempts=attempt)
    return "failed"

"""Who is calling: API keys for /api/…, HMAC signatures for /webhooks/….

REST callers send `Authorization: Bearer pk_…`. A missing, unknown or revoked key is 401. A valid key only
sees its own workspace: any other workspace id in the path — existing or not — is 404, exactly as a missing
workspace, so a key cannot even learn which workspace ids exist.

Webhooks carry `X-Pandora-Timestamp` (unix seconds) and `X-Pandora-Signature: v1=<hex>` where hex is
HMAC-SHA256(secret, f"{timestamp}.{raw body}") with the workspace's webhook secret. A timestamp more than five
minutes old or ahead is refused (replay window); signatures are compared in constant time. Outbound callbacks
are signed the same way (`sign_headers`).

Nothing here ever echoes a key, a secret or an expected signature back to a caller.
"""
from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Callable

from core.api_keys import authenticate as authenticate_key, webhook_secret
from core.errors import NotFound
from bot.sidecar.http import ApiError, Call

TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Pandora-Signature"
TIMESTAMP_HEADER = "X-Pandora-Timestamp"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def path_workspace(call: Call) -> uuid.UUID:
    """The workspace id in the path, or 404 when it is not an id at all."""
    raw = str(call.path.get("workspace_id", ""))
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no workspace {raw!r}", field="workspace_id") from None


def api_key_auth(db) -> Callable[[Call], None]:
    """Authenticate a Bearer API key and pin `call.workspace_id` to the key's workspace."""

    def check(call: Call) -> None:
        header = call.request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            raise _unauthorized("missing API key: send `Authorization: Bearer pk_…` "
                                "(create one with `pandora apikey create --workspace W`)")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthorized("the Authorization header must be `Bearer pk_…`")
        with db.connection() as conn:
            found = authenticate_key(conn, key.strip())
        if found is None:
            raise _unauthorized("this API key is not valid (unknown or revoked); create a new one with "
                                "`pandora apikey create --workspace W`")
        call.key_id = found["id"]
        call.workspace_id = str(found["workspace_id"])
        if "workspace_id" in call.path and path_workspace(call) != uuid.UUID(call.workspace_id):
            raise NotFound(f"no workspace {call.path['workspace_id']!r}", field="workspace_id")

    return check


# ------------------------------------------------------------------------------------------------- signatures

def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def sign_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify_signature(secret: str, timestamp: str | None, signature_header: str | None, body: bytes, *,
                     now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise 401 unless `signature_header` holds a v1 signature of (timestamp, body) within the window.
    Several signatures may be sent comma-separated (e.g. while a sender rotates secrets); one must match."""
    if not timestamp or not signature_header:
        raise _unauthorized(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header: sign the request with "
                            "the workspace's webhook secret (`pandora webhook secret --workspace W`)")
    try:
        ts = int(timestamp.strip())
    except ValueError:
        raise _unauthorized(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    now = time.time() if now is None else now
    if ts < now - tolerance:
        raise _unauthorized(f"the request timestamp is more than {tolerance // 60} minutes old; sign it afresh "
                            "(and check the sender's clock)")
    if ts > now + tolerance:
        raise _unauthorized(f"the request timestamp is more than {tolerance // 60} minutes in the future; "
                            "check the sender's clock")
    expected = signature(secret, ts, body).encode()
    offered = [s.strip() for s in signature_header.split(",") if s.strip()]
    # compare_digest against every offered value (no early exit on the first mismatch's position)
    if not any(hmac.compare_digest(expected, s.encode()) for s in offered):
        raise _unauthorized("the webhook signature does not match: sign `{timestamp}.{raw body}` with "
                            "HMAC-SHA256 and the workspace's webhook secret, sent as `v1=<hex>`")


def webhook_auth(db, vault: Callable[[], object]) -> Callable[[Call], None]:
    """Verify the signature with the path workspace's secret; pins `call.workspace_id`."""

    def check(call: Call) -> None:
        workspace_id = path_workspace(call)
        with db.connection() as conn:
            secret = webhook_secret(conn, vault(), workspace_id)
        if secret is None:  # unknown workspace or no secret yet: either way nothing can be verified
            raise _unauthorized("webhooks are not enabled for this workspace: create its secret with "
                                "`pandora webhook secret --workspace W`")
        verify_signature(secret, call.request.headers.get(TIMESTAMP_HEADER),
                         call.request.headers.get(SIGNATURE_HEADER), call.raw)
        call.workspace_id = str(workspace_id)

    return check

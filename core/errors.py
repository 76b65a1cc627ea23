"""The one error tree of Pandora.

Every layer raises a subclass of `PandoraError` at its edge, so the CLI, the Slack app and the REST sidecar can
turn any failure into one clear line (`code` + `message`) without ever showing a traceback. Third-party
exceptions (psycopg, httpx, json) are wrapped where they are caught; a raw `KeyError` never reaches a user.
"""
from __future__ import annotations

from typing import Any


class PandoraError(Exception):
    """Base of every error Pandora raises on purpose."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ConfigError(PandoraError):
    """A setting is missing or malformed; the message names the environment variable."""

    code = "config_error"


class DatabaseError(PandoraError):
    """The database is unreachable or misbehaving; the message names host/port, never the password."""

    code = "database_error"


class NotFound(PandoraError):
    """A workspace, connection, batch or record that the caller named does not exist (in this workspace)."""

    code = "not_found"


class InputError(PandoraError):
    """Bad input from a user or a file: carries file / row / column / field where known."""

    code = "input_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, file=file, row=row, column=column, field=field, **details)


class ConnectorError(PandoraError):
    """A source API failed in a way retrying will not fix (bad request, unexpected payload, paging loop)."""

    code = "connector_error"


class PageStateExpired(ConnectorError):
    """The source no longer holds the paging position a stream saved (Salesforce query locators expire after
    ~15 idle minutes): the sync engine restarts that stream's walk from its saved cursor."""

    code = "page_state_expired"


class RetriableError(ConnectorError):
    """A transient failure (5xx, timeout, connection reset) that outlived its retries."""

    code = "retriable_error"


class AuthError(ConnectorError):
    """The source rejected our credentials: the user has to reconnect the source."""

    code = "auth_error"


class RateLimited(ConnectorError):
    """The source kept answering 429 (or its own limit signal) past our retry budget."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class SyncInProgress(PandoraError):
    """Another sync of the same (workspace, connector) holds the lock."""

    code = "sync_in_progress"


class SkillError(PandoraError):
    """A skill could not produce its result."""

    code = "skill_error"

"""Timestamps as the sources send them: ISO 8601 text, with `Z` or an offset, or naive (read as UTC)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def iso_time(value: Any) -> datetime | None:
    """`2026-05-01T09:00:00-07:00`, `2026-05-01T16:00:00.512Z` or `2026-05-01` as an aware datetime; None when
    absent or unreadable (a source's odd value never fails a sync)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

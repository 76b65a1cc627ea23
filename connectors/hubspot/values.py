"""HubSpot property values → typed Python values.

HubSpot sends every property value as a string (numbers, dates, booleans included) and unset ones as null or
"". This module is the one place that turns them into what our columns and `custom_fields` hold, using the
property's declared type (`/crm/v3/properties/{object}`: number, date, datetime, bool, enumeration, string).
It never raises on a value it cannot read: a malformed number or date becomes None (the raw string stays in
`source_data`), because one odd cell must not stop a sync.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any


def text(value: Any) -> str | None:
    """A string property; "" is unset."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def number(value: Any) -> Decimal | None:
    value = text(value)
    if value is None:
        return None
    try:
        result = Decimal(value.replace(",", ""))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def integer(value: Any) -> int | None:
    result = number(value)
    return int(result) if result is not None else None


def timestamp(value: Any) -> datetime | None:
    """ISO-8601 ("2026-05-01T07:25:37.512Z", "2026-06-30") or epoch milliseconds ("1714521600000")."""
    value = text(value)
    if value is None:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def day(value: Any) -> date | None:
    """A date property (HubSpot stores dates as midnight UTC datetimes)."""
    parsed = timestamp(value)
    return parsed.date() if parsed else None


def boolean(value: Any) -> bool | None:
    value = text(value)
    if value is None:
        return None
    return value.casefold() in ("true", "yes", "1")


def typed(value: Any, kind: str | None) -> Any:
    """A custom property's value as JSON-friendly data for `custom_fields`: numbers as int/float, booleans as
    bool, dates and datetimes as ISO strings, multi-select enumerations (';'-separated) as lists."""
    if text(value) is None:
        return None
    if kind == "number":
        n = number(value)
        if n is None:
            return text(value)
        return int(n) if n == n.to_integral_value() else float(n)
    if kind == "bool":
        return boolean(value)
    if kind == "datetime":
        parsed = timestamp(value)
        return parsed.isoformat() if parsed else text(value)
    if kind == "date":
        parsed = day(value)
        return parsed.isoformat() if parsed else text(value)
    if kind == "enumeration" and ";" in str(value):
        return [part for part in str(value).split(";") if part]
    return text(value)

"""How numbers read in every result and renderer: one money format, one percent format."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


def money(value: Any) -> str:
    """$950, $12.5k, $1.25M (— for no value)."""
    if value is None:
        return "—"
    v = float(value)
    sign, v = ("-" if v < 0 else ""), abs(v)
    if v >= 1_000_000:
        return f"{sign}${v / 1_000_000:,.2f}M"
    if v >= 10_000:
        return f"{sign}${v / 1_000:,.1f}k"
    return f"{sign}${v:,.0f}"


def fmt(value: Any, unit: str = "") -> str:
    """A metric value with its unit: "$" money, "%" percent (0-100 scale), "x" ratio, else a number or text."""
    if value is None:
        return "—"
    if unit == "$":
        return money(value)
    if unit == "%":
        return f"{float(value):.0f}%"
    if unit == "x":
        return f"{float(value):.2f}x"
    if isinstance(value, (float, Decimal)):
        text = f"{float(value):,.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text

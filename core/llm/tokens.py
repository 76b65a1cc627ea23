"""Token estimates, the one rule every guardrail uses: about four characters per token.

The estimate is taken over the exact text that is sent (the serialised prompt), never over the Python objects
before serialisation, so what is checked is what is paid for. Four characters per token is the original's rule; it
over-counts plain English a little and under-counts dense JSON and non-Latin text a little, which is why the limits
keep headroom. Actual usage reported by an API always replaces the estimate in the run's totals.
"""
from __future__ import annotations

import json
import math
from typing import Any

CHARS_PER_TOKEN = 4


def to_text(value: Any) -> str:
    """The serialisation used for prompts: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def estimate_tokens(value: Any) -> int:
    """≈ len(serialised text) / 4, rounded up; 0 for empty text."""
    return math.ceil(len(to_text(value)) / CHARS_PER_TOKEN)

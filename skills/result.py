"""The typed result every skill returns, whatever renders it (Slack Block Kit, CLI text, REST JSON).

A result says what it found (headline, sections), with which numbers (metrics, tables, charts) and on which
records each claim rests (evidence). `ai_written` is False when SYNTHESIZE fell back to a template; renderers
show that, so nobody mistakes a template for analysis.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass
class Metric:
    key: str
    label: str
    value: Any
    unit: str = ""          # "$", "%", "x", "deals", "days" …
    change: Any = None      # vs the previous run, when there is one
    status: str | None = None  # e.g. on_track / at_risk / behind


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str | None = None


@dataclass
class Chart:
    kind: str               # waterfall | bar | …
    title: str
    data: dict[str, Any]
    path: str | None = None  # the rendered PNG, when rendered


@dataclass
class Evidence:
    claim: str
    entity: str             # deals | accounts | contacts | conversations | …
    ids: list[str]
    labels: list[str] = field(default_factory=list)


@dataclass
class Section:
    title: str
    text: str = ""
    bullets: list[str] = field(default_factory=list)


@dataclass
class SkillResult:
    skill: str
    headline: str
    sections: list[Section] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    ai_written: bool = False
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the COMPUTE output, for JSON consumers

    def metric(self, key: str) -> Metric | None:
        return next((m for m in self.metrics if m.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """JSON-safe copy: dates as ISO text, Decimals as floats."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value

"""The generated dataset and the small clock/randomness helpers every generator module shares."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Sequence, TypeVar

from core.synthetic.vocab import COMPANY_DOMAIN, COMPANY_NAME

T = TypeVar("T")
Row = dict[str, Any]

# Write order: referenced rows first (resolution runs afterwards anyway, but a reader of a half-written
# workspace sees accounts before the deals that point at them).
ENTITY_ORDER = ("accounts", "contacts", "deals", "deal_stage_history", "activities", "conversations",
                "tasks", "documents", "leads")


@dataclass(frozen=True)
class Person:
    """Someone at Demo Co. Reps (`role == 'account_executive'`) own accounts and deals and carry a quota."""
    name: str
    email: str
    role: str            # account_executive | sales_manager | sales_engineer | revops | engineering
    team: str | None = None
    manager: str | None = None   # the manager's name
    win_skill: float = 1.0       # > 1 wins more of the deals it closes

    @property
    def first(self) -> str:
        return self.name.split()[0]


@dataclass
class QuotaPlan:
    name: str
    period_type: str
    start_date: date
    end_date: date
    team_quota: int
    reps: list[tuple[str, str, int]]   # (rep name, rep email, amount)


@dataclass
class Dataset:
    """Everything `generate` produced: Demo Co's people and quotas, and entity rows per table, ready for the
    upsert path (every row of a table has the same keys)."""
    seed: int
    scale: int
    today: date
    company: dict[str, str] = field(default_factory=lambda: {"name": COMPANY_NAME, "domain": COMPANY_DOMAIN})
    people: list[Person] = field(default_factory=list)
    quotas: list[QuotaPlan] = field(default_factory=list)
    tables: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def reps(self) -> list[Person]:
        return [p for p in self.people if p.role == "account_executive"]

    def counts(self) -> dict[str, int]:
        return {table: len(self.tables.get(table, [])) for table in ENTITY_ORDER}

    def __getitem__(self, table: str) -> list[Row]:
        return self.tables[table]


class Clock:
    """Time relative to `today`: all generated timestamps are UTC and never later than `now` (today noon)."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.now = datetime.combine(today, time(12, 0), tzinfo=timezone.utc)

    def days_ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    def at(self, day: date, rng: random.Random) -> datetime:
        """A business-hours moment (US time zones, in UTC) on `day`, capped at now."""
        moment = datetime.combine(day, time(13, 0), tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(0, 9 * 60, 5))
        return min(moment, self.now)


def pick(rng: random.Random, items: Sequence[T], weights: Sequence[float] | None = None) -> T:
    if weights is None:
        return items[rng.randrange(len(items))]
    return rng.choices(items, weights=weights, k=1)[0]


def lognormal(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, median * math.exp(rng.gauss(0.0, sigma))))


def between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in [start, end], rounded to the minute (end if the interval is empty)."""
    span = (end - start).total_seconds()
    if span <= 60:
        return end
    return start + timedelta(minutes=int(rng.random() * span // 60))


def spread(rng: random.Random, start: datetime, end: datetime, n: int) -> list[datetime]:
    """n increasing moments strictly inside (start, end), at least a minute apart where there is room."""
    if n <= 0:
        return []
    minutes = max(int((end - start).total_seconds() // 60) - 1, n)
    points = sorted(rng.sample(range(1, minutes + 1), n)) if minutes >= n else list(range(1, n + 1))
    return [start + timedelta(minutes=m) for m in points]


def slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def sub_rng(seed: int, scale: int, part: str) -> random.Random:
    """One independent stream per generator part, so changing one part never reshuffles the others."""
    return random.Random(f"pandora-demo:{seed}:{scale}:{part}")

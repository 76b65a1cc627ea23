"""RunBudget: the token account a skill run carries through every LLM call it makes.

Before a call the tier asks `refusal(...)` whether the call's worst case (estimated input + its max output tokens)
still fits the run's budget; if not the call is not made and the tier falls back, with the reason. After a call the
tier `record`s what it used: the API's reported usage when the response had it, else the estimate. The totals
(`tokens_in`, `tokens_out`, `ai_used`) are what the run stores on `skill_runs`.

It never raises for an exhausted budget: a run always finishes, on fallbacks if it must.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("pandora.llm")


@dataclass(frozen=True)
class TokenUsage:
    input: int = 0
    output: int = 0
    estimated: bool = False     # True when no API usage was reported (an estimate, or a failed call)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input + other.input, self.output + other.output, self.estimated or other.estimated)


@dataclass(frozen=True)
class CallRecord:
    tier: str                   # "classify" | "synthesize"
    task: str
    model: str | None
    method: str                 # "llm" | "fallback" | "template"
    tokens: TokenUsage
    attempts: int = 0           # requests sent (0: none, e.g. no key or refused by the budget)
    reason: str | None = None   # why it fell back

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunBudget:
    limit: int = 60_000                 # tokens, input + output, over the whole run
    calls: list[CallRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any) -> RunBudget:
        return cls(limit=cfg.run_token_budget)

    @property
    def tokens_in(self) -> int:
        return sum(c.tokens.input for c in self.calls)

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens.output for c in self.calls)

    @property
    def used(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def ai_used(self) -> bool:
        """True when some output of the run was written by a model (not when every call fell back)."""
        return any(c.method == "llm" for c in self.calls)

    def refusal(self, estimated_input: int, max_output: int) -> str | None:
        """The reason this call may not be made, or None when its worst case fits what is left."""
        need = estimated_input + max_output
        with self._lock:
            used = self.used
        if used + need > self.limit:
            return (f"run token budget exhausted (used {used:,} of {self.limit:,}; "
                    f"this call needs up to {need:,})")
        return None

    def record(self, call: CallRecord) -> CallRecord:
        with self._lock:
            self.calls.append(call)
        return call

    def warn(self, message: str) -> None:
        log.warning(message)
        with self._lock:
            self.warnings.append(message)

    def totals(self) -> dict[str, Any]:
        """The columns of skill_runs this run fills: tokens_in, tokens_out, ai_used."""
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "ai_used": self.ai_used}

    def to_dict(self) -> dict[str, Any]:
        return {**self.totals(), "limit": self.limit, "warnings": list(self.warnings),
                "calls": [c.to_dict() for c in self.calls]}

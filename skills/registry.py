"""Which skills exist. A skill module defines a `Skill` subclass and decorates it with `@register`; the
registry maps names and short aliases (`forecast`, `pipeline`, `hygiene`, …) to instances."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

from core.errors import NotFound

if TYPE_CHECKING:  # pragma: no cover
    from skills.runtime import SkillContext
    from skills.result import SkillResult


@dataclass(frozen=True)
class Param:
    name: str
    kind: type = str
    default: Any = None
    help: str = ""


class Skill:
    """COMPUTE (deterministic SQL/Python) → CLASSIFY (optional, DeepSeek or rules) → SYNTHESIZE (Claude or a
    template). Subclasses set the class attributes and implement `compute` and `synthesize`."""

    name: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    schedule: str | None = None      # default schedule for digests, e.g. "weekly mon 09:00"
    compute_only: bool = False

    def compute(self, ctx: "SkillContext") -> dict[str, Any]:
        raise NotImplementedError

    def classify(self, ctx: "SkillContext", computed: dict[str, Any]) -> dict[str, Any]:
        return {}

    def synthesize(self, ctx: "SkillContext", computed: dict[str, Any], classified: dict[str, Any]) -> "SkillResult":
        raise NotImplementedError


_SKILLS: dict[str, Skill] = {}
_ALIASES: dict[str, str] = {}
_MODULES = ("forecast_rollup", "monte_carlo", "pipeline_coverage", "pipeline_hygiene", "deal_risk_review",
            "single_thread_alert", "data_quality_audit", "rep_scorecard", "custom_field_discovery",
            "icp_profile", "lead_scoring", "weekly_digest")


def register(cls: type[Skill]) -> type[Skill]:
    skill = cls()
    _SKILLS[skill.name] = skill
    for alias in skill.aliases:
        _ALIASES[alias] = skill.name
    return cls


def load_all() -> None:
    for module in _MODULES:
        try:
            importlib.import_module(f"skills.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"skills.{module}":
                raise


def get(name: str) -> Skill:
    load_all()
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _SKILLS:
        raise NotFound(f"no skill {name!r}; try one of: {', '.join(sorted(_SKILLS))}")
    return _SKILLS[key]


def all_skills() -> list[Skill]:
    load_all()
    return [_SKILLS[k] for k in sorted(_SKILLS)]

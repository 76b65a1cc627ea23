"""Run a skill: COMPUTE → CLASSIFY → SYNTHESIZE, recorded in `skill_runs`.

Every run gets a row (inputs, status, output, timings per phase, tokens, error) whether it succeeds or not.
Skills read the database (through `core.queries` or their own SQL) and never call a source API; the LLM
tiers are reached only through `ctx.llm` and `ctx.budget` so token budgets and fallbacks apply everywhere.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterator

from psycopg.types.json import Jsonb

from core.context import get_context
from core.errors import InputError, PandoraError, SkillError
from core.llm import LLMConfig, RunBudget
from core.llm import classify as llm_classify, synthesize as llm_synthesize
from core.quotas import QuotaConfig, check_quota_config
from core.settings import Settings
from skills import registry
from skills.result import SkillResult


@dataclass
class SkillContext:
    db: Any
    settings: Settings
    workspace_id: str
    params: dict[str, Any]
    context: dict[str, Any]
    today: date
    llm: LLMConfig
    budget: RunBudget
    run_id: str
    skill: str
    _quota: QuotaConfig | None = field(default=None, repr=False)

    @contextmanager
    def conn(self) -> Iterator[Any]:
        with self.db.connection() as conn:
            yield conn

    @property
    def quota(self) -> QuotaConfig:
        if self._quota is None:
            with self.conn() as conn:
                self._quota = check_quota_config(conn, self.workspace_id, today=self.today, context=self.context)
        return self._quota

    def business_context(self) -> dict[str, Any]:
        """The parts of the context layer every prompt gets: who the company is and how it sells."""
        picks = {"business_model": ("company_name", "gtm_motion", "sales_cycle_days", "acv_range", "pricing_model",
                                    "icp_description", "target_market"),
                 "goals_and_targets": ("revenue_target", "pipeline_coverage_target"),
                 "definitions": ("qualification_framework", "terminology_map", "qualified_definition")}
        return {section: {k: self.context.get(section, {}).get(k) for k in keys
                          if self.context.get(section, {}).get(k) not in (None, "", {}, [])}
                for section, keys in picks.items()}

    def synthesize(self, *, task: str, instructions: str, data: dict[str, Any], template, **kwargs):
        """SYNTHESIZE with this run's budget; the business context rides along as data."""
        return llm_synthesize(self.llm, self.budget, task=task, instructions=instructions,
                              data={"business_context": self.business_context(), **data}, template=template, **kwargs)

    def classify(self, *, task: str, instructions: str, data: dict[str, Any], schema, fallback, **kwargs):
        """CLASSIFY with this run's budget; the business context rides along as data."""
        return llm_classify(self.llm, self.budget, task=task, instructions=instructions,
                            data={"business_context": self.business_context(), **data}, schema=schema,
                            fallback=fallback, **kwargs)

    def previous_output(self, skill: str | None = None) -> dict[str, Any] | None:
        """The last successful run of `skill` (default: the running one) in this workspace, for
        week-over-week comparisons; a skill run inside the weekly digest passes its own name. Runs made to
        answer a conversational question are not a baseline: "vs last run" means the last report people saw
        posted or asked for by name, not a quota question someone asked in a DM an hour ago."""
        with self.conn() as conn:
            row = conn.execute(
                "SELECT output FROM skill_runs WHERE workspace_id = %(workspace_id)s AND skill = %(skill)s"
                " AND status = 'succeeded' AND trigger <> 'conversation' AND id <> %(id)s ORDER BY started_at DESC LIMIT 1",
                {"workspace_id": self.workspace_id, "skill": skill or self.skill, "id": self.run_id},
            ).fetchone()
        return row["output"] if row else None


_KINDS = {int: "a whole number", float: "a number", str: "text", date: "a date (YYYY-MM-DD)", bool: "true or false"}


def parse_params(skill: registry.Skill, raw: dict[str, Any] | None) -> dict[str, Any]:
    """Declared parameters only, converted to their kinds; unknown names are an InputError naming them."""
    raw = dict(raw or {})
    known = {p.name: p for p in skill.params}
    unknown = set(raw) - set(known)
    if unknown:
        valid = ", ".join(known) or "none"
        raise InputError(f"{skill.name} has no parameter {sorted(unknown)[0]!r} (parameters: {valid})",
                         field=sorted(unknown)[0])
    out = {}
    for name, p in known.items():
        value = raw.get(name, p.default)
        if value is not None and not isinstance(value, p.kind):
            try:
                if p.kind is bool:
                    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}[str(value).lower()]
                else:
                    value = date.fromisoformat(str(value)) if p.kind is date else p.kind(value)
            except (TypeError, ValueError, KeyError):
                raise InputError(f"{skill.name}: parameter {name} must be {_KINDS.get(p.kind, p.kind.__name__)}, got {value!r}",
                                 field=name) from None
        out[name] = value
    return out


def run_skill(db, settings: Settings, workspace_id, name: str, params: dict[str, Any] | None = None, *,
              trigger: str = "manual", today: date | None = None, llm: LLMConfig | None = None) -> SkillResult:
    skill = registry.get(name)
    values = parse_params(skill, params)
    workspace_id = str(workspace_id)
    llm = llm or LLMConfig.from_settings(settings)
    with db.connection() as conn:
        context = get_context(conn, workspace_id)
        run_id = str(conn.execute(
            "INSERT INTO skill_runs (workspace_id, skill, trigger, params, inputs)"
            " VALUES (%(workspace_id)s, %(skill)s, %(trigger)s, %(params)s, %(inputs)s) RETURNING id",
            {"workspace_id": workspace_id, "skill": skill.name, "trigger": trigger,
             "params": Jsonb(_jsonable(values)), "inputs": Jsonb({"today": str(today or date.today())})},
        ).fetchone()["id"])
    ctx = SkillContext(db, settings, workspace_id, values, context, today or date.today(), llm,
                       RunBudget.from_config(llm), run_id, skill.name)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        computed = _timed(timings, "compute", lambda: skill.compute(ctx))
        classified = {} if skill.compute_only else _timed(timings, "classify", lambda: skill.classify(ctx, computed))
        result = _timed(timings, "synthesize", lambda: skill.synthesize(ctx, computed, classified))
        result.run_id = run_id
        result.ai_written = result.ai_written and ctx.budget.ai_used
        _finish(db, ctx, "succeeded", result.to_dict(), None, timings, started)
        return result
    except Exception as exc:
        message = exc.message if isinstance(exc, PandoraError) else f"{type(exc).__name__}: {exc}"
        _finish(db, ctx, "failed", None, message, timings, started)
        if isinstance(exc, PandoraError):
            raise
        raise SkillError(f"{skill.name} failed: {message}", run_id=run_id) from exc


def _timed(timings: dict[str, float], phase: str, fn):
    t = time.perf_counter()
    try:
        return fn()
    finally:
        timings[phase] = round((time.perf_counter() - t) * 1000, 1)


def _finish(db, ctx: SkillContext, status: str, output, error, timings, started) -> None:
    totals = ctx.budget.totals()
    with db.connection() as conn:
        conn.execute(
            "UPDATE skill_runs SET status = %(status)s, output = %(output)s, error = %(error)s, timings = %(timings)s,"
            " tokens_in = %(tin)s, tokens_out = %(tout)s, ai_used = %(ai)s, finished_at = now(), duration_ms = %(ms)s"
            " WHERE workspace_id = %(workspace_id)s AND id = %(id)s",
            {"workspace_id": ctx.workspace_id, "id": ctx.run_id, "status": status,
             "output": Jsonb(output) if output is not None else None, "error": error, "timings": Jsonb(timings),
             "tin": totals["tokens_in"], "tout": totals["tokens_out"], "ai": totals["ai_used"],
             "ms": int((time.perf_counter() - started) * 1000)},
        )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    from skills.result import _plain

    return _plain(values)

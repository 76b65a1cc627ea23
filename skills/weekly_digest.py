"""weekly-digest: the Monday post — forecast, coverage, hygiene, risk and data quality in one result.

It runs each part's COMPUTE → CLASSIFY → SYNTHESIZE inside this run (one token budget, one skill_runs row),
keeps each part's headline, key metrics and evidence, and adds a short overall summary (Claude when a key is
set, else a template). A part that fails is reported as such; it never sinks the digest.
"""
from __future__ import annotations

from typing import Any

from skills import registry
from skills.format import fmt
from skills.registry import Skill, register
from skills.result import Section, SkillResult

PARTS = ("forecast-rollup", "pipeline-coverage", "pipeline-hygiene", "deal-risk-review", "data-quality-audit")
KEY_METRICS = 4  # per part, in the digest


@register
class WeeklyDigest(Skill):
    name = "weekly-digest"
    description = "The weekly post: forecast, coverage, hygiene, deal risk and data quality together"
    aliases = ("digest",)
    schedule = "weekly mon 09:00"

    def compute(self, ctx) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name in PARTS:
            try:
                part = registry.get(name)
            except Exception:
                continue  # not installed in this build
            try:
                computed = part.compute(ctx)
                classified = {} if part.compute_only else part.classify(ctx, computed)
                parts[name] = part.synthesize(ctx, computed, classified)
            except Exception as exc:  # one part failing must not sink the digest
                parts[name] = exc
        return {"parts": parts}

    def synthesize(self, ctx, computed: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        parts: dict[str, Any] = computed["parts"]
        sections, metrics, tables, charts, evidence, failed = [], [], [], [], [], []
        for name, part in parts.items():
            if isinstance(part, Exception):
                failed.append(name)
                sections.append(Section(name, f"Could not run: {getattr(part, 'message', part)}"))
                continue
            sections.append(Section(part.headline, bullets=[
                f"{m.label}: {fmt(m.value, m.unit)}" + (f" ({m.status.replace('_', ' ')})" if m.status else "")
                for m in part.metrics[:KEY_METRICS]]))
            metrics += part.metrics[:KEY_METRICS]
            tables += part.tables[:1]
            charts += part.charts
            evidence += part.evidence
        ok = [p for p in parts.values() if not isinstance(p, Exception)]
        headline = f"Weekly digest: {len(ok)} reports" + (f", {len(failed)} failed" if failed else "")
        if ok:
            headline = f"Weekly digest — {ok[0].headline}"
        template = lambda: " ".join(p.headline + "." for p in ok) or "No reports could be produced this week."  # noqa: E731
        text = ctx.synthesize(task="weekly digest",
                          instructions="Write a 4-6 sentence Monday digest for a CRO from these report headlines "
                                       "and metrics: the forecast call, the biggest risks, and what to fix first.",
                          data={"reports": [{"headline": p.headline, "metrics": [
                              {"label": m.label, "value": m.value, "unit": m.unit, "status": m.status}
                              for m in p.metrics[:KEY_METRICS]]} for p in ok]}, template=template)
        return SkillResult(self.name, headline, [Section("This week", text.text), *sections], metrics, tables,
                           charts, evidence, ai_written=text.ai_written,
                           notes=[f"{n} could not run" for n in failed],
                           data={"parts": {n: (p.to_dict() if not isinstance(p, Exception) else {"error": str(p)})
                                           for n, p in parts.items()}})

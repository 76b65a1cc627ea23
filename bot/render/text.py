"""Plain-text rendering of a SkillResult, for the CLI and `pandora say` (Slack gets Block Kit instead)."""
from __future__ import annotations

from skills.format import fmt
from skills.result import SkillResult

MAX_TABLE_ROWS = 15


def render_text(result: SkillResult) -> str:
    lines = [result.headline, ""]
    if result.metrics:
        width = max(len(m.label) for m in result.metrics)
        for m in result.metrics:
            extra = f"  ({m.status})" if m.status else ""
            if m.change is not None:
                extra += f"  {'+' if float(m.change) >= 0 else ''}{fmt(m.change, m.unit)} vs last run"
            lines.append(f"  {m.label:<{width}}  {fmt(m.value, m.unit)}{extra}")
        lines.append("")
    for s in result.sections:
        lines.append(s.title.upper())
        if s.text:
            lines.append(s.text)
        lines += [f"  • {b}" for b in s.bullets]
        lines.append("")
    for t in result.tables:
        lines.append(t.title.upper())
        rows = [[fmt(c) if not isinstance(c, str) else c for c in r] for r in t.rows[:MAX_TABLE_ROWS]]
        widths = [max(len(str(x)) for x in col) for col in zip(t.columns, *rows)] if rows else [len(c) for c in t.columns]
        lines.append("  " + "  ".join(f"{c:<{w}}" for c, w in zip(t.columns, widths)))
        lines += ["  " + "  ".join(f"{str(c):<{w}}" for c, w in zip(r, widths)) for r in rows]
        if len(t.rows) > MAX_TABLE_ROWS:
            lines.append(f"  … {len(t.rows) - MAX_TABLE_ROWS} more rows (see --json)")
        if t.note:
            lines.append(f"  {t.note}")
        lines.append("")
    for c in result.charts:
        if c.path:
            lines.append(f"chart: {c.title} → {c.path}")
    if result.evidence:
        lines.append(f"evidence: {sum(len(e.ids) for e in result.evidence)} records behind {len(result.evidence)} claims (see --json)")
    lines += [f"note: {n}" for n in result.notes]
    if not result.ai_written:
        lines.append("note: written from templates and rules, not by an AI model")
    return "\n".join(lines).rstrip() + "\n"

"""How each skill's result reads in Slack: the default layout and per-skill formatters.

Default layout: header (headline) → metrics as section fields → sections (text + bullets) → tables as compact
mrkdwn lists (≤ 10 rows, then how many more and how to see them) → evidence (the records' labels) → charts →
notes, with "written from templates and rules, not by an AI model" when no model wrote it.
`FORMATTERS` maps a skill name to a function that reorders or trims that layout (forecast: attainment first
with a status emoji; hygiene: issues grouped; deal risk: the top deals with their risk factors).

Formatters return plain block lists built only with `bot.render.blocks` helpers; `render_result` validates
and paginates them. They never query the database or call Slack, and never drop a skill's headline or the
"not by an AI model" note.
"""
from __future__ import annotations

from typing import Any, Callable

from bot.render.blocks import (MAX_SECTION_TEXT, context, divider, fields_blocks, header, mrkdwn_escape as esc,
                               section, split_text, truncate)
from skills.format import fmt
from skills.result import Metric, SkillResult, Table

MAX_TABLE_ROWS = 10
MAX_LABELS = 5
NOT_AI = "written from templates and rules, not by an AI model"
STATUS_EMOJI = {"crushing": "🚀", "on_track": "🟢", "at_risk": "🟡", "behind": "🟠", "off_track": "🔴",
                "unknown": "⚪", "critical": "🔴", "serious": "🟠", "warning": "🟡", "watch": "⚪",
                "high": "🔴", "medium": "🟠", "low": "🟢"}

Formatter = Callable[[SkillResult], "list[dict[str, Any]]"]


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return esc(value if isinstance(value, str) else fmt(value))


def _emoji(status: str | None) -> str:
    key = (status or "").strip().lower().replace(" ", "_")
    return STATUS_EMOJI.get(key, "")


def metric_value(m: Metric) -> str:
    text = fmt(m.value, m.unit)
    if m.status:
        text += f"  {_emoji(m.status)} {m.status.replace('_', ' ')}".replace("   ", "  ")
    if m.change is not None:
        try:
            sign = "+" if float(m.change) >= 0 else ""
            text += f"\n_{sign}{fmt(m.change, m.unit)} vs last run_"
        except (TypeError, ValueError):
            pass
    return text


# --- the default layout's parts ---------------------------------------------------------------------------------

def title_blocks(result: SkillResult, *, emoji: str = "") -> list[dict[str, Any]]:
    headline = f"{emoji} {result.headline}".strip()
    if len(headline) <= 150:
        return [header(headline)]
    # Too long for a header: a short title, then the whole headline as bold text.
    return [header(f"{emoji} {result.skill.replace('-', ' ').capitalize()}".strip()), section(f"*{esc(headline)}*")]


def metric_blocks(metrics: list[Metric]) -> list[dict[str, Any]]:
    return fields_blocks([(esc(m.label), metric_value(m)) for m in metrics])


def section_blocks(result: SkillResult) -> list[dict[str, Any]]:
    blocks = []
    for s in result.sections:
        body = [f"*{esc(s.title)}*"] if s.title else []
        if s.text:
            body.append(esc(s.text))
        body += [f"• {esc(b)}" for b in s.bullets]
        blocks += [section(piece) for piece in split_text("\n".join(body))]
    return blocks


def table_block(table: Table, skill: str, *, max_rows: int = MAX_TABLE_ROWS) -> dict[str, Any]:
    """A table as a compact list: one line per row, first column bold, the rest joined with " · "."""
    lines = [f"*{esc(table.title)}*  _{' · '.join(esc(c) for c in table.columns)}_"]
    shown = 0
    budget = MAX_SECTION_TEXT - 200  # room for the "more rows" and note lines
    for row in table.rows[:max_rows]:
        cells = [_cell(c) for c in row]
        line = "• " + " · ".join([f"*{cells[0]}*", *cells[1:]] if cells else ["—"])
        line = truncate(line, 400)
        if sum(len(x) + 1 for x in lines) + len(line) > budget:
            break
        lines.append(line)
        shown += 1
    if not table.rows:
        lines.append("_none_")
    if len(table.rows) > shown:
        more = len(table.rows) - shown
        lines.append(f"_…and {more} more row{'s' if more > 1 else ''}: `pandora run {skill} --json` lists them all_")
    if table.note:
        lines.append(f"_{esc(table.note)}_")
    return section("\n".join(lines))


def table_blocks(result: SkillResult, tables: list[Table] | None = None) -> list[dict[str, Any]]:
    return [table_block(t, result.skill) for t in (result.tables if tables is None else tables)]


def evidence_text(result: SkillResult) -> str | None:
    lines = []
    for e in result.evidence:
        labels = [esc(x) for x in e.labels if x][:MAX_LABELS]
        more = len(e.ids) - len(labels)
        what = ", ".join(labels) if labels else f"{len(e.ids)} {e.entity}"
        if labels and more > 0:
            what += f" and {more} more"
        lines.append(f"• {esc(e.claim)}: {what}")
    return ("*Evidence*\n" + "\n".join(lines)) if lines else None


def footer_blocks(result: SkillResult) -> list[dict[str, Any]]:
    blocks = []
    text = evidence_text(result)
    if text:
        blocks += [context(piece) for piece in split_text(text)]
    charts = [c.title for c in result.charts if c.path]
    if charts:
        blocks.append(context("📈 " + "; ".join(esc(t) for t in charts) + " (attached)"))
    notes = [esc(n) for n in result.notes if n]
    if not result.ai_written:
        notes.append(NOT_AI)
    if notes:
        blocks += [context(piece) for piece in split_text("\n".join(f"_{n}_" for n in notes))]
    return blocks


def default_blocks(result: SkillResult) -> list[dict[str, Any]]:
    blocks = title_blocks(result) + metric_blocks(result.metrics) + section_blocks(result)
    if result.tables:
        blocks += [divider(), *table_blocks(result)]
    return blocks + footer_blocks(result)


# --- per-skill formatters ---------------------------------------------------------------------------------------

def _table(result: SkillResult, title: str) -> Table | None:
    return next((t for t in result.tables if t.title == title), None)


def _rows(table: Table) -> list[dict[str, Any]]:
    return [dict(zip(table.columns, row)) for row in table.rows]


def forecast(result: SkillResult) -> list[dict[str, Any]]:
    """Attainment (with its status emoji) and the quota first; reps as one line each with their own emoji."""
    att = result.metric("attainment")
    lead = ("attainment", "quota", "base", "bear", "bull")
    metrics = sorted(result.metrics, key=lambda m: lead.index(m.key) if m.key in lead else len(lead))
    blocks = title_blocks(result, emoji=_emoji(att.status if att else None))
    blocks += metric_blocks(metrics) + section_blocks(result)
    reps = _table(result, "Reps")
    if reps is not None and reps.rows:
        lines = [f"• {_emoji(r.get('Band'))} *{_cell(r.get('Rep'))}* — base {_cell(r.get('Base'))} of "
                 f"{_cell(r.get('Quota'))} ({_cell(r.get('Attainment'))}, {_cell(r.get('Band'))}) · won "
                 f"{_cell(r.get('Closed won'))} · commit {_cell(r.get('Commit'))}" for r in _rows(reps)]
        blocks += [divider(), *[section(p) for p in split_text("*Reps*\n" + "\n".join(lines))]]
    blocks += table_blocks(result, [t for t in result.tables if t is not reps])
    return blocks + footer_blocks(result)


def hygiene(result: SkillResult) -> list[dict[str, Any]]:
    """The lead metrics, then the issues grouped: each finding with its deals and money, the stale deals
    grouped by severity, then the remaining tables."""
    blocks = title_blocks(result) + metric_blocks(result.metrics[:6]) + section_blocks(result)
    found = _table(result, "Findings")
    stale = _table(result, "Stale deals")
    if found is not None:
        rows = _rows(found)
        hits = [r for r in rows if r.get("Deals")]
        clean = [esc(r["Finding"]) for r in rows if not r.get("Deals")]
        lines = [f"• *{esc(r['Finding'])}* — {_cell(r['Deals'])} deals"
                 + ("" if r.get("$ at stake") in (None, "—") else f" · {_cell(r['$ at stake'])} at stake")
                 for r in hits]
        if clean:
            lines.append(f"_No issues: {', '.join(clean)}_")
        blocks += [divider(), section("*Issues*\n" + "\n".join(lines))]
    if stale is not None and stale.rows:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in _rows(stale):
            groups.setdefault(str(r.get("Severity") or "unknown"), []).append(r)
        lines = [f"{_emoji(sev)} *{esc(sev)}* ({len(rs)}): " + "; ".join(
            f"{_cell(r['Deal'])} ({_cell(r['Amount'])}, {_cell(r['Owner'])}, {_cell(r['Days quiet'])} days quiet)"
            for r in rs[:MAX_TABLE_ROWS]) for sev, rs in groups.items()]
        if stale.note:
            lines.append(f"_{esc(stale.note)}_")
        blocks += [section(p) for p in split_text("*Stale deals by severity*\n" + "\n".join(lines))]
    blocks += table_blocks(result, [t for t in result.tables if t is not found and t is not stale])
    return blocks + footer_blocks(result)


def deal_risk(result: SkillResult) -> list[dict[str, Any]]:
    """The at-risk figures, then each of the riskiest deals as its own section with its risk factors."""
    blocks = title_blocks(result) + metric_blocks(result.metrics[:4]) + section_blocks(result)
    top = _table(result, "Riskiest open deals")
    factors_by_name = {d.get("name"): d.get("factors") or [] for d in (result.data.get("deals") or [])
                       if isinstance(d, dict)}
    if top is not None and top.rows:
        blocks.append(divider())
        for i, r in enumerate(_rows(top)[:MAX_TABLE_ROWS], 1):
            text = (f"*{i}. {_cell(r.get('Deal'))}* · {_cell(r.get('Amount'))} · {_cell(r.get('Stage'))} · "
                    f"{_cell(r.get('Owner'))}\n{_emoji(r.get('Level'))} Risk *{_cell(r.get('Risk'))}* "
                    f"({_cell(r.get('Level'))}) — {_cell(r.get('Reason'))}")
            factors = [f for f in factors_by_name.get(r.get("Deal"), []) if isinstance(f, dict) and f.get("factor")]
            if factors:
                text += "\n_Factors: " + ", ".join(
                    esc(str(f["factor"]).replace("_", " ")) + (f" (+{fmt(f['points'])})" if f.get("points") else "")
                    for f in factors) + "_"
            blocks.append(section(text))
        if len(top.rows) > MAX_TABLE_ROWS:
            blocks.append(context(f"…and {len(top.rows) - MAX_TABLE_ROWS} more deals: "
                                  f"`pandora run {result.skill} --json` lists them all"))
    blocks += table_blocks(result, [t for t in result.tables if t is not top])
    return blocks + footer_blocks(result)


FORMATTERS: dict[str, Formatter] = {
    "forecast-rollup": forecast,
    "pipeline-hygiene": hygiene,
    "deal-risk-review": deal_risk,
}


def blocks_for(result: SkillResult) -> list[dict[str, Any]]:
    return FORMATTERS.get(result.skill, default_blocks)(result)

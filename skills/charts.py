"""Charts for skill results: the forecast waterfall and coverage by rep, as PNG files.

A chart is first a `Chart(kind, title, data)` built from the COMPUTE figures alone (pure, cheap, always present
in the result, so JSON and Slack consumers can draw it themselves); `render` then draws it with matplotlib's Agg
canvas (headless, no pyplot global state, safe in threads) into
`settings.pandora_home / "charts" / <run_id> / <kind>.png` and sets `chart.path`.

Rendering must never fail a skill: `render` catches everything (matplotlib missing, a bad figure, a full disk)
and returns a note saying what went wrong, which the skill adds to its result's notes; `chart.path` stays None.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from skills.result import Chart

log = logging.getLogger("pandora.charts")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLORS = {"closed_won": "#2e7d32", "commit": "#1565c0", "best_case": "#64b5f6", "pipeline": "#b0bec5",
           "on_track": "#2e7d32", "at_risk": "#f9a825", "behind": "#c62828", "unknown": "#9e9e9e",
           "quota_met": "#1b5e20"}


def forecast_waterfall(title: str, closed_won: float, commit: float, best_case: float, pipeline: float,
                       quota: float | None) -> Chart:
    """Closed won → commit → best case → pipeline, each step stacked on the last (so the tops are bear, base
    and bull), with the quota as a line."""
    steps = [("closed_won", "Closed won", closed_won), ("commit", "Commit", commit),
             ("best_case", "Best case", best_case), ("pipeline", "Pipeline", pipeline)]
    running, out = 0.0, []
    for key, label, amount in steps:
        amount = float(amount or 0)
        out.append({"key": key, "label": label, "start": running, "amount": amount, "end": running + amount})
        running += amount
    return Chart("waterfall", title, {"steps": out, "quota": float(quota) if quota else None})


def coverage_by_rep(title: str, reps: list[dict[str, Any]], target: float, alert_below: float | None = None) -> Chart:
    """One bar per rep (coverage ×, coloured by status) with the coverage target as a line; reps without a
    coverage figure (no quota, or quota already met) are listed with coverage None and drawn as a labelled gap."""
    bars = [{"rep": r["rep"], "coverage": float(r["coverage"]) if r.get("coverage") is not None else None,
             "status": r.get("status") or "unknown"} for r in reps]
    return Chart("bar", title, {"bars": bars, "target": float(target), "alert_below": alert_below,
                                "unit": "x", "series": "coverage_by_rep"})


def render(ctx, chart: Chart) -> str | None:
    """Draw `chart` to its PNG and set `chart.path`; on any failure return a note (and leave path None)."""
    try:
        figure = _draw(chart)
        folder = Path(ctx.settings.pandora_home) / "charts" / str(ctx.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_slug(chart.data.get('series') or chart.kind)}.png"
        figure.savefig(path, format="png", dpi=110)
        chart.path = str(path)
        return None
    except Exception as exc:  # noqa: BLE001 - a chart is decoration; the skill's figures stand without it
        log.warning("chart %r not rendered", chart.title, exc_info=True)
        chart.path = None
        return f"chart '{chart.title}' was not rendered ({type(exc).__name__}: {exc}); its figures are in the result"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _figure(width: float = 7.5, height: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _draw(chart: Chart):
    if chart.kind == "waterfall":
        return _draw_waterfall(chart)
    if chart.kind == "bar":
        return _draw_bars(chart)
    raise ValueError(f"no renderer for chart kind {chart.kind!r}")


def _money(v: float) -> str:
    return f"${v / 1_000_000:,.2f}M" if abs(v) >= 1_000_000 else f"${v / 1_000:,.0f}k" if abs(v) >= 1_000 else f"${v:,.0f}"


def _draw_waterfall(chart: Chart):
    steps, quota = chart.data["steps"], chart.data.get("quota")
    figure = _figure()
    ax = figure.add_subplot()
    xs = range(len(steps))
    ax.bar(xs, [s["amount"] for s in steps], bottom=[s["start"] for s in steps],
           color=[_COLORS.get(s["key"], "#90a4ae") for s in steps], width=0.6)
    tops = {"closed_won": None, "commit": "bear", "best_case": "base", "pipeline": "bull"}
    for x, s in zip(xs, steps):
        label = f"+{_money(s['amount'])}" + (f"\n{tops[s['key']]} {_money(s['end'])}" if tops.get(s["key"]) else "")
        ax.annotate(label, (x, s["end"]), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    if quota:
        ax.axhline(quota, color="#c62828", linestyle="--", linewidth=1.2, label=f"quota {_money(quota)}")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_xticks(list(xs), [s["label"] for s in steps])
    top = max([s["end"] for s in steps] + [quota or 0]) or 1
    ax.set_ylim(0, top * 1.18)
    ax.yaxis.set_major_formatter(lambda v, _pos: _money(v))
    ax.set_title(chart.title, fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def _draw_bars(chart: Chart):
    bars, target = chart.data["bars"], chart.data["target"]
    alert = chart.data.get("alert_below")
    figure = _figure(7.5, max(2.5, 0.42 * len(bars) + 1.4))
    ax = figure.add_subplot()
    ys = list(range(len(bars)))[::-1]  # first rep on top
    values = [b["coverage"] or 0 for b in bars]
    ax.barh(ys, values, color=[_COLORS.get(b["status"], "#90a4ae") for b in bars], height=0.6)
    for y, b in zip(ys, bars):
        text = f"{b['coverage']:.2f}x" if b["coverage"] is not None else b["status"].replace("_", " ")
        ax.annotate(text, (b["coverage"] or 0, y), va="center", fontsize=8,
                    xytext=(3, 0), textcoords="offset points")
    ax.axvline(target, color="#2e7d32", linestyle="--", linewidth=1.2, label=f"target {target:g}x")
    if alert is not None:
        ax.axvline(alert, color="#c62828", linestyle=":", linewidth=1.0, label=f"alert {alert:g}x")
    ax.set_yticks(ys, [b["rep"] for b in bars])
    ax.set_xlim(0, max(values + [target]) * 1.2 or 1)
    ax.set_xlabel("open pipeline ÷ quota remaining")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(chart.title, fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure

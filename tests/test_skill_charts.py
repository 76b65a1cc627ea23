"""Charts: the figures a chart carries, the PNG it renders to, and that a chart which cannot be drawn never fails
the skill it belongs to."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.db.upsert import upsert_rows
from core.quotas import set_rep_quota, upsert_quota_period
from core.settings import Settings
from skills import charts
from skills.result import Chart
from skills.runtime import run_skill

TODAY = date(2026, 5, 15)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


@pytest.fixture
def settings(db, tmp_path) -> Settings:
    return Settings(database_url=db.url, pandora_home=tmp_path / "home", secret_key="test-secret-key")


def is_png(path) -> bool:
    data = Path(path).read_bytes()
    return data.startswith(charts.PNG_SIGNATURE) and len(data) > 1000


def test_waterfall_steps_stack_to_bear_base_and_bull():
    chart = charts.forecast_waterfall("Q2", 100, 50, 30, 20, 250)
    assert [(s["key"], s["start"], s["end"]) for s in chart.data["steps"]] == [
        ("closed_won", 0, 100), ("commit", 100, 150), ("best_case", 150, 180), ("pipeline", 180, 200)]
    assert chart.data["quota"] == 250 and chart.kind == "waterfall"


def test_coverage_chart_keeps_reps_without_a_coverage_figure():
    chart = charts.coverage_by_rep("Q2", [{"rep": "Ana", "coverage": 2.5, "status": "at_risk"},
                                          {"rep": "Dan", "coverage": None, "status": "unknown"}], 3.0, 1.5)
    assert chart.data["bars"] == [{"rep": "Ana", "coverage": 2.5, "status": "at_risk"},
                                  {"rep": "Dan", "coverage": None, "status": "unknown"}]
    assert (chart.data["target"], chart.data["alert_below"]) == (3.0, 1.5)


@pytest.mark.parametrize("chart", [
    charts.forecast_waterfall("Q2 forecast", 100000, 50000, 30000, 20000, 250000),
    charts.forecast_waterfall("No quota, nothing closed", 0, 0, 0, 0, None),
    charts.coverage_by_rep("Q2 coverage", [{"rep": "Ana", "coverage": 2.5, "status": "at_risk"},
                                           {"rep": "Dan", "coverage": None, "status": "unknown"}], 3.0, None),
    charts.coverage_by_rep("No reps", [], 3.0, 1.5),
])
def test_render_writes_a_png_under_the_runs_chart_folder(tmp_path, chart):
    ctx = SimpleNamespace(settings=SimpleNamespace(pandora_home=tmp_path), run_id="run-1")
    assert charts.render(ctx, chart) is None
    assert Path(chart.path).parent == tmp_path / "charts" / "run-1"
    assert is_png(chart.path)


def test_render_of_an_unknown_kind_is_a_note_not_an_error(tmp_path):
    chart = Chart("pie", "Mystery", {})
    note = charts.render(SimpleNamespace(settings=SimpleNamespace(pandora_home=tmp_path), run_id="r"), chart)
    assert chart.path is None and "not rendered" in note


@pytest.fixture
def seeded(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "deals", workspace["id"], [
            {"source": "crm", "source_id": "won", "owner": "Ana", "amount": 40000, "stage_normalized": "closed_won",
             "close_date": date(2026, 4, 10)},
            {"source": "crm", "source_id": "open", "owner": "Ana", "amount": 90000, "stage_normalized": "negotiation",
             "close_date": date(2026, 6, 10)},
        ])
        period = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1),
                                     date(2026, 6, 30), 100000)
        set_rep_quota(conn, workspace["id"], period, "Ana", None, 100000)
    return workspace


@pytest.mark.parametrize("skill, kind", [("forecast-rollup", "waterfall"), ("pipeline-coverage", "bar")])
def test_skills_attach_their_rendered_chart(db, settings, seeded, skill, kind):
    result = run_skill(db, settings, seeded["id"], skill, today=TODAY)
    [chart] = result.charts
    assert chart.kind == kind
    assert Path(chart.path).parent == settings.pandora_home / "charts" / result.run_id
    assert is_png(chart.path)


@pytest.mark.parametrize("skill", ["forecast-rollup", "pipeline-coverage"])
def test_a_chart_that_fails_to_render_leaves_a_note_and_the_skill_succeeds(db, settings, seeded, monkeypatch, skill):
    def boom(chart):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(charts, "_draw", boom)
    result = run_skill(db, settings, seeded["id"], skill, today=TODAY)
    assert result.charts[0].path is None and result.charts[0].data  # the figures are still there
    assert any("not rendered (RuntimeError: renderer exploded)" in n for n in result.notes)
    assert not (settings.pandora_home / "charts" / result.run_id).exists() or \
        not any((settings.pandora_home / "charts" / result.run_id).iterdir())

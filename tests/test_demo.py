"""`pandora demo`: builds the Demo Co workspace and reports numbers that match the database."""
from __future__ import annotations

import argparse
from datetime import date

import pytest

from bot.demo import demo, register
from core.db.database import Database
from core.synthetic import ENTITY_ORDER

TODAY = date(2026, 5, 14)


@pytest.fixture
def first_run(settings):
    return demo(argparse.Namespace(seed=7, scale=1, today=TODAY), settings)


def _one(db: Database, query: str, **params):
    with db.connection() as conn:
        return conn.execute(query, params).fetchone()


def test_demo_counts_match_the_database(first_run, db):
    data, _ = first_run
    ws = data["workspace"]
    assert ws["name"] == "Demo Co"
    for table in ENTITY_ORDER:
        n = _one(db, f"SELECT count(*) AS n FROM {table} WHERE workspace_id = %(w)s", w=ws["id"])["n"]
        assert data["counts"][table]["total"] == data["counts"][table]["inserted"] == n > 0, table


def test_demo_pipeline_numbers_match_the_database(first_run, db):
    data, _ = first_run
    w = data["workspace"]["id"]
    pipe = _one(db, "SELECT count(*) AS n, sum(amount) AS amount FROM deals WHERE workspace_id = %(w)s"
                    " AND stage_normalized NOT IN ('closed_won', 'closed_lost')", w=w)
    won = _one(db, "SELECT count(*) AS n, coalesce(sum(amount), 0) AS amount FROM deals WHERE workspace_id = %(w)s"
                   " AND stage_normalized = 'closed_won' AND close_date BETWEEN %(s)s AND %(e)s",
               w=w, s=data["quarter"]["start"], e=data["quarter"]["end"])
    assert (data["open_pipeline"]["count"], data["open_pipeline"]["amount"]) == (pipe["n"], pipe["amount"])
    assert (data["closed_won_this_quarter"]["count"], data["closed_won_this_quarter"]["amount"]) == (won["n"], won["amount"])
    assert sum(s["count"] for s in data["deals_by_stage"]) == data["counts"]["deals"]["total"]
    assert [s["stage"] for s in data["deals_by_stage"]][:2] == ["awareness", "qualification"]


def test_demo_reports_every_rep_with_a_current_quarter_quota(first_run):
    data, _ = first_run
    assert data["quarter"]["name"] == "FY2026 Q2"
    assert len(data["reps"]) == 8
    assert all(r["email"].endswith("@democo.io") and r["quota"] > 0 for r in data["reps"])
    assert data["team_quota"] == sum(r["quota"] for r in data["reps"])


def test_demo_resolves_every_reference(first_run):
    refs = first_run[0]["references"]
    assert refs["total"] > 10_000 and refs["resolved"] == refs["total"]
    assert refs["by_reference"]["deals.account_id"] == {"resolved": 400, "total": 400}


def test_running_demo_again_refreshes_the_same_workspace_without_writing(first_run, settings):
    again, _ = demo(argparse.Namespace(seed=7, scale=1, today=TODAY), settings)
    assert again["workspace"]["id"] == first_run[0]["workspace"]["id"]
    for table in ENTITY_ORDER:
        c = again["counts"][table]
        assert c["inserted"] == c["updated"] == 0 and c["unchanged"] == c["total"], table


def test_demo_text_is_a_short_report_of_the_same_numbers(first_run):
    data, text = first_run
    summary, *reports = text.split("\n\n")
    lines = summary.splitlines()
    assert len(lines) < 30
    assert lines[0].startswith("Demo Co workspace")
    deals_line = next(line for line in lines if line.strip().startswith("deals "))
    assert "400" in deals_line and "+400 new" in deals_line
    assert f"${data['open_pipeline']['amount']:,.0f}" in text
    assert all(r["name"] in text for r in data["reps"])


def test_demo_prints_the_forecast_hygiene_and_quality_reports(first_run):
    data, text = first_run
    assert set(data["reports"]) == {"forecast-rollup", "pipeline-hygiene", "data-quality-audit"}
    for report in data["reports"].values():
        assert report["headline"] in text and report["run_id"]


def test_register_adds_the_demo_subcommand_with_seed_scale_and_today():
    parser = argparse.ArgumentParser(prog="pandora")
    sub = parser.add_subparsers(dest="command")

    def add(name, handler, help):
        p = sub.add_parser(name, help=help)
        p.set_defaults(handler=handler)
        return p

    register(add)
    args = parser.parse_args(["demo", "--seed", "3", "--scale", "2", "--today", "2026-01-31"])
    assert (args.handler, args.seed, args.scale, args.today) == (demo, 3, 2, date(2026, 1, 31))
    defaults = parser.parse_args(["demo"])
    assert (defaults.seed, defaults.scale, defaults.today) == (7, 1, None)

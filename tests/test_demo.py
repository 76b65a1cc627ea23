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


def _links(db, workspace_id) -> dict:
    """Every demo row's links by source ids (stable across rebuilds, unlike row ids)."""
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT 'conversation ' || cv.source_id AS row, a.source_id AS account, d.source_id AS deal,
                      c.source_id AS contact, cv.link_method, cv.cwd_severity
                 FROM conversations cv
                 LEFT JOIN accounts a ON a.workspace_id = cv.workspace_id AND a.id = cv.account_id
                 LEFT JOIN deals d ON d.workspace_id = cv.workspace_id AND d.id = cv.deal_id
                 LEFT JOIN contacts c ON c.workspace_id = cv.workspace_id AND c.id = cv.contact_id
                WHERE cv.workspace_id = %(w)s
               UNION ALL
               SELECT 'deal-contact ' || d.source_id || ' ' || c.source_id, dc.role_source, NULL, NULL, NULL, NULL
                 FROM deal_contacts dc
                 JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id
                 JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id
                WHERE dc.workspace_id = %(w)s""", {"w": workspace_id}).fetchall()
    return {r["row"]: tuple(r.values())[1:] for r in rows}


def test_a_demo_of_another_day_rebuilds_the_workspace_as_if_it_were_new(first_run, settings, db):
    """The generator draws another dataset for another day under the same source ids (conv-00550 may be another
    account's call): upserting it over yesterday's would keep yesterday's CRM links (links are sticky) and rows
    today's dataset lacks. A demo of other parameters replaces the demo rows instead, in the same workspace."""
    from datetime import timedelta

    later = argparse.Namespace(seed=7, scale=1, today=TODAY + timedelta(days=1))
    refreshed, text = demo(later, settings)
    ws = refreshed["workspace"]["id"]
    assert ws == first_run[0]["workspace"]["id"]
    assert "rebuilt: it held the demo of seed 7, scale 1 as of 2026-05-14" in text
    assert all(c["inserted"] == c["total"] for c in refreshed["counts"].values())
    kept = _links(db, ws)
    with db.connection() as conn:
        conn.execute("DELETE FROM workspaces WHERE id = %s", (ws,))
    fresh, _ = demo(later, settings)
    assert kept == _links(db, fresh["workspace"]["id"])
    assert demo(later, settings)[0]["counts"]["conversations"]["inserted"] == 0  # same day again: nothing written


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

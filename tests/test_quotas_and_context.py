from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from bot.cli import main
from core.context import get_context, update_section
from core.errors import InputError
from core.quotas import check_quota_config, set_rep_quota, upsert_quota_period


def test_active_period_comes_first(db, workspace):
    with db.connection() as conn:
        update_section(conn, workspace["id"], "goals_and_targets", {"quotas": {"team": 999}})
        pid = upsert_quota_period(conn, workspace["id"], "FY2026 Q2", "quarter", date(2026, 4, 1), date(2026, 6, 30), 500000)
        set_rep_quota(conn, workspace["id"], pid, "Dana", "dana@democo.io", 250000)
        upsert_quota_period(conn, workspace["id"], "FY2026", "year", date(2026, 1, 1), date(2026, 12, 31), 2000000)
        cfg = check_quota_config(conn, workspace["id"], today=date(2026, 5, 14))
    assert cfg.source == "quota_period" and cfg.period.name == "FY2026 Q2"  # the shortest period covering today
    assert cfg.team_quota == 500000 and cfg.rep_quotas == {"Dana": Decimal("250000.00")}


def test_context_quotas_when_no_period_covers_today(db, workspace):
    with db.connection() as conn:
        upsert_quota_period(conn, workspace["id"], "FY2025 Q4", "quarter", date(2025, 10, 1), date(2025, 12, 31), 1)
        update_section(conn, workspace["id"], "goals_and_targets", {"quotas": {"team": 800000, "byRep": {"Sam": 200000}}})
        cfg = check_quota_config(conn, workspace["id"], today=date(2026, 5, 14))
    assert (cfg.source, cfg.team_quota, cfg.rep_quotas) == ("context", Decimal("800000"), {"Sam": Decimal("200000")})
    assert cfg.period.name == "FY2026 Q2"


def test_no_quota_says_how_to_set_one(db, workspace):
    with db.connection() as conn:
        none = check_quota_config(conn, workspace["id"])
        update_section(conn, workspace["id"], "goals_and_targets", {"revenue_target": 5000000})
        target = check_quota_config(conn, workspace["id"])
    assert none.source == "none" and "pandora quota set" in none.hint
    assert target.source == "revenue_target" and target.team_quota is None and "quota set" in target.hint


def test_context_sections_merge_validate_and_fall_back_to_defaults(db, workspace):
    with db.connection() as conn:
        update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"stale_deal_days": 7}})
        update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"critical_stale_days": 21}})
        ctx = get_context(conn, workspace["id"])
        assert ctx["goals_and_targets"]["thresholds"]["stale_deal_days"] == 7  # the earlier patch survived
        assert ctx["goals_and_targets"]["thresholds"]["min_contacts_per_deal"] == 2  # default
        with pytest.raises(InputError, match="sales_cycle_days"):
            update_section(conn, workspace["id"], "business_model", {"sales_cycle_days": "soon"})
        with pytest.raises(InputError, match="unknown context section"):
            update_section(conn, workspace["id"], "vibes", {})
        update_section(conn, workspace["id"], "goals_and_targets", {"thresholds": {"stale_deal_days": None}})
        assert get_context(conn, workspace["id"])["goals_and_targets"]["thresholds"]["stale_deal_days"] == 14


@pytest.fixture
def run(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PANDORA_SECRET_KEY", "k")

    def _run(*argv):
        code = main(list(argv) + ["--json"])
        return code, json.loads(capsys.readouterr().out)

    return _run


def test_quota_and_context_through_the_cli(run, workspace):
    ws = str(workspace["id"])
    code, out = run("quota", "set", "--workspace", ws, "--team", "1,200,000", "--rep", "Dana Reyes=150000:dana@democo.io")
    assert code == 0 and out["active"]["source"] == "quota_period"
    assert out["periods"][0]["reps"][0]["rep_email"] == "dana@democo.io"
    code, bad = run("quota", "set", "--workspace", ws, "--rep", "Dana=lots")
    assert code == 1 and "not an amount" in bad["error"]["message"]
    code, ctx = run("context", "set", "definitions", 'internal_domains=["DemoCo.io"]', "--workspace", ws)
    assert code == 0 and ctx["definitions"]["internal_domains"] == ["democo.io"]
    code, shown = run("context", "show", "--workspace", ws)
    assert set(shown) == {"business_model", "team_structure", "goals_and_targets", "definitions", "operational_maturity"}

from __future__ import annotations

from datetime import date

from core.db.upsert import upsert_rows
from skills import registry
from skills.runtime import run_skill

TODAY = date(2026, 5, 14)


def seed(db, ws):
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws["id"], [
            {"source": "crm", "source_id": "d1", "name": "Acme", "amount": 50000, "stage_normalized": "negotiation",
             "close_date": date(2026, 6, 1), "owner": "Dana", "forecast_category": "commit"},
            {"source": "crm", "source_id": "d2", "name": "Globex", "amount": 20000, "stage_normalized": "closed_won",
             "close_date": date(2026, 4, 20), "owner": "Dana"},
        ])


def test_digest_combines_the_parts_and_keeps_their_evidence(db, settings, workspace):
    seed(db, workspace)
    result = run_skill(db, settings, workspace["id"], "digest", today=TODAY)
    parts = result.data["parts"]
    assert set(parts) == {"forecast-rollup", "pipeline-coverage", "pipeline-hygiene", "deal-risk-review",
                          "data-quality-audit"}
    forecast = parts["forecast-rollup"]
    assert forecast["data"]["commit"] == 50000 and forecast["data"]["closed_won"] == 20000
    assert any(s.title == forecast["headline"] for s in result.sections)
    with db.connection() as conn:
        d1 = str(conn.execute("SELECT id FROM deals WHERE workspace_id = %s AND source_id = 'd1'",
                              (workspace["id"],)).fetchone()["id"])
    assert any(d1 in e.ids for e in result.evidence)  # the parts' evidence is kept
    assert not result.ai_written


def test_a_failing_part_is_reported_and_the_digest_still_succeeds(db, settings, workspace, monkeypatch):
    seed(db, workspace)
    hygiene = registry.get("pipeline-hygiene")
    monkeypatch.setattr(type(hygiene), "compute", lambda self, ctx: (_ for _ in ()).throw(RuntimeError("boom")))
    result = run_skill(db, settings, workspace["id"], "weekly-digest", today=TODAY)
    assert "pipeline-hygiene could not run" in result.notes
    assert "boom" in result.data["parts"]["pipeline-hygiene"]["error"]
    assert result.data["parts"]["forecast-rollup"]["headline"]

from __future__ import annotations

from core.db.upsert import upsert_rows
from core.pipeline import run_post_sync


def write(db, ws, rows):
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws["id"], rows)


def stages(db, ws):
    with db.connection() as conn:
        return {r["source_id"]: r["stage_normalized"] for r in conn.execute(
            "SELECT source_id, stage_normalized FROM deals WHERE workspace_id = %s", (ws["id"],))}


def mappings(db, ws):
    with db.connection() as conn:
        return {(r["source"], r["raw_stage"]): (r["stage_normalized"], r["origin"]) for r in conn.execute(
            "SELECT source, raw_stage, stage_normalized, origin FROM stage_mappings WHERE workspace_id = %s", (ws["id"],))}


def test_default_maps_normalize_salesforce_and_hubspot_stages(db, workspace):
    write(db, workspace, [
        {"source": "salesforce", "source_id": "o1", "stage": "Id. Decision Makers"},
        {"source": "salesforce", "source_id": "o2", "stage": "Negotiation/Review"},
        {"source": "hubspot", "source_id": "h1", "stage": "appointmentscheduled"},
        {"source": "hubspot", "source_id": "h2", "stage": "closedwon"},
    ])
    run_post_sync(db, workspace["id"])
    assert stages(db, workspace) == {"o1": "evaluation", "o2": "negotiation", "h1": "qualification", "h2": "closed_won"}
    assert mappings(db, workspace)[("hubspot", "closedwon")] == ("closed_won", "default")


def test_salesforce_closed_flags_beat_the_stage_name(db, workspace):
    write(db, workspace, [
        {"source": "salesforce", "source_id": "o1", "stage": "Negotiation/Review", "source_data": {"IsClosed": True, "IsWon": True}},
        {"source": "salesforce", "source_id": "o2", "stage": "Negotiation/Review", "source_data": {"IsClosed": True, "IsWon": False}},
        {"source": "salesforce", "source_id": "o3", "stage": "Negotiation/Review", "source_data": {"IsClosed": False}},
    ])
    run_post_sync(db, workspace["id"])
    assert stages(db, workspace) == {"o1": "closed_won", "o2": "closed_lost", "o3": "negotiation"}


def test_hubspot_custom_stage_ids_use_the_pipeline_labels_from_the_connection(db, vault, workspace):
    from core.connections import save_connection

    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "hubspot", {"token": "t"}, metadata={"deal_stages": {
            "1234567": {"label": "Technical Evaluation", "probability": 0.4, "closed": False, "won": False},
            "7654321": {"label": "Signed", "probability": 1.0, "closed": True, "won": True}}})
    write(db, workspace, [{"source": "hubspot", "source_id": "h1", "stage": "1234567"},
                          {"source": "hubspot", "source_id": "h2", "stage": "7654321"}])
    run_post_sync(db, workspace["id"])
    assert stages(db, workspace) == {"h1": "evaluation", "h2": "closed_won"}


def test_unknown_stage_is_guessed_stored_and_changeable(db, workspace):
    write(db, workspace, [{"source": "hubspot", "source_id": "h1", "stage": "Verbal yes from CFO", "probability": 85}])
    run_post_sync(db, workspace["id"])
    assert mappings(db, workspace)[("hubspot", "Verbal yes from CFO")] == ("negotiation", "inferred")
    with db.connection() as conn:
        conn.execute("UPDATE stage_mappings SET stage_normalized = 'decision', origin = 'user', updated_at = now()"
                     " WHERE workspace_id = %s", (workspace["id"],))
    run_post_sync(db, workspace["id"], incremental=True)
    assert stages(db, workspace) == {"h1": "decision"}


def test_second_run_changes_nothing(db, workspace):
    write(db, workspace, [{"source": "salesforce", "source_id": "o1", "stage": "Prospecting"}])
    run_post_sync(db, workspace["id"])
    report = {s["name"]: s["changed"] for s in run_post_sync(db, workspace["id"])}
    assert report["stage_normalization"] == {}


def test_tables_a_step_rewrote_in_bulk_are_analyzed_before_the_next_step(db):
    """Per table, the counts a step reports add up; past ANALYZE_AFTER_ROWS the table is analyzed on the real
    server, its columns but the JSON ones (payloads no step writes, and the costly part of ANALYZE)."""
    import re

    from core.pipeline import ANALYZE_AFTER_ROWS, _analyze_rewritten

    class Recording:  # the real connection, with the statements it was given kept
        def __init__(self, conn):
            self.conn, self.sql = conn, []

        def execute(self, stmt, *args):
            self.sql.append(stmt)
            return self.conn.execute(stmt, *args)

    with db.connection() as conn:
        conn.autocommit = True
        rec = Recording(conn)
        _analyze_rewritten(rec, {"contacts.account_id": ANALYZE_AFTER_ROWS - 1, "deals": 3,
                                 "conversations.email_match": ANALYZE_AFTER_ROWS, "stage_mappings": 10**6})
        analyzed = [s for s in rec.sql if s.startswith("ANALYZE")]
        assert len(analyzed) == 1 and analyzed[0].startswith("ANALYZE conversations (")
        columns = set(re.findall(r"\w+", analyzed[0].split("(", 1)[1]))
        assert {"contact_id", "account_id", "deal_id", "is_internal", "linked_at", "cwd_severity"} <= columns
        assert not {"participants", "source_data", "link_details"} & columns
        rec = Recording(conn)
        _analyze_rewritten(rec, {"contacts.account_id": ANALYZE_AFTER_ROWS // 2 + 1,
                                 "contacts.last_activity_at": ANALYZE_AFTER_ROWS // 2})
        assert [s.split(" (")[0] for s in rec.sql if s.startswith("ANALYZE")] == ["ANALYZE contacts"]
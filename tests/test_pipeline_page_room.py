"""The pipeline's bulk rewrites of values no index reads stay heap-only (HOT) updates: migration 0019 leaves room
on every page of the tables it rewrites, and none of the columns it rewrites in bulk is in an index (an index on
one, or in an index's predicate, would make every such update add an entry to every index of the table; 0020
took the CWD verdict out of the predicate of conversations_cwd)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.context import get_context, update_section
from core.db.upsert import upsert_rows
from core.pipeline import PipelineRun, steps

AT = datetime(2026, 5, 1, 16, tzinfo=timezone.utc)

FILLFACTOR = {"contacts": 45, "conversations": 40, "deals": 45, "accounts": 45, "deal_stage_history": 45}
# What the pipeline rewrites on most rows of a table after a first sync.
REWRITTEN = {
    "contacts": {"engagement_score", "last_activity_at"},
    "conversations": {"is_internal", "internal_classification_reason", "cwd_severity", "cwd_cause", "cwd_call_type"},
    "deals": {"stage_normalized", "last_activity_at", "days_in_stage", "velocity_score", "deal_risk",
              "deal_risk_factors", "health_score"},
    "accounts": {"last_activity_at", "health_score"},
    "deal_stage_history": {"stage_normalized"},
}


@pytest.mark.parametrize("table", sorted(REWRITTEN))
def test_rewritten_columns_are_in_no_index_and_pages_keep_room(db, table):
    with db.connection() as conn:
        options = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition,"
            "       ARRAY(SELECT a.attname FROM pg_attribute a"
            "              WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) AS columns"
            "  FROM pg_index i WHERE i.indrelid = %s::regclass", (table,)).fetchall()
    assert f"fillfactor={FILLFACTOR[table]}" in (options["reloptions"] or [])
    for index in indexes:
        # Plain columns by attribute number; expressions and predicates by name in the definition.
        named = set(index["columns"]) | {c for c in REWRITTEN[table] if c in index["definition"]}
        assert not named & REWRITTEN[table], f"{index['name']} covers {named & REWRITTEN[table]}"


def _run_step_counting(db, ws, name, table):
    """Run one step; (what it reports changed, rows it updated in `table`, of which heap-only). The counters
    are the transaction's own, and the pool's connection may hold one open across calls: hence the difference."""
    step = next(s for s in steps() if s.name == name)
    counters = ("SELECT pg_stat_get_xact_tuples_updated(%(t)s::regclass) AS updated,"
                "       pg_stat_get_xact_tuples_hot_updated(%(t)s::regclass) AS hot")
    with db.connection() as conn, conn.transaction():
        before = conn.execute(counters, {"t": table}).fetchone()
        run = PipelineRun(ws["id"], None, get_context(conn, ws["id"]), as_of=AT + timedelta(days=10))
        changed = step.fn(conn, run)
        after = conn.execute(counters, {"t": table}).fetchone()
    return changed, after["updated"] - before["updated"], after["hot"] - before["hot"]


def _gong_call(j: int) -> dict:
    """What a Gong call carries besides its people (metaData as /v2/calls/extensive returns it): the room a
    page keeps is sized for rows like these, which the pipeline's values grow by a fraction."""
    return {"metaData": {"id": f"m{j}", "url": f"https://app.gong.io/call?id={j}", "title": f"Call {j}",
                         "scheduled": "2026-05-01T16:00:00Z", "started": "2026-05-01T16:01:10Z", "duration": 1800,
                         "primaryUserId": "234599484848423", "direction": "Conference", "system": "Zoom",
                         "scope": "External", "media": "Video", "language": "eng", "workspaceId": "623457276584334",
                         "sdrDisposition": None, "clientUniqueId": f"zoom-{j}", "customData": None,
                         "purpose": "Discovery call", "meetingUrl": f"https://zoom.us/j/98{j:07d}",
                         "isPrivate": False, "calendarEventId": f"cal-{j}-2026-05-01"}}


def test_first_classification_and_scores_are_heap_only_updates(db, workspace):
    """A first sync's rows, written by the real write path, then the steps that rewrite most of them."""
    ws = workspace
    with db.connection() as conn:
        update_section(conn, ws["id"], "definitions", {"internal_domains": ["ourco.io"]})
        upsert_rows(conn, "accounts", ws["id"], [
            {"source": "hubspot", "source_id": f"a{i}", "name": f"Account {i}", "domain": f"acct{i}.com"}
            for i in range(20)])
        upsert_rows(conn, "contacts", ws["id"], [
            {"source": "hubspot", "source_id": f"c{i}", "email": f"p{i}@acct{i % 20}.com",
             "account_source_id": f"a{i % 20}"} for i in range(400)])
        upsert_rows(conn, "conversations", ws["id"], [
            {"source": "gong", "source_id": f"m{j}", "title": f"Call {j}", "started_at": AT - timedelta(days=j % 30),
             "source_data": _gong_call(j),
             "participants": [{"name": "Rep", "email": "rep@ourco.io", "affiliation": "internal"},
                              {"name": f"P{j}", "email": f"p{j % 400}@acct{j % 20}.com"}]}
            for j in range(300)])
        # Internal meetings: labelled 'internal_meeting', but with no links to clear they keep linked_at NULL.
        upsert_rows(conn, "conversations", ws["id"], [
            {"source": "gong", "source_id": f"s{j}", "title": "Weekly standup", "started_at": AT - timedelta(days=j),
             "source_data": _gong_call(1000 + j),
             "participants": [{"name": "Rep", "email": "rep@ourco.io"}, {"name": "Lead", "email": "lead@ourco.io"}]}
            for j in range(50)])
    changed, updated, hot = _run_step_counting(db, ws, "internal_filter", "conversations")
    assert changed.get("conversations.external") == 300 and changed.get("conversations.internal") == 50
    assert updated == 350 and hot == updated
    _run_step_counting(db, ws, "linker", "conversations")
    # Every call is with an account that has no deal: all 300 are CWDs, flagged without touching an index.
    changed, updated, hot = _run_step_counting(db, ws, "cwd", "conversations")
    assert sum(changed.values()) == 300 and set(changed) <= {"high", "medium", "low"}
    assert updated == 300 and hot == updated
    # Activities whose ids the write path resolved from their own references are stored labelled: the linker
    # has nothing to rewrite (core.db.references.LABELLED).
    with db.connection() as conn:
        upsert_rows(conn, "activities", ws["id"], [
            {"source": "hubspot", "source_id": f"e{i}", "activity_type": "email", "subject": f"Re: pricing {i}",
             "occurred_at": AT - timedelta(days=i % 20), "contact_source_id": f"c{i}", "account_source_id": f"a{i % 20}",
             "source_data": {"id": f"e{i}", "type": "EMAIL", "hs_email_direction": "INCOMING_EMAIL"}}
            for i in range(200)])
    changed, updated, hot = _run_step_counting(db, ws, "linker_activities", "activities")
    assert changed == {} and updated == 0
    changed, updated, hot = _run_step_counting(db, ws, "computed_contacts", "contacts")
    assert changed.get("contacts") == 300  # the 300 people on a call (100 never met have nothing to score)
    assert updated == 300 and hot == updated


def test_first_stage_normalization_is_a_heap_only_update(db, workspace):
    """A first sync's deals and their stage history, then the stage step writes the universal stage on each."""
    ws = workspace
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws["id"], [
            {"source": "hubspot", "source_id": f"d{i}", "name": f"Renewal {i}", "amount": 1000 + i,
             "stage": ("appointmentscheduled", "qualifiedtobuy", "contractsent", "closedwon")[i % 4],
             "close_date": (AT + timedelta(days=i)).date(), "owner_email": "rep@ourco.io"} for i in range(200)])
        upsert_rows(conn, "deal_stage_history", ws["id"], [
            {"source": "hubspot", "source_id": f"d{i}-h{k}", "deal_source_id": f"d{i}",
             "stage": ("appointmentscheduled", "qualifiedtobuy")[k], "entered_at": AT - timedelta(days=10 - k)}
            for i in range(200) for k in (0, 1)])
    step = next(s for s in steps() if s.name == "stage_normalization")
    counters = ("SELECT pg_stat_get_xact_tuples_updated(%(t)s::regclass) AS updated,"
                "       pg_stat_get_xact_tuples_hot_updated(%(t)s::regclass) AS hot")
    with db.connection() as conn, conn.transaction():
        before = {t: conn.execute(counters, {"t": t}).fetchone() for t in ("deals", "deal_stage_history")}
        changed = step.fn(conn, PipelineRun(ws["id"], None, get_context(conn, ws["id"]), as_of=AT))
        after = {t: conn.execute(counters, {"t": t}).fetchone() for t in ("deals", "deal_stage_history")}
    assert changed["deals"] == 200 and changed["deal_stage_history"] == 400
    for t in before:
        updated, hot = (after[t][k] - before[t][k] for k in ("updated", "hot"))
        assert updated == changed[t] and hot == updated, t

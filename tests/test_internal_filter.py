"""The internal meeting filter: participant domains first, affiliation for email-less participants, the title
only when nobody can be classified; internal meetings are left unlinked; internal domains come from the context
layer or are inferred from the user directory, record owners and organizers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.connections import save_connection
from core.context import get_context, update_section
from core.db.upsert import upsert_rows
from core.pipeline import PipelineRun, run_post_sync
from core.pipeline.domains import internal_domains, internal_domains_cte
from core.pipeline.internal import classify_conversations

AT = datetime(2026, 5, 1, 16, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def db(module_db):
    return module_db


def write(db, ws, table, rows, source="gong"):
    with db.connection() as conn:
        upsert_rows(conn, table, ws["id"], [{"source": source, **r} for r in rows])


def internal_domains_are(db, ws, domains):
    with db.connection() as conn:
        update_section(conn, ws["id"], "definitions", {"internal_domains": domains})


def meeting(source_id, title, *people, **extra):
    """people: "email" strings, or (name, email, affiliation) tuples."""
    parts = [{"name": p.split("@")[0], "email": p} if isinstance(p, str) else
             {"name": p[0], "email": p[1], "affiliation": p[2]} for p in people]
    return {"source_id": source_id, "title": title, "started_at": AT, "participants": parts, **extra}


def classified(db, ws):
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT source_id, is_internal, internal_classification_reason AS reason FROM conversations"
            " WHERE workspace_id = %s", (ws["id"],)).fetchall()
    return {r["source_id"]: (r["is_internal"], r["reason"]) for r in rows}


def links(db, ws):
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT c.source_id, a.source_id AS account, c.link_method, c.link_details FROM conversations c"
            " LEFT JOIN accounts a ON a.workspace_id = c.workspace_id AND a.id = c.account_id"
            " WHERE c.workspace_id = %s", (ws["id"],)).fetchall()
    return {r["source_id"]: (r["account"], r["link_method"], r["link_details"]) for r in rows}


def filter_changes(report):
    return next(s["changed"] for s in report if s["name"] == "internal_filter")


def test_all_internal_participants_make_an_internal_meeting(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [
        meeting("m1", "Weekly pipeline review", "ana@democo.io", "Ben@DemoCo.io", "cy@democo.io"),
        meeting("m2", "Acme renewal prep", "ana@democo.io"),
    ])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace) == {
        "m1": (True, "all 3 participants internal (democo.io); title also looks internal ('Weekly pipeline review')"),
        "m2": (True, "the only classifiable participant is internal (democo.io)"),
    }


def test_any_external_participant_outweighs_an_internal_title(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [
        meeting("m1", "Acme <> Demo Co — Weekly sync", "ana@democo.io", "jane@acme.io", "joe@acme.io", "al@acme.io"),
    ])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace) == {"m1": (False, "external participant: jane@acme.io (+2 more)")}


def test_a_participant_with_a_personal_email_is_external(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [
        meeting("m1", "Sprint planning", "ana@democo.io", ("Pat", "pat.smith@gmail.com", "Internal")),
    ])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace) == {"m1": (False, "external participant: pat.smith@gmail.com")}


def test_participants_without_email_are_judged_by_affiliation_or_ignored(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [
        meeting("m1", "Catch-up", "ana@democo.io", ("Dial-in User", None, "EXTERNAL")),
        meeting("m2", "Catch-up", "ana@democo.io", ("Room B", None, "internal"), ("iPhone", None, "Unknown")),
    ])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace) == {
        "m1": (False, "external participant: Dial-in User (no email, affiliation external)"),
        "m2": (True, "all 2 participants internal (democo.io, 1 by affiliation); 1 without email or affiliation ignored"),
    }


def test_when_no_participant_can_be_classified_the_title_decides(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [
        meeting("m1", "Sprint retro", ("Guest", None, None)),
        meeting("m2", "Catch-up", ("Guest", None, "unknown")),
        meeting("m3", "1:1 Dana / Bob"),
    ])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace) == {
        "m1": (True, "no participant emails; title looks internal ('Sprint retro')"),
        "m2": (False, "no participant emails; title does not look internal"),
        "m3": (True, "no participants listed; title looks internal ('1:1 Dana / Bob')"),
    }


def test_internal_domains_are_inferred_from_directory_owners_and_organizers(db, workspace):
    with db.connection() as conn:
        save_connection(conn, None, workspace["id"], "gong", None, metadata={
            "users": [{"email": "ana@democo.io"}, {"emailAddress": "ben@democo.io"}, {"email": "cy@gmail.com"}],
            "tracked_users": [{"email": "dee@democo.co.uk"}, "not-an-object"]})
    write(db, workspace, "deals", [{"source_id": "d1", "owner_email": "eve@democo.co.uk"},
                                   {"source_id": "d2", "owner_email": "ana@democo.io"}], source="hubspot")
    write(db, workspace, "accounts", [{"source_id": "a1", "owner_email": "fay@democo.io"}], source="hubspot")
    write(db, workspace, "conversations", [
        meeting("m1", "Forecast call", "ana@democo.io", "dee@democo.co.uk", organizer_email="ana@democo.io"),
        meeting("m2", "Intro", "ana@democo.io", "jo@prospect.io", organizer_email="jo@prospect.io"),
    ])
    with db.connection() as conn:
        run = PipelineRun(str(workspace["id"]), context=get_context(conn, workspace["id"]))
        # democo.io: ana, ben, fay (3); democo.co.uk: dee, eve (2 >= 3/2); prospect.io: jo (1); gmail never.
        assert internal_domains(conn, run) == ["democo.co.uk", "democo.io"]
        cte, params = internal_domains_cte(run)
        assert [r["domain"] for r in conn.execute(f"WITH d AS ({cte}) SELECT domain FROM d", params)] \
            == ["democo.co.uk", "democo.io"]
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m1"][0] is True
    assert classified(db, workspace)["m2"] == (False, "external participant: jo@prospect.io")


def test_configured_internal_domains_win_over_inferred_ones(db, workspace):
    write(db, workspace, "deals", [{"source_id": "d1", "owner_email": "eve@democo.io"}], source="hubspot")
    write(db, workspace, "conversations", [meeting("m1", "Sync", "ana@democo.io", "raj@contractor.dev")])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m1"][0] is False
    internal_domains_are(db, workspace, ["DemoCo.io", "contractor.dev"])
    report = run_post_sync(db, workspace["id"], incremental=True)  # the domains changed: reclassifies everything
    assert classified(db, workspace)["m1"] == (True, "all 2 participants internal (contractor.dev, democo.io); "
                                                     "title also looks internal ('Sync')")
    assert filter_changes(report) == {"conversations.internal": 1}


def test_with_no_known_internal_domain_affiliation_decides(db, workspace):
    write(db, workspace, "conversations", [
        meeting("m1", "Demo", ("Ana", "ana@democo.io", "Internal"), ("Jane", "jane@acme.io", "External")),
        meeting("m2", "Standup", ("Ana", "ana@democo.io", "Internal")),
    ])
    run_post_sync(db, workspace["id"])
    got = classified(db, workspace)
    assert got["m1"] == (False, "external participant: jane@acme.io")
    assert got["m2"] == (True, "the only classifiable participant is internal (1 by affiliation); "
                               "title also looks internal ('Standup')")


def test_a_meeting_that_turns_internal_is_unlinked_and_manual_links_stay(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}], source="hubspot")
    hint = {"crm_context": {"account_source_id": "a1"}}
    write(db, workspace, "conversations", [
        meeting("m1", "Deal review: Acme", "ana@democo.io", "jane@acme.io", source_data=hint),
        meeting("m2", "Deal review: Acme", "ana@democo.io", link_method="manual"),
    ])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace)["m1"][:2] == ("a1", "crm_native")
    # jane was a mistaken invitee: the re-synced meeting has only our people.
    write(db, workspace, "conversations", [meeting("m1", "Deal review: Acme", "ana@democo.io", source_data=hint)])
    report = run_post_sync(db, workspace["id"], incremental=True)
    assert filter_changes(report) == {"conversations.internal": 1, "conversations.unlinked": 1}
    assert links(db, workspace) == {"m1": (None, "internal_meeting", {}), "m2": (None, "manual", {})}
    assert classified(db, workspace)["m2"][0] is True


def test_a_meeting_that_turns_external_is_linked_in_the_same_run(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}], source="hubspot")
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "jane@acme.io", "account_source_id": "a1"}], source="hubspot")
    write(db, workspace, "conversations", [meeting("m1", "Weekly sync", "ana@democo.io")])
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m1"][0] is True
    write(db, workspace, "conversations", [meeting("m1", "Weekly sync", "ana@democo.io", "jane@acme.io")])
    report = run_post_sync(db, workspace["id"], incremental=True)
    assert filter_changes(report) == {"conversations.external": 1}
    assert links(db, workspace)["m1"][:2] == ("a1", "email_match")


def test_a_second_run_changes_nothing(db, workspace):
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [meeting("m1", "Standup", "ana@democo.io"),
                                           meeting("m2", "Intro", "ana@democo.io", "jane@acme.io"),
                                           meeting("m3", "Retro")])
    first = run_post_sync(db, workspace["id"])
    assert filter_changes(first) == {"conversations.internal": 2, "conversations.external": 1}
    second = run_post_sync(db, workspace["id"])
    assert all(not s["changed"] for s in second)
    with db.connection() as conn:
        run = PipelineRun(str(workspace["id"]), context=get_context(conn, workspace["id"]))
        assert classify_conversations(conn, run) == {}


def test_a_row_a_transaction_older_than_the_run_commits_later_is_classified_on_the_next_run(db, workspace):
    import psycopg

    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [meeting("m1", "Demo", "ana@democo.io", "jane@acme.io")])
    run_post_sync(db, workspace["id"])
    # a sync's page transaction, open while the pipeline runs: its row carries the transaction's start time,
    # before the run, and is committed after it (already marked external, so only its date brings it back)
    with psycopg.connect(db.url) as late, late.transaction():
        upsert_rows(late, "conversations", workspace["id"],
                    [{"source": "gong", "is_internal": False, "internal_classification_reason": "not yet",
                      **meeting("m2", "Pipeline review", "ana@democo.io", "bo@democo.io")}])
        run_post_sync(db, workspace["id"])
        assert "m2" not in classified(db, workspace)
    assert classified(db, workspace)["m2"] == (False, "not yet")
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m2"][0] is True


def test_a_full_run_leaves_rows_written_before_the_filters_last_run_alone(db, workspace):
    """No margin beyond open transactions: a row written half an hour before the filter last ran (and no
    transaction open then) is not read again by a full run."""
    internal_domains_are(db, workspace, ["democo.io"])
    write(db, workspace, "conversations", [meeting("m1", "Sprint retro", "ana@democo.io")])
    run_post_sync(db, workspace["id"])
    with db.connection() as conn:
        conn.execute("UPDATE conversations SET internal_classification_reason = 'stale',"
                     " updated_at = now() - interval '30 minutes' WHERE workspace_id = %s AND source_id = 'm1'",
                     (workspace["id"],))
        conn.execute("UPDATE pipeline_state SET state = jsonb_set(state, '{ran_at}', to_jsonb((now() - interval"
                     " '10 minutes')::text)) WHERE workspace_id = %s AND step = 'internal_filter'", (workspace["id"],))
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m1"] == (True, "stale")


def test_a_full_run_reclassifies_only_what_changed_since_the_filter_last_ran(db, workspace):
    write(db, workspace, "conversations", [meeting("m1", "Sprint retro", "ana@democo.io"),
                                           meeting("m2", "Demo", "ana@democo.io", "jane@acme.io")])
    internal_domains_are(db, workspace, ["democo.io"])
    run_post_sync(db, workspace["id"])
    with db.connection() as conn:  # a value no sync wrote (updated_at unchanged) is not looked at again …
        conn.execute("UPDATE conversations SET internal_classification_reason = 'stale',"
                     " updated_at = now() - interval '3 hours' WHERE workspace_id = %s AND source_id = 'm1'",
                     (workspace["id"],))
        # (the filter ran 2 hours ago: rows written since then are looked at)
        conn.execute("UPDATE pipeline_state SET state = jsonb_set(state, '{ran_at}', to_jsonb((now() - interval"
                     " '2 hours')::text)) WHERE workspace_id = %s AND step = 'internal_filter'", (workspace["id"],))
    write(db, workspace, "conversations", [meeting("m2", "Demo", "ana@democo.io")])  # … one a sync rewrote is
    report = run_post_sync(db, workspace["id"])
    assert filter_changes(report) == {"conversations.internal": 1}
    assert classified(db, workspace)["m1"][1] == "stale" and classified(db, workspace)["m2"][0] is True
    internal_domains_are(db, workspace, ["democo.io", "acme.io"])  # and new domains reclassify everything
    run_post_sync(db, workspace["id"])
    assert classified(db, workspace)["m1"][1] != "stale"

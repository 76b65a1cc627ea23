"""An incremental post-sync run must leave a workspace exactly as a full run would (for the changes it promises
to follow): after a seeded "sync" that edits, adds and relinks rows of Demo Co, the incremental run's result is
snapshotted, then a full run at the same as_of must change nothing."""
from __future__ import annotations

import copy
import dataclasses
import random
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from core.db.upsert import upsert_rows
from core.pipeline import run_post_sync
from core.synthetic import generate, write_dataset

SNAPSHOT = {
    "contacts": "source_id, account_id, last_activity_at, engagement_score",
    "accounts": "source_id, last_activity_at, health_score",
    "deals": "source_id, account_id, stage_normalized, last_activity_at, days_in_stage, velocity_score, deal_risk,"
             " deal_risk_factors, health_score",
    "conversations": "source_id, contact_id, account_id, deal_id, link_method, link_details, is_internal,"
                     " cwd_severity",
    "activities": "source_id, contact_id, account_id, deal_id, link_method, link_details",
}


def snapshot(db, workspace_id) -> dict:
    out = {}
    with db.connection() as conn:
        for table, cols in SNAPSHOT.items():
            out[table] = {r["source_id"]: r for r in conn.execute(
                f"SELECT {cols} FROM {table} WHERE workspace_id = %s", (workspace_id,)).fetchall()}
        out["deal_contacts"] = sorted(
            (str(r["deal_id"]), str(r["contact_id"]), r["source"], r["role_source"]) for r in conn.execute(
                "SELECT deal_id, contact_id, source, role_source FROM deal_contacts WHERE workspace_id = %s",
                (workspace_id,)).fetchall())
    return out


def a_sync(ds, rng: random.Random) -> dict[str, list[dict]]:
    """What a day's sync sends: edited contacts (new e-mail, title, company; deleted ones), deals (amount, next stage, closed), new
    contacts at known domains, new deals on existing accounts, a new account, conversations with an extra
    participant (a known contact's e-mail in other case) and new conversations, activities naming another deal."""
    t = ds.tables
    contacts, deals, convs, acts = ([copy.deepcopy(r) for r in t[k] if not r["source_id"].startswith("wait-")]
                                    for k in ("contacts", "deals", "conversations", "activities"))
    changed: dict[str, list[dict]] = {k: [] for k in ("accounts", "contacts", "deals", "conversations", "activities")}
    for c in rng.sample(contacts, 30):
        c["title"] = "VP " + (c["title"] or "Sales")
        if rng.random() < 0.5 and c["email"]:
            c["email"] = "new." + c["email"]
        changed["contacts"].append(c)
    for c in rng.sample(contacts, 4):  # what association inference reads: the company name; a deletion
        changed["contacts"].append({**c, "company_name": "Renamed " + (c.get("company_name") or "Co")})
    for c in rng.sample(contacts, 2):
        changed["contacts"].append({**c, "deleted_at": datetime.now(timezone.utc)})
    for i, c in enumerate(rng.sample(contacts, 10)):
        changed["contacts"].append({**c, "source_id": f"new-c{i}", "email": f"fresh{i}@{c['email'].split('@')[1]}"
                                    if c["email"] else None, "account_source_id": None})
    stages = ["qualification", "evaluation", "decision", "negotiation", "closed_won", "closed_lost"]
    for d in rng.sample(deals, 20):
        d["amount"] = float(d["amount"] or 0) + 1000
        if d["stage_normalized"] in stages[:-2]:
            d["stage_normalized"] = d["stage"] = stages[stages.index(d["stage_normalized"]) + 1]
        changed["deals"].append(d)
    # what the linker's and the association inference's scopes follow of a deal: its account, its deletion
    accounts = [a["source_id"] for a in t["accounts"]]
    untouched = [d for d in deals if d not in changed["deals"]]
    for d in rng.sample(untouched, 2):
        changed["deals"].append({**d, "account_source_id": rng.choice(accounts)})
    changed["deals"].append({**rng.choice(untouched), "deleted_at": datetime.now(timezone.utc)})
    for i, d in enumerate(rng.sample(deals, 5)):
        changed["deals"].append({**d, "source_id": f"new-d{i}", "name": f"{d['name']} Expansion",
                                 "stage": "qualification", "stage_normalized": "qualification", "closed_at": None})
    acct = copy.deepcopy(t["accounts"][0])
    changed["accounts"].append({**acct, "source_id": "new-a0", "name": "Freshly Synced GmbH", "domain": "fresh-sync.io"})
    emails = [c["email"] for c in contacts if c["email"]]
    for cv in rng.sample(convs, 25):
        cv["title"] = cv["title"] + " (rescheduled)"
        cv["participants"] = list(cv["participants"]) + [{"name": "Guest", "email": rng.choice(emails).upper(),
                                                         "affiliation": "external"}]
        changed["conversations"].append(cv)
    for i, cv in enumerate(rng.sample(convs, 5)):
        changed["conversations"].append({**cv, "source_id": f"new-cv{i}", "started_at": datetime.now(timezone.utc)})
    for cv in rng.sample([cv for cv in convs if cv not in changed["conversations"]], 5):  # someone left
        people = list(cv["participants"])
        gone = [p for p in people if p.get("email") and p.get("affiliation") != "internal"][-1:]
        changed["conversations"].append({**cv, "participants": [p for p in people if p not in gone]})
    # what a deal's or account's scores read of a conversation: its date and its deletion
    moved = [cv for cv in convs if cv not in changed["conversations"]]
    for cv in rng.sample(moved, 3):
        changed["conversations"].append({**cv, "started_at": datetime.now(timezone.utc)})
    for cv in rng.sample(moved, 2):
        changed["conversations"].append({**cv, "deleted_at": datetime.now(timezone.utc)})
    deal_ids = [d["source_id"] for d in deals]
    for a in rng.sample(acts, 40):
        a["deal_source_id"] = rng.choice(deal_ids)
        changed["activities"].append(a)
    return changed


def waiting_rows(ds) -> dict[str, list[dict]]:
    """Rows that wait for a later sync: calls with a guest nobody knows yet, activities naming a deal not synced
    yet. Added to the first load; `arrivals` brings what they wait for, without touching them."""
    t = ds.tables
    accounts = t["accounts"][:5]
    convs = [{**copy.deepcopy(t["conversations"][i]), "source_id": f"wait-cv{i}",
              "participants": [{"name": "Rep", "email": t["conversations"][i]["organizer_email"], "affiliation": "internal"},
                               {"name": "Late Guest", "email": f"late.guest{i}@{a['domain']}", "affiliation": "external"}],
              "source_data": {}}
             for i, a in enumerate(accounts)]
    acts = [{**copy.deepcopy(t["activities"][i]), "source_id": f"wait-act{i}", "deal_source_id": f"late-d{i}"}
            for i in range(5)]
    return {"conversations": convs, "activities": acts}


def arrivals(ds) -> dict[str, list[dict]]:
    t = ds.tables
    contacts = [{**copy.deepcopy(t["contacts"][0]), "source_id": f"late-c{i}", "email": f"Late.Guest{i}@{a['domain']}",
                 "account_source_id": a["source_id"]} for i, a in enumerate(t["accounts"][:5])]
    deals = [{**copy.deepcopy(t["deals"][i]), "source_id": f"late-d{i}", "name": f"Late deal {i}"} for i in range(5)]
    return {"contacts": contacts, "deals": deals}


@pytest.mark.parametrize("seed, lookup", [(3, "key"), (11, "key"), (3, "pass")])
def test_an_incremental_run_leaves_nothing_for_a_full_run_to_change(db, workspace, seed, lookup, monkeypatch):
    """`lookup`: computed fields find the conversations naming affected e-mails in participant_emails, or (past
    EMAIL_LOOKUP_MAX) by one pass over every conversation; the linker's CRM ids are searched in batches of two
    values here."""
    from core.pipeline import computed, lookups

    monkeypatch.setattr(lookups, "BATCH", 2)
    monkeypatch.setattr(computed, "EMAIL_LOOKUP_MAX", 0 if lookup == "pass" else 10_000)
    ds = generate(seed=seed, scale=1)
    for table, rows in waiting_rows(ds).items():
        ds.tables[table] = ds.tables[table] + rows
    write_dataset(db, workspace["id"], ds)  # ends with a full pipeline run
    with db.connection() as conn:
        for changes in (a_sync(ds, random.Random(seed)), arrivals(ds)):
            for table, rows in changes.items():
                if rows:
                    upsert_rows(conn, table, workspace["id"], rows)
        # and someone remaps the commonest open stage (as `pandora stages set` does): deals no sync touched move
        conn.execute(
            "UPDATE stage_mappings m SET stage_normalized = 'closed_lost', origin = 'user', updated_at = now()"
            "  FROM (SELECT source, stage FROM deals WHERE workspace_id = %(w)s AND stage_normalized = 'evaluation'"
            "         GROUP BY source, stage ORDER BY count(*) DESC LIMIT 1) d"
            " WHERE m.workspace_id = %(w)s AND m.source = d.source AND m.raw_stage = d.stage", {"w": workspace["id"]})
    as_of = datetime.now(timezone.utc)
    run_post_sync(db, workspace["id"], incremental=True, as_of=as_of)
    after_incremental = snapshot(db, workspace["id"])
    full = run_post_sync(db, workspace["id"], as_of=as_of)
    after_full = snapshot(db, workspace["id"])
    for table in after_full:
        if table == "deal_contacts":
            assert after_incremental[table] == after_full[table]
            continue
        differ = {k: (after_incremental[table].get(k), v) for k, v in after_full[table].items()
                  if after_incremental[table].get(k) != v}
        assert not differ, f"{table}: the full run changed {len(differ)} rows, e.g. {next(iter(differ.items()))}"
    assert all(not s["changed"] for s in full), full
    linked = {k: v for k, v in after_incremental["conversations"].items() if k.startswith("wait-cv")}
    assert all(v["contact_id"] and v["link_method"] for v in linked.values()), linked  # found by e-mail, untouched
    assert all(v["deal_id"] for k, v in after_incremental["activities"].items() if k.startswith("wait-act"))


def test_an_incremental_run_sees_what_a_transaction_older_than_the_last_run_committed_after_it(db, workspace):
    """A sync's page transaction stamps its rows with its start time; one still open while a run reads commits
    rows dated before that run. The next incremental run must still look at them."""
    import psycopg

    ws = workspace["id"]
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws, [{"source": "hubspot", "source_id": "d1", "name": "First", "stage": "closedwon"}])
    run_post_sync(db, ws, incremental=True)
    with psycopg.connect(db.url) as late, late.transaction():
        upsert_rows(late, "deals", ws, [{"source": "hubspot", "source_id": "d2", "name": "Late", "stage": "closedwon"}])
        run_post_sync(db, ws, incremental=True)  # d2 is not committed yet: this run cannot see it
    run_post_sync(db, ws, incremental=True)
    with db.connection() as conn:
        stages = {r["source_id"]: r["stage_normalized"] for r in conn.execute(
            "SELECT source_id, stage_normalized FROM deals WHERE workspace_id = %s", (ws,)).fetchall()}
    assert stages == {"d1": "closed_won", "d2": "closed_won"}


def test_with_no_other_transaction_open_the_next_run_starts_where_this_one_did(db, workspace):
    """The watermark goes back only as far as a transaction that is open: none open, it is the run's start (a run
    that looked back an hour every time would re-read an hour of syncs)."""
    from datetime import timedelta

    run_post_sync(db, workspace["id"], incremental=True)
    with db.connection() as conn:
        row = conn.execute("SELECT pipeline_ran_at - pipeline_seen_from AS gap FROM workspaces WHERE id = %s",
                           (workspace["id"],)).fetchone()
        filter_ran = conn.execute("SELECT now() - (state ->> 'ran_at')::timestamptz AS age FROM pipeline_state"
                                  " WHERE workspace_id = %s AND step = 'internal_filter'", (workspace["id"],)).fetchone()
    assert timedelta(0) <= row["gap"] < timedelta(seconds=5)
    assert timedelta(0) <= filter_ran["age"] < timedelta(minutes=1)


def test_a_session_hiding_its_start_moves_the_watermark_back_only_while_inside_a_transaction(db, server_url):
    """Without pg_read_all_stats (Neon's default role), other roles' sessions show no transaction start. One that
    is idle (a provider's monitoring session, between its queries) leaves the watermark at the run's start; one
    inside a transaction (it may still commit rows stamped before the run) moves it back an hour. (Before, the
    hour never applied: such a session's backend_type reads NULL too, and only 'client backend' rows were read,
    so a transaction of another role could commit rows no incremental run looked at.)"""
    import uuid
    from datetime import timedelta

    import psycopg
    from psycopg.conninfo import make_conninfo

    from core.pipeline import SEEN_FROM

    role = f"pandora_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")  # no pg_read_all_stats
    try:
        with psycopg.connect(db.url, autocommit=True) as other, \
                psycopg.connect(make_conninfo(db.url, user=role), autocommit=True) as probe:
            def gap():
                return probe.execute(f"SELECT now() - {SEEN_FROM}").fetchone()[0]

            hidden = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state IS NULL",
                                   (other.info.backend_pid,)).fetchone()[0]
            assert hidden == 1  # the probe cannot see the other session's state
            assert gap() < timedelta(seconds=5)
            with other.transaction():
                other.execute("SELECT 1")
                assert timedelta(minutes=59) < gap() < timedelta(minutes=61)
            assert gap() < timedelta(seconds=5)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_the_reverse_lookup_finds_participants_by_e_mail_in_any_case_but_not_those_marked_internal(db, workspace):
    """What the linker and the engagement scores read of participants: e-mails of people not marked internal,
    compared lower-cased (migration 0023 keeps the reps, on nearly every call, out of the index)."""
    from core.pipeline.lookups import rows_naming

    with db.connection() as conn:
        upsert_rows(conn, "conversations", workspace["id"], [
            {"source": "gong", "source_id": "g1", "title": "Acme call", "participants": [
                {"name": "Rep", "email": "Rita@OurCo.io", "affiliation": "internal"},
                {"name": "Ana", "email": "Ana@Acme.io", "affiliation": "external"}, {"name": "Bo", "email": "bo@acme.io"}]},
            {"source": "gong", "source_id": "g2", "title": "Standup", "participants": [
                {"name": "Rep", "email": "rita@ourco.io", "affiliation": "internal"}]}])
        ids = {r["id"]: r["source_id"] for r in conn.execute(
            "SELECT id, source_id FROM conversations WHERE workspace_id = %s", (workspace["id"],))}

        def naming(*emails):
            return sorted(ids[i] for i in rows_naming(conn, "conversations", "emails", workspace["id"], list(emails)))

        assert naming("ana@acme.io") == naming("bo@acme.io") == ["g1"]
        assert naming("rita@ourco.io") == []
        assert naming("ana@acme.io", "nobody@acme.io") == ["g1"]


@pytest.mark.parametrize("table", ["conversations", "activities"])
@pytest.mark.parametrize("kind", ["emails", "crm_ids"])
def test_the_reverse_lookup_searches_an_index(db, workspace, table, kind):
    """E-mails: the key of participant_emails. CRM ids: the GIN index, which holds only rows with keys to read
    (migration 0024): a lookup that stopped implying its condition would get the same rows from a scan of the
    whole table, seconds on a large workspace."""
    import json

    from core.db.planner import planner
    from core.pipeline.lookups import LOOKUP_PLANNER, lookup_query

    index = "participant_emails_pkey" if kind == "emails" else f"{table}_crm_refs"
    with db.connection() as conn, planner(conn, **({} if kind == "emails" else LOOKUP_PLANNER)):
        conn.execute("SET LOCAL enable_seqscan = off")  # a test-sized table would be scanned; what matters is that it can be searched
        plan = json.dumps(conn.execute("EXPLAIN (FORMAT JSON) " + lookup_query(table, kind), {
            "values": ["ana@acme.io"], "workspace_id": workspace["id"], "table": table}).fetchone())
    assert f'"Index Name": "{index}"' in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("table", ["conversations", "activities"])
def test_participant_emails_follow_inserts_participant_changes_and_deletes_but_not_relinks(db, workspace, table):
    """participant_emails (migration 0024) is kept by triggers whoever writes the row: the write path's COPY and
    upsert, a plain UPDATE, a DELETE. Writing anything but the participants leaves it alone (that is its point:
    the linker rewrites ~160k conversations on a first run)."""
    from core.pipeline.lookups import rows_naming

    ws = workspace["id"]
    extra = {"activity_type": "meeting", "occurred_at": "2026-11-01T10:00:00Z"} if table == "activities" else {}
    with db.connection() as conn:
        upsert_rows(conn, table, ws, [
            {"source": "gong", "source_id": "a", "participants": [
                {"email": "Ana@Acme.io"}, {"email": "ana@acme.io"}, {"email": "rep@ourco.io", "affiliation": "internal"}], **extra},
            {"source": "gong", "source_id": "b", "participants": [{"email": "bo@acme.io"}], **extra},
            {"source": "gong", "source_id": "c", "participants": None, **extra}])
        ids = {r["source_id"]: r["id"] for r in conn.execute(f"SELECT id, source_id FROM {table} WHERE workspace_id = %s", (ws,))}

        def stored():
            return sorted((r["email"], r["row_id"]) for r in conn.execute(
                "SELECT email, row_id FROM participant_emails WHERE workspace_id = %s AND entity = %s", (ws, table)))

        assert stored() == sorted([("ana@acme.io", ids["a"]), ("bo@acme.io", ids["b"])])
        def versions():  # a row version's place and writer: a delete and re-insert changes both
            return conn.execute("SELECT array_agg(ctid::text || xmin::text ORDER BY email) AS v FROM participant_emails"
                                " WHERE workspace_id = %s", (ws,)).fetchone()["v"]

        before = versions()
        conn.execute(f"UPDATE {table} SET contact_id = NULL, link_method = 'email_match', updated_at = now()"
                     " WHERE workspace_id = %s", (ws,))
        assert versions() == before

        upsert_rows(conn, table, ws, [{"source": "gong", "source_id": "b", "participants": [
            {"email": "bo@acme.io"}, {"email": "Cy@Acme.io"}], **extra}])
        conn.execute(f"UPDATE {table} SET participants = '[{{\"email\": \"dee@acme.io\"}}]' WHERE id = %s", (ids["a"],))
        conn.execute(f"UPDATE {table} SET participants = '[{{\"email\": \"eve@acme.io\"}}]' WHERE id = %s", (ids["c"],))
        assert stored() == sorted([("dee@acme.io", ids["a"]), ("bo@acme.io", ids["b"]), ("cy@acme.io", ids["b"]),
                                   ("eve@acme.io", ids["c"])])
        assert sorted(rows_naming(conn, table, "emails", ws, ["cy@acme.io", "dee@acme.io", "ana@acme.io"])) == sorted(
            [ids["a"], ids["b"]])

        conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", ([ids["a"], ids["b"]],))
        assert stored() == [("eve@acme.io", ids["c"])]


def test_a_failed_reverse_lookup_raises_its_own_error(db, workspace):
    """The lookup restores the planner settings it changed, but not over a failed statement: the error a caller
    sees (a statement timeout on a huge lookup, here a malformed workspace id) is the real one."""
    import psycopg

    from core.pipeline.lookups import rows_naming

    with db.connection() as conn, pytest.raises(psycopg.errors.InvalidTextRepresentation):
        rows_naming(conn, "conversations", "emails", "not-a-uuid", ["ana@acme.io"])


def test_planner_settings_hold_for_the_block_and_are_put_back(db):
    from core.db.planner import planner

    def current(conn):
        return conn.execute("SELECT current_setting('enable_nestloop') AS n, current_setting('enable_seqscan') AS s"
                            ).fetchone()

    with db.connection() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        with planner(conn, enable_nestloop="off", enable_seqscan="on"):
            assert current(conn) == {"n": "off", "s": "on"}
        assert current(conn) == {"n": "on", "s": "off"}


def test_only_a_change_the_pipeline_reads_puts_a_contact_in_an_incremental_run(db, workspace):
    """Title or phone edits leave a contact out of every step's scope (a CRM sync rewrites thousands of those);
    a new contact, or a changed e-mail, company, account reference, named deals or deletion brings it in. The
    pipeline's own account_id write does not."""
    from core.pipeline import changed_since

    ws = workspace["id"]
    base = [{"source": "hubspot", "source_id": f"c{i}", "email": f"p{i}@acme.io", "title": "AE"} for i in range(7)]
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme", "domain": "acme.io"}])
        upsert_rows(conn, "contacts", ws, base)
    run_post_sync(db, ws, incremental=True)
    edits = [{**base[0], "title": "VP Sales", "phone": "+1 555 0100"}, {**base[1], "email": "P1.New@acme.io"},
             {**base[2], "company_name": "Acme"}, {**base[3], "account_source_id": "a1"},
             {**base[4], "custom_fields": {"associated_deals": ["Acme renewal"]}},
             {**base[5], "deleted_at": datetime.now(timezone.utc)},
             {"source": "hubspot", "source_id": "c-new", "email": "new@acme.io"}]
    with db.connection() as conn:
        upsert_rows(conn, "contacts", ws, edits)

    def in_scope() -> set[str]:
        with db.connection() as conn:
            return {r["source_id"] for r in conn.execute(
                f"SELECT source_id FROM contacts WHERE workspace_id = %(workspace_id)s AND {changed_since('contacts')}",
                {"workspace_id": ws, "since": conn.execute("SELECT pipeline_seen_from FROM workspaces WHERE id = %s",
                                                           (ws,)).fetchone()["pipeline_seen_from"]}).fetchall()}

    assert in_scope() == {"c1", "c2", "c3", "c4", "c5", "c-new"}
    run_post_sync(db, ws, incremental=True)  # links c3 to a1 and c0..c6 to Acme by domain: no source change
    with db.connection() as conn:
        linked = conn.execute("SELECT count(*) AS n FROM contacts WHERE workspace_id = %s AND account_id IS NOT NULL",
                              (ws,)).fetchone()["n"]
    assert linked >= 5
    run_post_sync(db, ws, incremental=True)
    assert in_scope() == set()


def test_an_incremental_run_after_the_internal_domains_change_leaves_nothing_for_a_full_run(db, workspace):
    """A new internal domain (a subsidiary's) reclassifies calls no sync wrote; the steps after the filter (the
    linker, CWD, computed fields) must follow them in the same incremental run."""
    from core.context import update_section

    ds = generate(seed=5, scale=1)
    write_dataset(db, workspace["id"], ds)
    ours = ds.tables["conversations"][0]["organizer_email"].split("@")[1]
    with db.connection() as conn:
        theirs = conn.execute(
            "SELECT a.domain FROM conversations c JOIN accounts a ON a.workspace_id = c.workspace_id AND a.id = c.account_id"
            " WHERE c.workspace_id = %s AND c.cwd_severity IS NOT NULL AND a.domain IS NOT NULL"
            " GROUP BY a.domain ORDER BY count(*) DESC LIMIT 1", (workspace["id"],)).fetchone()["domain"]
        update_section(conn, workspace["id"], "definitions", {"internal_domains": [ours, theirs]})
    as_of = datetime.now(timezone.utc)
    report = {s["name"]: s["changed"] for s in run_post_sync(db, workspace["id"], incremental=True, as_of=as_of)}
    assert report["internal_filter"].get("conversations.internal"), report
    assert report["cwd"].get("cleared"), report
    after_incremental = snapshot(db, workspace["id"])
    full = run_post_sync(db, workspace["id"], as_of=as_of)
    assert all(not s["changed"] for s in full), full
    assert snapshot(db, workspace["id"]) == after_incremental


def test_contacts_follow_their_deal_closing_in_an_incremental_run(db, workspace):
    """'On an open deal' is the one deal fact an engagement score reads. A deal the stage step closes (a new raw
    stage) and one a write closes directly (an import's normalized stage) both rescore their contacts; a new
    amount on the third deal does not need to."""
    ws = workspace["id"]
    deal = {"source": "hubspot", "account_source_id": "a1", "stage": "qualifiedtobuy", "amount": 1000}
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme", "domain": "acme.io"}])
        upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": f"c{i}", "email": f"p{i}@acme.io",
                                            "account_source_id": "a1"} for i in (1, 2, 3)])
        upsert_rows(conn, "deals", ws, [{**deal, "source_id": f"d{i}", "name": f"Deal {i}"} for i in (1, 2, 3)])
        conn.execute("INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source)"
                     " SELECT d.workspace_id, d.id, c.id, 'hubspot' FROM deals d JOIN contacts c"
                     "   ON c.workspace_id = d.workspace_id AND substr(c.source_id, 2) = substr(d.source_id, 2)"
                     " WHERE d.workspace_id = %s", (ws,))
    run_post_sync(db, ws)

    def scores() -> dict:
        with db.connection() as conn:
            return {r["source_id"]: r["engagement_score"] for r in conn.execute(
                "SELECT source_id, engagement_score FROM contacts WHERE workspace_id = %s", (ws,))}

    assert scores() == {"c1": 15, "c2": 15, "c3": 15}
    run_post_sync(db, ws, incremental=True)
    with db.connection() as conn:
        upsert_rows(conn, "deals", ws, [{**deal, "source_id": "d1", "name": "Deal 1", "stage": "closedwon"},
                                        {**deal, "source_id": "d2", "name": "Deal 2", "stage": "Lost (imported)",
                                         "stage_normalized": "closed_lost"},
                                        {**deal, "source_id": "d3", "name": "Deal 3", "amount": 2000}])
    report = {s["name"]: s["changed"] for s in run_post_sync(db, ws, incremental=True)}
    assert scores() == {"c1": None, "c2": None, "c3": 15}
    assert report["computed_contacts"]["contacts"] == 2


def test_a_touch_moved_away_rescores_the_deal_contact_and_account_it_left(db, workspace):
    """An incremental run finds touches by what they are linked to now, but the deal, contact and account a touch
    moved away from lose it too (migration 0021 keeps their ids): here an e-mail a sync re-points to another deal
    and contact, and a call the internal filter unlinks once only colleagues are left on the invite. Both lose
    their latest touch, whose date their scores fall back from; a full run afterwards has nothing to change."""
    from datetime import timedelta

    from core.context import update_section

    ws = workspace["id"]
    as_of = datetime.now(timezone.utc).replace(microsecond=0)
    day = timedelta(days=1)
    rep = {"name": "Rep", "email": "rep@ourco.io"}

    def email(source_id, n, at):
        return {"source": "hubspot", "source_id": source_id, "activity_type": "email", "occurred_at": at,
                "contact_source_id": f"c{n}", "account_source_id": f"a{n}", "deal_source_id": f"d{n}"}

    def call(source_id, at, people):
        return {"source": "gong", "source_id": source_id, "title": "Acme <> OurCo", "started_at": at,
                "duration_seconds": 1800, "participants": people}

    with db.connection() as conn:
        update_section(conn, ws, "definitions", {"internal_domains": ["ourco.io"]})
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": f"a{n}", "name": f"Account {n}",
                                            "domain": f"acct{n}.io"} for n in (1, 2, 3)])
        upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": f"c{n}", "email": f"p{n}@acct{n}.io",
                                            "account_source_id": f"a{n}"} for n in (1, 2, 3)])
        upsert_rows(conn, "deals", ws, [{"source": "hubspot", "source_id": f"d{n}", "name": f"Deal {n}",
                                         "account_source_id": f"a{n}", "stage": "qualifiedtobuy", "amount": 1000,
                                         "source_created_at": as_of - 90 * day} for n in (1, 2, 3)])
        upsert_rows(conn, "activities", ws, [email("e1", 1, as_of - 2 * day), email("e0", 1, as_of - 20 * day),
                                             email("e2", 2, as_of - 10 * day)])
        upsert_rows(conn, "conversations", ws, [
            call("m1", as_of - day, [rep, {"name": "P3", "email": "p3@acct3.io"}]),
            call("m0", as_of - 30 * day, [rep, {"name": "P3", "email": "p3@acct3.io"}])])
    run_post_sync(db, ws, as_of=as_of)

    def last_activity() -> dict:
        with db.connection() as conn:
            return {r["source_id"]: r["last_activity_at"] for table in ("deals", "contacts", "accounts")
                    for r in conn.execute(f"SELECT source_id, last_activity_at FROM {table} WHERE workspace_id = %s",
                                          (ws,))}

    before = last_activity()
    assert (before["d1"], before["c1"], before["a1"]) == (as_of - 2 * day,) * 3  # e1
    assert (before["d3"], before["a3"]) == (as_of - day,) * 2  # m1, linked by e-mail and the only open deal
    run_post_sync(db, ws, incremental=True, as_of=as_of)
    with db.connection() as conn:
        upsert_rows(conn, "activities", ws, [{**email("e1", 2, as_of - 2 * day)}])  # now about deal 2
        upsert_rows(conn, "conversations", ws, [call("m1", as_of - day, [rep, {"name": "Lead", "email": "lead@ourco.io"}])])
    report = {s["name"]: s["changed"] for s in run_post_sync(db, ws, incremental=True, as_of=as_of)}
    assert report["internal_filter"].get("conversations.unlinked") == 1
    after = last_activity()
    assert (after["d1"], after["c1"], after["a1"]) == (as_of - 20 * day,) * 3  # e0 is what deal 1 has left
    assert (after["d2"], after["c2"], after["a2"]) == (as_of - 2 * day,) * 3  # e1 arrived
    assert (after["d3"], after["a3"]) == (as_of - 30 * day,) * 2  # m0
    full = run_post_sync(db, ws, as_of=as_of)
    assert all(not s["changed"] for s in full), full


@contextmanager
def a_failing_step(monkeypatch, name: str):
    """Inside the block, the step `name` raises, and so does the run (the steps before it have committed)."""
    import core.pipeline as pipeline

    real = pipeline._STEPS[name]

    def broken(conn, run):
        raise RuntimeError(f"{name} failed")

    monkeypatch.setitem(pipeline._STEPS, name, dataclasses.replace(real, fn=broken))
    try:
        with pytest.raises(RuntimeError, match=f"{name} failed"):
            yield
    finally:
        monkeypatch.setitem(pipeline._STEPS, name, real)


def test_after_a_failed_step_the_next_incremental_run_still_sees_what_the_sync_wrote(db, workspace, monkeypatch):
    """The run's watermark is kept only once every step committed: a run whose last step fails must not make the
    next incremental run start after the rows that step never got to score."""
    ws = workspace["id"]
    run_post_sync(db, ws, incremental=True)
    with db.connection() as conn:
        ran_before = conn.execute("SELECT pipeline_ran_at FROM workspaces WHERE id = %s", (ws,)).fetchone()
        upsert_rows(conn, "deals", ws, [{"source": "hubspot", "source_id": "d1", "name": "Open", "stage": "qualifiedtobuy",
                                         "amount": 5000}])
    with a_failing_step(monkeypatch, "computed_deals"):
        run_post_sync(db, ws, incremental=True)
    with db.connection() as conn:
        assert conn.execute("SELECT pipeline_ran_at FROM workspaces WHERE id = %s", (ws,)).fetchone() == ran_before
    run_post_sync(db, ws, incremental=True)
    with db.connection() as conn:
        deal = conn.execute("SELECT stage_normalized, deal_risk FROM deals WHERE workspace_id = %s", (ws,)).fetchone()
    assert deal["stage_normalized"] == "qualification" and deal["deal_risk"] is not None


def test_an_incremental_run_right_after_a_full_run_takes_none_of_its_links_for_a_change(db, workspace, monkeypatch):
    """The pipeline's own stamps (links, inferred deal contacts) that a complete run wrote were followed by that
    run: the next incremental run, with nothing synced in between, rescores nothing. It used to look at every
    row the full run linked (linked_at after the full run's start): on the bench's workspace 30 s instead of 1."""
    import core.pipeline as pipeline
    from core.pipeline import computed, stages

    write_dataset(db, workspace["id"], generate(seed=5, scale=1))  # ends with a full pipeline run
    with db.connection() as conn:
        linked = conn.execute("SELECT count(*) AS n FROM conversations WHERE workspace_id = %s AND linked_at IS NOT NULL",
                              (workspace["id"],)).fetchone()["n"]
    assert linked > 10
    scoped: dict[str, list] = {}
    real = computed._affected

    def recording(conn, run, params, table, *args, **kw):
        scoped[table] = real(conn, run, params, table, *args, **kw)
        return scoped[table]

    monkeypatch.setattr(computed, "_affected", recording)
    restaged: list[int] = []
    real_stages = stages.normalize_stages

    def counting(conn, run):  # the deals the stage step would re-read: the stage mappings the full run added
        restaged.append(conn.execute("SELECT count(*) AS n FROM deals d2 WHERE d2.workspace_id = %(workspace_id)s "
                                     + stages._written_or_remapped("deals", "d2"), run.params).fetchone()["n"])
        return real_stages(conn, run)

    monkeypatch.setitem(pipeline._STEPS, "stage_normalization", dataclasses.replace(
        pipeline._STEPS["stage_normalization"], fn=counting))
    report = run_post_sync(db, workspace["id"], incremental=True)
    assert scoped.keys() >= {"deals", "contacts"} and not any(scoped.values()), scoped
    assert restaged == [0]
    assert all(not s["changed"] for s in report), report


def test_links_a_failed_run_made_are_followed_by_the_next_run(db, workspace, monkeypatch):
    """A run that fails after its linker committed never scored what it linked; the next incremental run looks at
    the links made since the last COMPLETE run ended, so it does."""
    from datetime import timedelta

    ws, now = workspace["id"], datetime.now(timezone.utc)
    call_at = now - timedelta(days=3)
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme", "domain": "acme.io"}])
        upsert_rows(conn, "deals", ws, [{"source": "hubspot", "source_id": "d1", "name": "Pilot", "stage": "qualifiedtobuy",
                                         "account_source_id": "a1", "source_created_at": now - timedelta(days=60)}])
        upsert_rows(conn, "conversations", ws, [{
            "source": "gong", "source_id": "cv1", "title": "Acme call", "started_at": call_at,
            "participants": [{"name": "Rep", "email": "rep@ourco.io", "affiliation": "internal"},
                             {"name": "Late", "email": "late@acme.io", "affiliation": "external"}]}])
    run_post_sync(db, ws, as_of=now)  # nobody at acme.io is known yet: the call stays unlinked
    with db.connection() as conn:
        upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": "c1", "email": "late@acme.io",
                                            "account_source_id": "a1"}])
    with a_failing_step(monkeypatch, "computed_deals"):
        run_post_sync(db, ws, incremental=True, as_of=now)
    with db.connection() as conn:
        call = conn.execute("SELECT deal_id, linked_at FROM conversations WHERE workspace_id = %s", (ws,)).fetchone()
        assert call["deal_id"] is not None  # the linker's step committed before the failure
        assert conn.execute("SELECT last_activity_at FROM deals WHERE workspace_id = %s", (ws,)).fetchone()[
            "last_activity_at"] is None
    run_post_sync(db, ws, incremental=True, as_of=now)
    with db.connection() as conn:
        assert conn.execute("SELECT last_activity_at FROM deals WHERE workspace_id = %s", (ws,)).fetchone()[
            "last_activity_at"] == call_at
        assert conn.execute("SELECT last_activity_at FROM accounts WHERE workspace_id = %s", (ws,)).fetchone()[
            "last_activity_at"] == call_at


def test_runs_of_one_workspace_wait_for_each_other(db, workspace, monkeypatch):
    """Two syncs ending at once start two runs; the second starts its steps only once the first has ended."""
    import threading
    import time as clock

    import core.pipeline as pipeline

    inside, release, spans = threading.Event(), threading.Event(), []

    def step(conn, run):
        started = clock.perf_counter()
        if not inside.is_set():
            inside.set()
            assert release.wait(10)
        spans.append((started, clock.perf_counter()))
        return {}

    monkeypatch.setattr(pipeline, "_STEPS", {"only": pipeline.Step("only", 1, step)})
    monkeypatch.setattr(pipeline, "_load_builtin", lambda: None)
    first = threading.Thread(target=run_post_sync, args=(db, workspace["id"]))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=run_post_sync, args=(db, workspace["id"]), kwargs={"incremental": True})
    second.start()
    clock.sleep(0.5)
    assert spans == []  # the second run waits while the first is inside its step
    release.set()
    first.join(10), second.join(10)
    assert len(spans) == 2 and spans[1][0] >= spans[0][1]


def test_independent_steps_run_at_once_and_dependent_ones_wait(db, workspace, monkeypatch):
    """A step waits for every lower-ordered step except those it is independent of; a failed step stops the
    steps after it from starting, and its error is the run's."""
    import threading
    import time as clock

    import core.pipeline as pipeline

    spans: dict[str, tuple[float, float]] = {}
    gate = threading.Barrier(2, timeout=10)  # a and b must be running at the same time to pass it

    def step(name, *, meet=False, fail=False, pause=0.05):
        def fn(conn, run):
            started = clock.perf_counter()
            if meet:
                gate.wait()
            clock.sleep(pause)
            spans[name] = (started, clock.perf_counter())
            if fail:
                raise RuntimeError(f"{name} failed")
            return {}
        return fn

    def install(*specs):
        monkeypatch.setattr(pipeline, "_STEPS", {s.name: s for s in specs})
        monkeypatch.setattr(pipeline, "_load_builtin", lambda: None)

    Step = pipeline.Step
    install(Step("a", 1, step("a", meet=True)), Step("b", 2, step("b", meet=True), frozenset({"a"})),
            Step("c", 3, step("c")))
    report = run_post_sync(db, workspace["id"])
    assert [r["name"] for r in report] == ["a", "b", "c"]
    assert spans["c"][0] >= max(spans["a"][1], spans["b"][1])  # c waited for both

    # Independence is mutual: the lower-ordered step may name the later one (a connector's step naming core steps).
    spans.clear()
    gate.reset()
    install(Step("a", 1, step("a", meet=True), frozenset({"b"})), Step("b", 2, step("b", meet=True)))
    assert [r["name"] for r in run_post_sync(db, workspace["id"])] == ["a", "b"]

    spans.clear()
    install(Step("a", 1, step("a", fail=True)), Step("b", 2, step("b")))
    with pytest.raises(RuntimeError, match="a failed"):
        run_post_sync(db, workspace["id"])
    assert "b" not in spans

    # Of the steps ready at once, the one others wait on starts first: "lone" (lowest order, nothing waits on it)
    # must not take a slot before "feeds", whose dependant "last" would then start late.
    spans.clear()
    install(Step("lone", 1, step("lone")), Step("other", 2, step("other"), frozenset({"lone"})),
            Step("feeds", 3, step("feeds"), frozenset({"lone", "other"})),
            Step("last", 4, step("last"), frozenset({"lone", "other"})))
    monkeypatch.setattr(pipeline, "PARALLEL_STEPS", 1)
    report = run_post_sync(db, workspace["id"])
    assert [r["name"] for r in report] == ["lone", "other", "feeds", "last"]
    assert min(spans, key=lambda name: spans[name][0]) == "feeds"

    # Two ready steps feeding the same one: the costlier starts first, whatever their order.
    spans.clear()
    install(Step("cheap", 1, step("cheap")), Step("dear", 2, step("dear"), frozenset({"cheap"}), cost=5),
            Step("after", 3, step("after")))
    run_post_sync(db, workspace["id"])
    assert sorted(spans, key=lambda name: spans[name][0]) == ["dear", "cheap", "after"]

    # Once the workspace's own runs have timed the steps, those times decide: "quick" was said to cost 5 and took
    # no time, "slow" took longer; the next full run starts "slow" first.
    from core.pipeline import DURATIONS
    from core.pipeline.domains import last_used

    spans.clear()
    install(Step("quick", 1, step("quick", pause=0), cost=5), Step("slow", 2, step("slow", pause=0.3), frozenset({"quick"})),
            Step("end", 3, step("end")))
    run_post_sync(db, workspace["id"])
    assert sorted(spans, key=lambda name: spans[name][0]) == ["quick", "slow", "end"]
    with db.connection() as conn:
        timed = last_used(conn, workspace["id"], DURATIONS)["full"]
    assert timed["slow"] >= 0.3 > timed["quick"]
    spans.clear()
    run_post_sync(db, workspace["id"])
    assert sorted(spans, key=lambda name: spans[name][0]) == ["slow", "quick", "end"]


def test_steps_writing_the_same_rows_never_run_at_once_and_stages_run_beside_the_inference():
    """Two steps that update the same rows (references and stages both write deals and deal_stage_history)
    wait for each other: two UPDATEs over the same rows in different orders can deadlock. The association
    inference reads no normalized stage, so it runs beside stage normalization; the linker needs both."""
    from core.pipeline import dependencies, steps

    needs = dependencies(steps())
    assert "resolve_references" in needs["stage_normalization"]
    # The references of the activity-like tables resolve beside those of contacts, deals and stage history; the
    # stage step needs only the latter, the association inference (activities' deal names) both.
    assert "resolve_references" not in needs["resolve_activity_references"]
    assert "resolve_activity_references" not in needs["stage_normalization"]
    assert {"resolve_references", "resolve_activity_references"} <= needs["associations"] & needs["linker_activities"]
    assert "associations" not in needs["stage_normalization"]
    assert "stage_normalization" not in needs["associations"]
    assert {"stage_normalization", "associations", "internal_filter"} <= needs["linker"]
    assert {"stage_normalization", "associations"} <= needs["linker_activities"]
    # The single-deal inference follows the account links and explicit deal links it builds on, runs beside the
    # linker (neither reads what the other writes), and every step reading deal_contacts waits for it.
    assert {"resolve_references", "associations"} <= needs["single_deal_inference"]
    assert not {"linker", "linker_activities"} & needs["single_deal_inference"]
    assert "single_deal_inference" not in needs["linker"] | needs["linker_activities"] | needs["cwd"]
    assert all("single_deal_inference" in needs[s] for s in ("computed_deals", "computed_contacts", "computed_accounts"))


def test_the_steps_heading_the_costliest_chains_start_first():
    """Of the steps ready at once, the one heading the costliest chain goes first: the internal filter before the
    stage step (both feed the linker; the filter takes three times as long on a large first run), the contact
    scores (with the account scores behind them) before the deal scores, and those before CWD."""
    from connectors import load_all
    from core.pipeline import dependencies, priorities, steps

    load_all()
    ordered = steps()
    chain = priorities(ordered, dependencies(ordered))
    assert chain["internal_filter"] > chain["stage_normalization"]
    assert chain["associations"] > chain["stage_normalization"]
    assert chain["computed_contacts"] > chain["computed_deals"] > chain["cwd"]
    assert chain["computed_accounts_of_deals"] > chain["cwd"]  # incremental runs: computed_accounts waits on it
    assert chain["linker"] > chain["linker_activities"]


def test_connector_steps_leave_the_internal_filter_beside_the_reference_resolution():
    """With every connector loaded (as the CLI, the Slack app and the sidecar run the pipeline), the internal
    filter still starts beside resolve_references: it waits only for the Salesforce merges, which move
    conversations' links. Before the connectors named the core steps they leave alone, it waited for the
    monday and Salesforce role steps, and through them for resolve_references and the association inference
    (~7 s of a large first run on its critical path)."""
    from connectors import load_all
    from core.pipeline import dependencies, steps

    load_all()
    needs = dependencies(steps())

    def upstream(name, seen=None):
        seen = set() if seen is None else seen
        for dep in needs[name] - seen:
            seen.add(dep)
            upstream(dep, seen)
        return seen

    assert upstream("internal_filter") == {"salesforce_merges"}
    assert "salesforce_stage_mappings" in needs["stage_normalization"]  # the mappings it reads
    assert {"salesforce_merges", "resolve_references"} <= needs["salesforce_contact_roles"]
    assert "salesforce_contact_roles" in needs["associations"]  # both write deal contacts
    assert not {"monday_task_deals", "salesforce_contact_roles"} & upstream("stage_normalization")
    # contact_scope (incremental runs: the contacts who joined or left a call) starts at once, and Drive's document
    # links, which read accounts' and deals' names, no longer wait for the linker (contact_scope waited for them).
    assert upstream("contact_scope") <= {"salesforce_merges", "salesforce_stage_mappings"}
    assert not {"internal_filter", "stage_normalization", "linker", "linker_activities"} & upstream("google_drive_links")
    assert {"resolve_references", "associations"} <= needs["google_drive_links"]  # deals' and contacts' accounts


def test_only_a_conversations_date_or_deletion_rescores_its_deal_and_account(db, workspace):
    """A retitled conversation, or one with another person on the invite, leaves its deal and account out of the
    scores' scope; one moved in time or deleted brings them in (migration 0018's stamp), and the incremental run
    then leaves nothing for a full run."""
    from datetime import timedelta

    from core.pipeline import PipelineRun
    from core.pipeline.computed import _affected, parameters

    ws = workspace["id"]
    now = datetime.now(timezone.utc)
    people = [{"name": "Rep", "email": "rep@ourco.io", "affiliation": "internal"},
              {"name": "Unknown", "email": "someone@elsewhere.org", "affiliation": "external"}]
    convs = [{"source": "gong", "source_id": f"cv{i}", "title": "Acme call", "started_at": now - timedelta(days=d),
              "participants": people, "source_data": {"context": [{"system": "HubSpot", "objects": [
                  {"objectType": "Deal", "objectId": "d1"}]}]}} for i, d in ((1, 3), (2, 5))]
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme"}])
        upsert_rows(conn, "deals", ws, [{"source": "hubspot", "source_id": "d1", "name": "Pilot", "stage": "qualifiedtobuy",
                                         "account_source_id": "a1", "source_created_at": now - timedelta(days=60)}])
        upsert_rows(conn, "conversations", ws, convs)
    run_post_sync(db, ws, as_of=now)

    def scope() -> tuple[set, set]:
        with db.connection() as conn:
            since = conn.execute("SELECT pipeline_seen_from, pipeline_done_at FROM workspaces WHERE id = %s",
                                 (ws,)).fetchone()
            run = PipelineRun(ws, since["pipeline_seen_from"], as_of=now, own_since=since["pipeline_done_at"])
            deals = _affected(conn, run, parameters(run), "deals")
            return set(deals), set(run.noted("accounts.affected"))

    with db.connection() as conn:
        deal, account = (conn.execute(f"SELECT id FROM {t} WHERE workspace_id = %s", (ws,)).fetchone()["id"]
                         for t in ("deals", "accounts"))
        assert conn.execute("SELECT deal_id FROM conversations WHERE workspace_id = %s AND source_id = 'cv1'",
                            (ws,)).fetchone()["deal_id"] == deal
        upsert_rows(conn, "conversations", ws, [{**convs[0], "title": "Acme call (rescheduled)",
                                                 "participants": people + [{"name": "Guest", "email": "g@x.org"}]}])
    assert scope() == (set(), set())
    with db.connection() as conn:
        upsert_rows(conn, "conversations", ws, [{**convs[0], "title": "Acme call (rescheduled)", "started_at": now,
                                                 "participants": people + [{"name": "Guest", "email": "g@x.org"}]}])
    assert scope() == ({deal}, {account})
    run_post_sync(db, ws, incremental=True, as_of=now)
    with db.connection() as conn:
        upsert_rows(conn, "conversations", ws, [{**convs[0], "deleted_at": now, "started_at": now,
                                                 "title": "Acme call (rescheduled)",
                                                 "participants": people + [{"name": "Guest", "email": "g@x.org"}]}])
    assert scope() == ({deal}, {account})
    run_post_sync(db, ws, incremental=True, as_of=now)
    full = run_post_sync(db, ws, as_of=now)
    assert all(not s["changed"] for s in full), full
    with db.connection() as conn:
        assert conn.execute("SELECT last_activity_at FROM deals WHERE workspace_id = %s", (ws,)).fetchone()[
            "last_activity_at"] == convs[1]["started_at"]


def test_an_incremental_run_rescores_who_joined_or_left_a_conversation_not_everyone_on_it(db, workspace):
    """contact_scope looks at the people a write added to or removed from a conversation since the last run saw it
    (seen_participants, migration 0018), at everyone on a new, moved or deleted one, and the scores come out as a
    full run's: the one who left loses the meeting, the one who joined gains it."""
    from datetime import timedelta

    from core.pipeline import PipelineRun
    from core.pipeline.computed import find_contact_scope

    ws = workspace["id"]
    now = datetime.now(timezone.utc)
    person = {"bob": "Bob@acme.io", "zoe": "zoe@acme.io", "kim": "kim@acme.io", "lee": "lee@acme.io"}
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme", "domain": "acme.io"}])
        upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": k, "email": v.lower(), "account_source_id": "a1"}
                                           for k, v in person.items()])

    def call(*who, **extra):
        return {"source": "gong", "source_id": "cv1", "title": "Acme sync", "started_at": now - timedelta(days=2),
                "participants": [{"name": "Rep", "email": "rep@ourco.io", "affiliation": "internal"}]
                + [{"name": w, "email": person[w], "affiliation": "external"} for w in who], **extra}

    def write(*rows):
        with db.connection() as conn:
            upsert_rows(conn, "conversations", ws, list(rows))

    def scope() -> set[str]:
        with db.connection() as conn:
            since = conn.execute("SELECT pipeline_seen_from, pipeline_done_at FROM workspaces WHERE id = %s",
                                 (ws,)).fetchone()
            run = PipelineRun(ws, since["pipeline_seen_from"], as_of=now, own_since=since["pipeline_done_at"])
            find_contact_scope(conn, run)
            ids = run.noted("contacts.participant")
            return {r["source_id"] for r in conn.execute(
                "SELECT source_id FROM contacts WHERE workspace_id = %s AND id = ANY(%s)", (ws, ids))}

    def engaged() -> dict:
        with db.connection() as conn:
            return {r["source_id"]: r["engagement_score"] is not None for r in conn.execute(
                "SELECT source_id, engagement_score FROM contacts WHERE workspace_id = %s", (ws,))}

    write(call("bob", "zoe"))
    run_post_sync(db, ws, as_of=now)
    run_post_sync(db, ws, incremental=True, as_of=now)
    assert engaged() == {"bob": True, "zoe": True, "kim": False, "lee": False}

    write(call("bob", "zoe", title="Acme sync (moved room)"))  # a new title: nobody
    assert scope() == set()
    # zoe left (bob, the lowest e-mail, stays the linked contact), kim joined
    write(call("bob", "kim", title="Acme sync (moved room)"))
    assert scope() == {"zoe", "kim"}
    write(call("bob", "kim", "lee", title="Acme sync (moved room)"))  # a second write before the run: lee too
    assert scope() == {"zoe", "kim", "lee"}
    run_post_sync(db, ws, incremental=True, as_of=now)
    assert engaged() == {"bob": True, "zoe": False, "kim": True, "lee": True}
    assert all(not s["changed"] for s in run_post_sync(db, ws, as_of=now))

    write(call("bob", "kim", "lee", title="Acme sync (moved room)", started_at=now - timedelta(days=1)))
    assert scope() == {"bob", "kim", "lee"}  # moved in time: everyone on it


def test_noted_on_a_table_collects_every_key_of_that_table_only():
    from datetime import datetime, timezone

    from core.pipeline import PipelineRun

    run = PipelineRun("ws", datetime.now(timezone.utc))
    run.note("activities.deal_id", ["a1", "a2"])
    run.note("activities.contact_id", ["a2", "a3"])
    run.note("accounts.affected", ["x"])
    assert run.noted_on("activities") == ["a1", "a2", "a3"]
    assert run.noted_on("calls") == []


def test_who_counts_on_a_call_is_one_rule_for_the_linker_the_scores_and_the_lookups(db, workspace):
    """A participant's e-mail counts unless their affiliation is the string "internal" in any case and spacing
    (Gong writes "Internal"), and compares with the spaces around it dropped: for the linker's e-mail tier, for
    the engagement of the people on a call, and for the lookup of the calls listing a changed contact's e-mail
    (participant_emails, migrations 0026 and 0028), so an incremental run finds every call a full run would
    link. Before, a participant whose affiliation was a number was missing from the lookup (its call never
    relinked incrementally) and "Internal" ones were scored; one written " Spa@Acme.io " was linked by a full run
    only and never scored, and one " internal " was linked and scored though the internal filter counted them
    as one of us."""
    from datetime import timedelta

    ws = workspace["id"]
    when = datetime.now(timezone.utc) - timedelta(days=2)
    odd = {"nul": None, "num": 5, "cap": "Internal", "low": "external", "pad": " internal "}
    email = {"spa": " Spa@Acme.io "}
    with db.connection() as conn:
        upsert_rows(conn, "accounts", ws, [{"source": "hubspot", "source_id": "a1", "name": "Acme", "domain": "acme.io"}])
        upsert_rows(conn, "conversations", ws, [
            {"source": "gong", "source_id": name, "title": "Pricing review", "started_at": when,
             "participants": [{"email": email.get(name, f"{name}@acme.io"), "affiliation": affiliation},
                              {"email": "guest@elsewhere.io", "affiliation": "external"}]}
            for name, affiliation in {**odd, "spa": "External"}.items()])
    run_post_sync(db, ws)  # nobody to link yet
    with db.connection() as conn:
        upsert_rows(conn, "contacts", ws, [{"source": "hubspot", "source_id": name, "email": f"{name}@acme.io",
                                            "account_source_id": "a1"} for name in [*odd, "spa"]])
    run_post_sync(db, ws, incremental=True)

    def state():
        with db.connection() as conn:
            calls = {r["source_id"]: r["contact"] for r in conn.execute(
                "SELECT cv.source_id, ct.source_id AS contact FROM conversations cv LEFT JOIN contacts ct"
                " ON ct.workspace_id = cv.workspace_id AND ct.id = cv.contact_id WHERE cv.workspace_id = %s", (ws,))}
            scored = {r["source_id"] for r in conn.execute(
                "SELECT source_id FROM contacts WHERE workspace_id = %s AND engagement_score IS NOT NULL", (ws,))}
        return calls, scored

    assert state() == ({"nul": "nul", "num": "num", "cap": None, "low": "low", "pad": None, "spa": "spa"},
                       {"nul", "num", "low", "spa"})
    assert all(not s["changed"] for s in run_post_sync(db, ws)), "a full run found more than the incremental one"

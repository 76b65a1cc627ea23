from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from core.db.migrate import discover, migrate_url
from core.errors import DatabaseError
from core.settings import Settings
from tests import schema_snapshot

SNAPSHOT = Path(__file__).parent / "schema.snapshot"
ENTITIES = ("accounts", "contacts", "deals", "activities", "conversations", "tasks", "calls", "documents", "leads")
NOT_TENANT_SCOPED = {"workspaces", "schema_migrations"}


def test_migrated_schema_matches_the_checked_in_snapshot(db_url):
    with psycopg.connect(db_url) as conn:
        actual = schema_snapshot.render(conn)
    if os.environ.get("PANDORA_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(actual)
    assert actual == SNAPSHOT.read_text(), "schema drifted: rerun with PANDORA_UPDATE_SNAPSHOT=1 and review the diff"


def test_migrations_are_recorded_and_a_second_run_applies_nothing(db_url):
    applied = migrate_url(db_url, Settings().migrations_dir)
    assert applied == []
    with psycopg.connect(db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in discover(Settings().migrations_dir)]


def test_a_new_file_is_applied_in_order_and_an_edited_one_is_refused(db_url, tmp_path):
    mdir = tmp_path / "migrations"
    shutil.copytree(Settings().migrations_dir, mdir)
    (mdir / "9999_extra.sql").write_text("ALTER TABLE deals ADD COLUMN extra text;")
    assert migrate_url(db_url, mdir) == ["9999_extra.sql"]
    (mdir / "9999_extra.sql").write_text("ALTER TABLE deals ADD COLUMN extra2 text;")
    with pytest.raises(DatabaseError, match="changed after it was applied"):
        migrate_url(db_url, mdir)


def test_a_failing_migration_leaves_nothing_half_applied(db_url, tmp_path):
    mdir = tmp_path / "migrations"
    shutil.copytree(Settings().migrations_dir, mdir)
    (mdir / "9999_broken.sql").write_text("CREATE TABLE half_done (x int); SELECT * FROM no_such_table;")
    with pytest.raises(DatabaseError, match="9999_broken.sql"):
        migrate_url(db_url, mdir)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = '9999'").fetchone()[0] == 0


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "1_init.sql").write_text("")
    with pytest.raises(DatabaseError, match="NNNN_snake_case"):
        discover(tmp_path)


def test_every_table_is_tenant_scoped_and_keys_lead_with_workspace_id(db_url):
    with psycopg.connect(db_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in set(tables) - NOT_TENANT_SCOPED:
            notnull = conn.execute(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'workspace_id'",
                (table,)).fetchone()
            assert notnull == (True,), f"{table}.workspace_id missing or nullable"
        keys = conn.execute("""
            SELECT c.relname, k.conname, a.attname
              FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
             WHERE k.contype IN ('p', 'u') AND c.relnamespace = 'public'::regnamespace""").fetchall()
        for table, name, first in keys:
            if table not in NOT_TENANT_SCOPED:
                assert first == "workspace_id", f"{table}.{name} does not lead with workspace_id"


@pytest.mark.parametrize("table", ENTITIES)
def test_entities_carry_source_identity_and_raw_data(db_url, table):
    with psycopg.connect(db_url) as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0", (table,))}
        unique = [r[0] for r in conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'", (table,))]
    assert {"source", "source_id", "source_data", "custom_fields", "created_at", "updated_at"} <= cols
    assert "UNIQUE (workspace_id, source, source_id)" in unique


def test_columns_named_by_the_seed_exist(db_url):
    want = {
        "conversations": {"contact_id", "account_id", "deal_id", "link_method", "is_internal",
                          "internal_classification_reason", "participants"},
        "deals": {"name", "amount", "stage", "stage_normalized", "close_date", "owner", "account_id",
                  "velocity_score", "deal_risk", "health_score"},
        "contacts": {"email", "first_name", "last_name", "account_id", "engagement_score"},
        "accounts": {"name", "domain", "health_score"},
        "leads": {"converted_contact_id", "converted_account_id", "converted_deal_id"},
        "deal_contacts": {"role_source", "apollo_data", "linkedin_data", "buying_role", "enrichment_status"},
        "connections": {"connector_name", "status", "credentials", "metadata", "sync_cursors"},
        "context_layer": {"business_model", "team_structure", "goals_and_targets", "definitions", "operational_maturity"},
    }
    with psycopg.connect(db_url) as conn:
        for table, cols in want.items():
            have = {r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0", (table,))}
            assert cols <= have, f"{table} lacks {cols - have}"
        types = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'deals'::regclass"))
    assert types["amount"].startswith("numeric") and types["close_date"] == "date"


def test_two_processes_migrating_at_once_apply_each_file_once(server_url, tmp_path):
    """The advisory lock serialises concurrent migrators (simulated with two connections)."""
    from concurrent.futures import ThreadPoolExecutor

    from core.db.database import ensure_database

    url = ensure_database(server_url, f"pandora_test_{os.getpid()}_race")
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: migrate_url(url, Settings().migrations_dir), range(2)))
        assert sorted(len(r) for r in results) == [0, len(discover(Settings().migrations_dir))]
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "pandora_test_{os.getpid()}_race" WITH (FORCE)')


@contextmanager
def _database_before(server_url, tmp_path, version: str):
    """A scratch database migrated up to, not including, migration `version` (a test then runs that one on the
    rows it writes); dropped afterwards."""
    from core.db.database import ensure_database

    name = f"pandora_test_{os.getpid()}_{version}"
    url = ensure_database(server_url, name)
    try:
        before = tmp_path / "before"
        before.mkdir()
        for m in discover(Settings().migrations_dir):
            if m.version < version:
                shutil.copy(m.path, before / m.path.name)
        migrate_url(url, before)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# participant_emails' entries of one table, by the row's source_id (xmin: whether a migration rewrote them).
_STORED_EMAILS = """SELECT t.source_id, p.email, p.xmin::text AS v FROM participant_emails p
                      JOIN {0} t ON t.workspace_id = p.workspace_id AND t.id = p.row_id
                     WHERE p.entity = '{0}' ORDER BY 1, 2"""


def _rows_with_participants(conn, people: dict) -> None:
    """A workspace with, in conversations and in activities, one row per key of `people` listing those participants
    (written as the triggers of the migrations so far keep participant_emails)."""
    ws = conn.execute("INSERT INTO workspaces (name, slug) VALUES ('W', 'w') RETURNING id").fetchone()[0]
    for table, extra in (("conversations", ""), ("activities", ", 'meeting', now()")):
        cols = ", activity_type, occurred_at" if extra else ""
        for key, parts in people.items():
            conn.execute(f"INSERT INTO {table} (workspace_id, source, source_id, participants{cols})"
                         f" VALUES (%s, 'gong', %s, %s{extra})", (ws, key, psycopg.types.json.Jsonb(parts)))


def test_participant_emails_follow_the_new_definition_of_an_internal_participant(server_url, tmp_path):
    """Migration 0026 changes which participants' e-mails pandora_participant_emails lists (an affiliation of
    "Internal" in any case is internal; one that is not a string is not) and mends what participant_emails
    already holds to match, for rows written under the old definition; rows it does not concern keep their
    entries as they were (same row versions)."""
    with _database_before(server_url, tmp_path, "0026") as url:
        people = {
            "plain": [{"email": "Ana@Acme.io", "affiliation": "external"}, {"email": "rep@us.io", "affiliation": "internal"}],
            "gong": [{"email": "jo@acme.io", "affiliation": "External"}, {"email": "Rep@Us.io", "affiliation": "Internal"},
                     {"email": "jo@acme.io", "affiliation": "INTERNAL"}],  # listed twice: external once, so it stays
            "odd": [{"email": "num@acme.io", "affiliation": 5}, {"email": "nul@acme.io", "affiliation": None},
                    {"email": "arr@acme.io", "affiliation": ["internal"]}, {"email": "none@acme.io"}],
            "none": None,
        }
        stored = _STORED_EMAILS
        with psycopg.connect(url, autocommit=True) as conn:
            _rows_with_participants(conn, people)
            old = {t: conn.execute(stored.format(t)).fetchall() for t in ("conversations", "activities")}
            assert [(s, e) for s, e, _ in old["conversations"]] == [  # "Internal" listed, 5 and ["internal"] not
                ("gong", "jo@acme.io"), ("gong", "rep@us.io"), ("odd", "none@acme.io"), ("odd", "nul@acme.io"),
                ("plain", "ana@acme.io")]
        migrate_url(url, Settings().migrations_dir)
        with psycopg.connect(url) as conn:
            for table in ("conversations", "activities"):
                new = conn.execute(stored.format(table)).fetchall()
                assert [(s, e) for s, e, _ in new] == [
                    ("gong", "jo@acme.io"), ("odd", "arr@acme.io"), ("odd", "none@acme.io"), ("odd", "nul@acme.io"),
                    ("odd", "num@acme.io"), ("plain", "ana@acme.io")], table
                # the entries both definitions list were left as they were
                assert {r for r in new if r[1] != "rep@us.io" and r[1] not in ("arr@acme.io", "num@acme.io")} == {
                    r for r in old[table] if r[1] != "rep@us.io"}
                # and the table is what the triggers would write now
                assert [(s, e) for s, e, _ in new] == conn.execute(
                    f"SELECT source_id, e FROM {table}, jsonb_array_elements_text(pandora_participant_emails(participants)) e"
                    f" WHERE jsonb_typeof(participants) = 'array' GROUP BY 1, 2 ORDER BY 1, 2").fetchall()



def test_email_matches_made_before_record_their_participant(server_url, tmp_path):
    """Migration 0027: a row e-mail-matched before the linker recorded the participant gets the one whose e-mail
    is its contact's (as the source spelt it); one whose contact's e-mail is on none of its participants (it
    changed since), a CRM contact and a row already recorded are left as they were."""
    with _database_before(server_url, tmp_path, "0027") as url:
        Json = psycopg.types.json.Jsonb
        with psycopg.connect(url, autocommit=True) as conn:
            ws = conn.execute("INSERT INTO workspaces (name, slug) VALUES ('W', 'w') RETURNING id").fetchone()[0]
            jane = conn.execute("INSERT INTO contacts (workspace_id, source, source_id, email) VALUES"
                                " (%s, 'hubspot', 'c1', 'Jane@Acme.io') RETURNING id", (ws,)).fetchone()[0]
            people = [{"email": "rep@us.io"}, {"email": " JANE@acme.io"}, {"email": "jane@acme.io"}]
            rows = {
                "matched": ({"contact": "email_match"}, people),
                "moved": ({"contact": "email_match"}, [{"email": "other@acme.io"}]),
                "crm": ({"contact": "crm_native"}, people),
                "recorded": ({"contact": "email_match", "contact_email": "jane@acme.io"}, people),
            }
            for table, extra in (("conversations", ""), ("activities", ", 'meeting', now()")):
                cols = ", activity_type, occurred_at" if extra else ""
                for key, (details, parts) in rows.items():
                    conn.execute(f"INSERT INTO {table} (workspace_id, source, source_id, contact_id, link_method,"
                                 f" link_details, participants{cols}) VALUES (%s, 'gong', %s, %s, 'email_match', %s, %s{extra})",
                                 (ws, key, jane, Json(details), Json(parts)))
        migrate_url(url, Settings().migrations_dir)
        with psycopg.connect(url) as conn:
            for table in ("conversations", "activities"):
                got = dict(conn.execute(f"SELECT source_id, link_details FROM {table}").fetchall())
                assert got == {"matched": {"contact": "email_match", "contact_email": " JANE@acme.io"},
                               **{k: d for k, (d, _) in rows.items() if k != "matched"}}, table


def test_participant_emails_are_listed_trimmed(server_url, tmp_path):
    """Migration 0028: pandora_participant_emails lists e-mails with the spaces around them dropped and treats an
    affiliation of " internal " as internal (core.pipeline.participants), and participant_emails is mended for the
    rows written before that have such spacing; the other rows keep their entries as they were."""
    with _database_before(server_url, tmp_path, "0028") as url:
        people = {
            "spaced": [{"email": " Ana@Acme.io ", "affiliation": "external"}, {"email": "bo@acme.io"}],
            "inside": [{"email": "rep@us.io", "affiliation": " Internal"}, {"email": "cy@acme.io", "affiliation": "External"}],
            "plain": [{"email": "Di@Acme.io", "affiliation": "external"}, {"email": "me@us.io", "affiliation": "internal"}],
        }
        stored = _STORED_EMAILS
        with psycopg.connect(url, autocommit=True) as conn:
            _rows_with_participants(conn, people)
            old = {t: conn.execute(stored.format(t)).fetchall() for t in ("conversations", "activities")}
            assert [(s, e) for s, e, _ in old["conversations"]] == [
                ("inside", "cy@acme.io"), ("inside", "rep@us.io"), ("plain", "di@acme.io"),
                ("spaced", " ana@acme.io "), ("spaced", "bo@acme.io")]
        migrate_url(url, Settings().migrations_dir)
        with psycopg.connect(url) as conn:
            for table in ("conversations", "activities"):
                new = conn.execute(stored.format(table)).fetchall()
                assert [(s, e) for s, e, _ in new] == [
                    ("inside", "cy@acme.io"), ("plain", "di@acme.io"), ("spaced", "ana@acme.io"),
                    ("spaced", "bo@acme.io")], table
                assert [r for r in new if r[0] == "plain"] == [r for r in old[table] if r[0] == "plain"]  # untouched
                assert [(s, e) for s, e, _ in new] == conn.execute(  # what the triggers would write now
                    f"SELECT source_id, e FROM {table}, jsonb_array_elements_text(pandora_participant_emails(participants)) e"
                    f" GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
            # and a later change of the participants moves the mended entries (the trigger finds what it lists)
            conn.execute("UPDATE conversations SET participants = '[{\"email\": \"ed@acme.io\"}]' WHERE source_id = 'spaced'")
            assert conn.execute("SELECT email FROM participant_emails p JOIN conversations c ON c.id = p.row_id"
                                " WHERE c.source_id = 'spaced'").fetchall() == [("ed@acme.io",)]

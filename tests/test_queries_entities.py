"""The six other query modules and their helpers: accounts.get counts, deals.get with contacts, contact
filters, a deal's activity timeline, conversations linked / internal / participant, overdue tasks, documents;
and tenant isolation for every module. Data is written through `upsert_rows` only (deal contacts by the
association step, from the contacts' `associated_deals`)."""
from __future__ import annotations

import uuid

import pytest

from core.db.upsert import upsert_rows
from core.errors import InputError, NotFound
from core.pipeline import PipelineRun
from core.pipeline.associations import infer_associations
from core.queries import accounts, activities, contacts, conversations, deals, documents, tasks
from core.workspaces import create_workspace

MODULES = (accounts, activities, contacts, conversations, deals, documents, tasks)


@pytest.fixture(scope="module")
def qdb(module_db):
    return module_db


@pytest.fixture
def conn(qdb):
    with qdb.connection() as connection:
        yield connection


def write(c, ws, table, rows) -> dict[str, uuid.UUID]:
    upsert_rows(c, table, ws, [{"source": "gong" if table == "conversations" else "hubspot", **r} for r in rows])
    return {r["source_id"]: r["id"] for r in c.execute(
        f"SELECT source_id, id FROM {table} WHERE workspace_id = %s", (ws,)).fetchall()}


def seed(db) -> tuple[str, dict[str, uuid.UUID]]:
    """A small GTM world; returns the workspace id and {source_id: id} of everything in it."""
    with db.connection() as c:
        ws = str(create_workspace(c, f"Entities {uuid.uuid4().hex[:8]}")["id"])
        ids = write(c, ws, "accounts", [
            {"source_id": "acme", "name": "Acme Corp", "domain": "acme.io", "industry": "Software", "employee_count": 500},
            {"source_id": "globex", "name": "Globex", "domain": "globex.com", "employee_count": 50},
            {"source_id": "initech", "name": "Initech"},
        ])
        acme, globex = ids["acme"], ids["globex"]
        ids |= write(c, ws, "deals", [
            {"source_id": "a1", "name": "Acme expansion", "amount": 50000, "stage_normalized": "negotiation", "account_id": acme},
            {"source_id": "a2", "name": "Acme renewal", "amount": 20000, "stage_normalized": "closed_won", "account_id": acme},
            {"source_id": "a3", "name": "Acme lost", "amount": 5000, "stage_normalized": "closed_lost", "account_id": acme},
            {"source_id": "a4", "name": "Acme new", "amount": 7000, "account_id": acme},
            {"source_id": "a5", "name": "Acme gone", "amount": 1000, "account_id": acme, "deleted_at": "2026-01-01T00:00:00Z"},
            {"source_id": "g1", "name": "Globex pilot", "amount": 12000, "stage_normalized": "evaluation", "account_id": globex},
        ])
        a1 = ids["a1"]
        ids |= write(c, ws, "contacts", [
            {"source_id": "jane", "email": "jane@acme.io", "first_name": "Jane", "last_name": "Doe", "account_id": acme,
             "custom_fields": {"associated_deals": ["Acme expansion"]}},
            {"source_id": "bob", "email": "Bob@ACME.io", "first_name": "Bob", "last_name": "Stone", "account_id": acme},
            {"source_id": "carol", "email": "carol@acme.io", "last_name": "Gone", "account_id": acme,
             "custom_fields": {"associated_deals": ["Acme expansion"]}, "deleted_at": "2026-01-01T00:00:00Z"},
            {"source_id": "amy", "email": "amy@gmail.com", "first_name": "Amy", "last_name": "Ng"},
        ])
        write(c, ws, "activities", [
            {"source_id": "e1", "activity_type": "email", "subject": "Pricing", "occurred_at": "2026-03-01T10:00:00Z", "deal_id": a1},
            {"source_id": "e2", "activity_type": "call", "subject": "Legal review", "occurred_at": "2026-03-05T23:30:00Z", "deal_id": a1},
            {"source_id": "e3", "activity_type": "note", "subject": "Undated note", "deal_id": a1},
            {"source_id": "e4", "activity_type": "Meeting", "subject": "Kickoff", "occurred_at": "2026-03-06T00:00:00Z",
             "deal_id": ids["g1"]},
        ])
        write(c, ws, "conversations", [
            {"source_id": "c1", "title": "Acme negotiation", "is_internal": False, "account_id": acme, "deal_id": a1,
             "participants": [{"email": "jane@acme.io", "name": "Jane Doe"}], "transcript": "..."},
            {"source_id": "c2", "title": "Acme check-in", "is_internal": False, "account_id": acme,
             "participants": [{"email": "bob@acme.io", "name": "Bob Stone"}]},
            {"source_id": "c3", "title": "Pipeline review", "is_internal": True,
             "participants": [{"email": "sam@ourco.com", "name": "Sam"}]},
            {"source_id": "c4", "title": "Intro", "participants": [{"email": "amy@gmail.com", "name": "Amy Ng"}]},
        ])
        write(c, ws, "tasks", [
            {"source_id": "t1", "title": "Send contract", "due_date": "2020-01-01", "deal_id": a1},
            {"source_id": "t2", "title": "Book demo", "due_date": "2020-01-01", "completed_at": "2020-01-02T00:00:00Z"},
            {"source_id": "t3", "title": "Renewal prep", "due_date": "2999-01-01", "account_id": acme},
            {"source_id": "t4", "title": "Someday"},
        ])
        write(c, ws, "documents", [
            {"source_id": "doc1", "title": "Acme proposal", "doc_type": "proposal", "deal_id": a1, "account_id": acme,
             "size_bytes": 1000},
            {"source_id": "doc2", "title": "Acme MSA", "doc_type": "contract", "account_id": acme, "size_bytes": 5000,
             "content": "terms"},
            {"source_id": "doc3", "title": "Battlecard", "doc_type": "deck"},
        ])
        infer_associations(c, PipelineRun(ws))
    return ws, ids


@pytest.fixture(scope="module")
def world(qdb):
    return seed(qdb)


@pytest.fixture
def ws(world):
    return world[0]


def titles(page, key="title") -> list:
    return [row[key] for row in page.items]


# ---------------------------------------------------------------------------------------------------- accounts

def test_account_get_counts_open_won_and_lost_deals_and_contacts(conn, world):
    ws, ids = world
    acme = accounts.get(conn, ws, ids["acme"])
    # a4 has no stage: open; a5 is deleted; carol is deleted
    assert (acme["name"], acme["open_deals"], acme["won_deals"], acme["lost_deals"]) == ("Acme Corp", 2, 1, 1)
    assert (acme["open_amount"], acme["won_amount"], acme["contact_count"]) == (57000, 20000, 2)
    empty = accounts.get(conn, ws, ids["initech"])
    assert (empty["open_deals"], empty["open_amount"], empty["contact_count"]) == (0, 0, 0)


def test_account_filters(conn, ws):
    assert titles(accounts.query(conn, ws, filters={"has_open_deals": True}), "name") == ["Acme Corp", "Globex"]
    assert titles(accounts.query(conn, ws, filters={"has_open_deals": False}), "name") == ["Initech"]
    assert titles(accounts.query(conn, ws, filters={"employees_min": 100}), "name") == ["Acme Corp"]
    assert titles(accounts.query(conn, ws, sort="employees", direction="desc"), "name") == ["Acme Corp", "Globex", "Initech"]


def test_get_with_a_malformed_or_unknown_id(conn, ws):
    with pytest.raises(InputError) as err:
        accounts.get(conn, ws, "acme")
    assert err.value.details["field"] == "account_id"
    with pytest.raises(NotFound):
        deals.get(conn, ws, uuid.uuid4())


# ---------------------------------------------------------------------------------------------------- deals/contacts

def test_deal_get_has_its_account_and_its_live_contacts(conn, world):
    ws, ids = world
    deal = deals.get(conn, ws, ids["a1"])
    assert (deal["name"], deal["account"]["name"], deal["account"]["domain"]) == ("Acme expansion", "Acme Corp", "acme.io")
    assert [(c["email"], c["role_sources"]) for c in deal["contacts"]] == [("jane@acme.io", ["explicit_deal_name"])]
    assert deals.get(conn, ws, ids["a4"])["contacts"] == []
    with pytest.raises(NotFound):
        deals.get(conn, ws, ids["a5"])
    assert deals.get(conn, ws, ids["a5"], include_deleted=True)["deleted_at"] is not None


def test_contact_filters(conn, world):
    ws, ids = world
    assert titles(contacts.query(conn, ws, filters={"email_domain": "ACME.io"}), "email") == ["jane@acme.io", "Bob@ACME.io"]
    assert titles(contacts.query(conn, ws, filters={"email": "bob@acme.io"}), "email") == ["Bob@ACME.io"]
    assert titles(contacts.query(conn, ws, filters={"has_account": False}), "email") == ["amy@gmail.com"]
    assert titles(contacts.query(conn, ws, filters={"deal_id": ids["a1"]}), "email") == ["jane@acme.io"]
    assert titles(contacts.query(conn, ws, filters={"search": "jane doe"}), "full_name") == ["Jane Doe"]
    assert titles(contacts.query(conn, ws), "last_name") == ["Doe", "Ng", "Stone"]
    assert contacts.query(conn, ws, filters={"account_id": ids["acme"]}).items[0]["account_name"] == "Acme Corp"


# ---------------------------------------------------------------------------------------------------- activities

def test_a_deals_timeline_is_newest_first_with_undated_last(conn, world):
    ws, ids = world
    assert [a["subject"] for a in activities.for_deal(conn, ws, ids["a1"])] == ["Legal review", "Pricing", "Undated note"]
    assert [a["subject"] for a in activities.for_deal(conn, ws, ids["a1"], limit=1)] == ["Legal review"]
    assert activities.for_deal(conn, ws, ids["a1"])[0]["deal_name"] == "Acme expansion"


def test_activity_type_and_a_date_bound_covering_the_whole_day(conn, ws):
    assert titles(activities.query(conn, ws, filters={"activity_type": ["CALL", "meeting"]}), "subject") == [
        "Kickoff", "Legal review"]
    day = activities.query(conn, ws, filters={"occurred_from": "2026-03-05", "occurred_to": "2026-03-05"})
    assert titles(day, "subject") == ["Legal review"]  # 23:30 UTC is in, next midnight is out
    assert titles(activities.query(conn, ws, filters={"occurred_to": "2026-03-05T23:00:00Z"}), "subject") == ["Pricing"]


# ---------------------------------------------------------------------------------------------------- conversations

@pytest.mark.parametrize("filters, expected", [
    ({"linked": True}, ["c1"]),
    ({"linked": False}, ["c2", "c3", "c4"]),
    ({"internal": True}, ["c3"]),
    ({"internal": "false"}, ["c1", "c2", "c4"]),  # not yet classified counts as external
    ({"internal": False, "has_account": True, "linked": False}, ["c2"]),  # a conversation without a deal
    ({"participant": "BOB@acme"}, ["c2"]),
    ({"participant": "amy ng"}, ["c4"]),
    ({"participant": "%"}, []),
    ({"has_transcript": True}, ["c1"]),
    ({"search": "acme"}, ["c1", "c2"]),
])
def test_conversation_filters(conn, ws, filters, expected):
    page = conversations.query(conn, ws, filters=filters, sort="title")
    assert sorted(row["source_id"] for row in page.items) == expected


def test_conversations_never_list_transcripts(conn, ws):
    row = conversations.query(conn, ws, filters={"linked": True}).items[0]
    assert "transcript" not in row and row["has_transcript"] is True
    assert (row["deal_name"], row["account_name"]) == ("Acme expansion", "Acme Corp")


# ---------------------------------------------------------------------------------------------------- tasks, docs

def test_overdue_tasks_are_open_and_past_due(conn, ws):
    assert titles(tasks.query(conn, ws, filters={"overdue": True})) == ["Send contract"]
    assert titles(tasks.query(conn, ws, filters={"overdue": False})) == ["Book demo", "Renewal prep", "Someday"]
    assert titles(tasks.query(conn, ws, filters={"completed": True})) == ["Book demo"]
    assert titles(tasks.query(conn, ws, filters={"due_from": "2021-01-01"})) == ["Renewal prep"]


def test_document_filters_and_size_sort(conn, ws):
    assert titles(documents.query(conn, ws, filters={"linked": False}, sort="title")) == ["Acme MSA", "Battlecard"]
    assert titles(documents.query(conn, ws, filters={"doc_type": "PROPOSAL"})) == ["Acme proposal"]
    assert titles(documents.query(conn, ws, filters={"has_content": True})) == ["Acme MSA"]
    assert titles(documents.query(conn, ws, sort="size", direction="desc")) == ["Acme MSA", "Acme proposal", "Battlecard"]
    assert "content" not in documents.query(conn, ws).items[0]


# ---------------------------------------------------------------------------------------------------- tenancy

@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_module_shows_another_workspaces_rows(qdb, conn, world, module):
    ws, _ = world
    other, _ = seed(qdb)  # the same world again: same source ids, names, emails
    mine = {r["id"] for r in module.query(conn, ws, filters={"include_deleted": True}, limit=500).items}
    theirs = {r["id"] for r in module.query(conn, other, filters={"include_deleted": True}, limit=500).items}
    assert mine and len(mine) == len(theirs) and not mine & theirs
    assert module.query(conn, ws, filters={"id": sorted(theirs)}).total == 0


def test_filtering_by_another_workspaces_ids_finds_nothing(qdb, conn, world):
    ws, _ = world
    other, theirs = seed(qdb)
    assert activities.for_deal(conn, ws, theirs["a1"]) == []
    assert contacts.query(conn, ws, filters={"deal_id": theirs["a1"]}).total == 0
    assert conversations.query(conn, ws, filters={"account_id": theirs["acme"]}).total == 0
    with pytest.raises(NotFound):
        accounts.get(conn, ws, theirs["acme"])

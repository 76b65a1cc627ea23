"""The `google_drive_links` post-sync step, run by real Drive syncs against the fake Drive: accounts by name
(legal suffix dropped) or domain, whole words only, distinctive names only, deals by the most specific name,
ties link nothing, renames relink, manual and foreign links stay, accounts arriving later link old files, and a
second run changes nothing."""
from __future__ import annotations

from connectors.google_drive.linking import link_documents
from core.pipeline import run_post_sync
from tests.support import write
from tests.test_drive_support import (  # noqa: F401 (fixtures)
    ROOT, connected, connector, documents, drive, engine, rows, workspace,
)

ACCOUNTS = [
    {"source_id": "a-acme", "name": "Acme Corp", "domain": "acme.com"},
    {"source_id": "a-globex", "name": "Globex Corporation", "domain": "globex.example"},
    {"source_id": "a-initech", "name": "Initech", "domain": "initech.io"},
    {"source_id": "a-piper", "name": "Pied Piper", "domain": "https://www.piedpiper.com/"},
    {"source_id": "a-wonka", "name": "Wonka", "domain": None},
    {"source_id": "a-stark", "name": "Stark", "domain": None},
    {"source_id": "a-ibm", "name": "IBM", "domain": None},
]
DEALS = [
    {"source_id": "d-acme-exp", "name": "Acme Corp Expansion 2026", "account_source_id": "a-acme"},
    {"source_id": "d-acme-ren", "name": "Acme Renewal", "account_source_id": "a-acme"},
    {"source_id": "d-initech", "name": "Initech Order", "account_source_id": "a-initech"},
]


def seed_crm(db, ws) -> tuple[dict, dict]:
    write(db, ws, "accounts", ACCOUNTS, source="hubspot")
    write(db, ws, "deals", DEALS, source="hubspot")
    accounts = {r["name"]: r["id"] for r in rows(db, ws, "SELECT id, name FROM accounts WHERE workspace_id = %s")}
    deals = {r["name"]: r["id"] for r in rows(db, ws, "SELECT id, name FROM deals WHERE workspace_id = %s")}
    return accounts, deals


def sync(engine, ws):
    report = engine.run(ws["id"], "google_drive")
    assert report.status == "succeeded", report.error
    return documents(engine.db, ws)


def test_files_link_to_accounts_by_name_in_title_or_folder_and_by_domain(engine, connected, drive):
    accounts, _ = seed_crm(engine.db, connected)
    drive.add_file("piedpiper.com security review", ROOT)
    drive.add_file("Acmeville offsite plan", ROOT)              # "Acme" only as part of a word
    drive.add_file("IBM comparison", ROOT)                      # a name too short to tell
    docs = sync(engine, connected)
    msa = docs["Acme MSA.pdf"]                                  # "Acme" in the title and "Acme Corp" in the path
    assert msa["account_id"] == accounts["Acme Corp"] and msa["link_details"] == {"account": "name_match"}
    assert msa["link_method"] == "name_match" and msa["linked_at"] is not None
    assert docs["Globex pricing"]["account_id"] == accounts["Globex Corporation"]    # "Corporation" dropped
    assert docs["piedpiper.com security review"]["account_id"] == accounts["Pied Piper"]
    assert docs["piedpiper.com security review"]["link_method"] == "domain_match"
    for unlinked in ("Acmeville offsite plan", "IBM comparison", "Q2 Pipeline Review", "territories.csv"):
        assert docs[unlinked]["account_id"] is None and docs[unlinked]["link_method"] is None


def test_the_most_specific_deal_wins_and_brings_its_account(engine, connected, drive):
    accounts, deals = seed_crm(engine.db, connected)
    drive.add_file("Acme Corp Expansion 2026 proposal", ROOT)
    drive.add_file("Acme Renewal - Acme Corp Expansion 2026 notes", ROOT)
    docs = sync(engine, connected)
    exp = docs["Acme Corp Expansion 2026 proposal"]
    assert exp["deal_id"] == deals["Acme Corp Expansion 2026"] and exp["account_id"] == accounts["Acme Corp"]
    assert exp["link_details"] == {"account": "deal_name", "deal": "deal_name"} and exp["link_method"] == "deal_name"
    assert docs["Acme Renewal - Acme Corp Expansion 2026 notes"]["deal_id"] == deals["Acme Corp Expansion 2026"]
    order = docs["Initech Order Form"]                          # in the shared drive's Initech folder
    assert order["deal_id"] == deals["Initech Order"] and order["account_id"] == accounts["Initech"]
    assert docs["Acme Corp Proposal"]["deal_id"] is None        # no deal's name in it


def test_two_equally_specific_accounts_link_nothing(engine, connected, drive):
    seed_crm(engine.db, connected)
    drive.add_file("Wonka and Stark joint plan", ROOT)
    docs = sync(engine, connected)
    assert docs["Wonka and Stark joint plan"]["account_id"] is None


def test_a_renamed_file_follows_its_new_name_and_loses_a_link_that_no_longer_fits(engine, connected, drive):
    accounts, _ = seed_crm(engine.db, connected)
    memo = drive.add_file("Stark memo", ROOT)
    assert sync(engine, connected)["Stark memo"]["account_id"] == accounts["Stark"]
    drive.modify(memo, name="Wonka memo")
    assert sync(engine, connected)["Wonka memo"]["account_id"] == accounts["Wonka"]
    drive.modify(memo, name="Team memo")
    team = sync(engine, connected)["Team memo"]
    assert team["account_id"] is None and team["link_method"] is None and team["link_details"] == {}


def test_manual_and_foreign_links_are_never_overwritten(engine, connected, drive):
    accounts, deals = seed_crm(engine.db, connected)
    sync(engine, connected)
    with engine.db.connection() as conn:
        conn.execute("UPDATE documents SET account_id = %(a)s, link_method = 'manual' WHERE workspace_id = %(w)s"
                     " AND title = 'Acme Corp Proposal'", {"a": accounts["Stark"], "w": connected["id"]})
        conn.execute("UPDATE documents SET account_id = %(a)s, deal_id = NULL, link_method = NULL, link_details = '{}'"
                     " WHERE workspace_id = %(w)s AND title = 'Initech Order Form'",
                     {"a": accounts["Wonka"], "w": connected["id"]})
    drive.modify(drive.seed.proposal, content="v2")
    drive.modify(drive.seed.order_form, content="v2")
    docs = sync(engine, connected)
    assert docs["Acme Corp Proposal"]["account_id"] == accounts["Stark"]        # manual: untouched
    assert docs["Acme Corp Proposal"]["link_method"] == "manual"
    order = docs["Initech Order Form"]
    assert order["account_id"] == accounts["Wonka"]                             # set elsewhere: kept
    assert order["deal_id"] is None          # Initech's deal would contradict that account: not linked


def test_an_account_synced_after_the_files_links_them_on_the_next_pipeline_run(engine, connected, drive):
    sync(engine, connected)
    write(engine.db, connected, "accounts", [{"source_id": "a-globex", "name": "Globex Corporation"}],
          source="hubspot")
    steps = run_post_sync(engine.db, connected["id"], incremental=True)
    assert any(s["name"] == "google_drive_links" and s["changed"] for s in steps)
    [globex] = rows(engine.db, connected, "SELECT id FROM accounts WHERE workspace_id = %s")
    assert documents(engine.db, connected)["Globex pricing"]["account_id"] == globex["id"]


def test_linking_is_idempotent(engine, connected, drive):
    seed_crm(engine.db, connected)
    sync(engine, connected)
    with engine.db.connection() as conn:
        assert link_documents(conn, str(connected["id"])) == 0
    before = {t: (d["account_id"], d["deal_id"], d["linked_at"], d["updated_at"])
              for t, d in documents(engine.db, connected).items()}
    run_post_sync(engine.db, connected["id"])
    after = {t: (d["account_id"], d["deal_id"], d["linked_at"], d["updated_at"])
             for t, d in documents(engine.db, connected).items()}
    assert after == before

from __future__ import annotations

from core.db.upsert import upsert_rows
from core.pipeline import run_post_sync


def write(db, ws, table, rows):
    with db.connection() as conn:
        upsert_rows(conn, table, ws["id"], [{"source": "csv_import", **r} for r in rows])


def links(db, ws, table):
    with db.connection() as conn:
        return {r["source_id"]: r["name"] for r in conn.execute(
            f"SELECT t.source_id, a.name FROM {table} t LEFT JOIN accounts a"
            " ON a.workspace_id = t.workspace_id AND a.id = t.account_id WHERE t.workspace_id = %s", (ws["id"],))}


def deal_contacts(db, ws):
    with db.connection() as conn:
        return sorted((r["email"], r["name"], r["role_source"]) for r in conn.execute(
            "SELECT c.email, d.name, dc.role_source FROM deal_contacts dc"
            " JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id"
            " JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id WHERE dc.workspace_id = %s",
            (ws["id"],)))


def test_deals_link_to_accounts_by_exact_then_normalized_name(db, workspace):
    write(db, workspace, "accounts", [
        {"source_id": "a1", "name": "Acme, Inc.", "domain": "acme.io"},
        {"source_id": "a2", "name": "Globex Corporation"},
        {"source_id": "a3", "name": "Initech LLC"}, {"source_id": "a4", "name": "Initech Ltd"},
    ])
    write(db, workspace, "deals", [
        {"source_id": "d1", "name": "Acme renewal", "account_name": "ACME inc"},
        {"source_id": "d2", "name": "Globex new", "account_name": "Globex"},
        {"source_id": "d3", "name": "Initech pilot", "account_name": "Initech"},  # two candidates: skipped
        {"source_id": "d4", "name": "Nobody", "account_name": "Umbrella"},
    ])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "deals") == {"d1": "Acme, Inc.", "d2": "Globex Corporation", "d3": None, "d4": None}


def test_contacts_link_by_email_domain_before_company_name(db, workspace):
    write(db, workspace, "accounts", [
        {"source_id": "a1", "name": "Acme", "domain": "acme.io"},
        {"source_id": "a2", "name": "Globex", "domain": "globex.com"},
    ])
    write(db, workspace, "contacts", [
        {"source_id": "c1", "email": "jane@acme.io", "company_name": "Globex"},
        {"source_id": "c2", "email": "bob@gmail.com", "company_name": "Globex Inc"},
        {"source_id": "c3", "email": "amy@gmail.com"},
    ])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "contacts") == {"c1": "Acme", "c2": "Globex", "c3": None}


def test_a_domain_two_accounts_share_is_ambiguous_and_the_name_does_not_break_the_tie(db, workspace):
    """The best tier decides: a domain naming two accounts links no one, even where the company name names one."""
    write(db, workspace, "accounts", [
        {"source_id": "a1", "name": "Hooli", "domain": "hooli.com"},
        {"source_id": "a2", "name": "Hooli XYZ", "domain": "hooli.com"},
    ])
    write(db, workspace, "contacts", [
        {"source_id": "c1", "email": "gavin@hooli.com", "company_name": "Hooli"},
        {"source_id": "c2", "email": "gavin@gmail.com", "company_name": "Hooli"},
    ])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "contacts") == {"c1": None, "c2": "Hooli"}


def test_importing_accounts_later_links_everything_already_there(db, workspace):
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "jane@acme.io"}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "contacts") == {"c1": None}
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "contacts") == {"c1": "Acme"}


def test_associated_deals_link_contacts_to_deals_by_name(db, workspace):
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"}])
    write(db, workspace, "deals", [
        {"source_id": "d1", "name": "Acme Expansion", "account_name": "Acme"},
        {"source_id": "d2", "name": "Acme Renewal", "account_name": "Acme"},
    ])
    write(db, workspace, "contacts", [
        {"source_id": "c1", "email": "jane@acme.io", "custom_fields": {"associated_deals": ["acme expansion", "Acme Renewal"]}},
        {"source_id": "c2", "email": "bob@acme.io"},
    ])
    run_post_sync(db, workspace["id"])
    assert deal_contacts(db, workspace) == [
        ("jane@acme.io", "Acme Expansion", "explicit_deal_name"),
        ("jane@acme.io", "Acme Renewal", "explicit_deal_name"),
    ]  # bob: the account has two deals, so no single-deal inference


def test_single_deal_inference_is_withdrawn_when_a_second_deal_appears(db, workspace):
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"}])
    write(db, workspace, "deals", [{"source_id": "d1", "name": "Acme Pilot", "account_name": "Acme"}])
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io"}])
    run_post_sync(db, workspace["id"])
    assert deal_contacts(db, workspace) == [("bob@acme.io", "Acme Pilot", "inferred_single_deal")]
    write(db, workspace, "deals", [{"source_id": "d2", "name": "Acme Rollout", "account_name": "Acme"}])
    run_post_sync(db, workspace["id"])
    assert deal_contacts(db, workspace) == []


def test_single_deal_inference_is_withdrawn_when_the_contact_is_deleted_and_back_when_restored(db, workspace):
    """A contact its source deleted is nobody's stakeholder (the deal scores count a deal's contacts): its inferred
    link goes, in an incremental run as in a full one, and comes back with the contact."""
    from datetime import datetime, timezone

    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"}])
    write(db, workspace, "deals", [{"source_id": "d1", "name": "Acme Pilot", "account_name": "Acme"}])
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io"}, {"source_id": "c2", "email": "amy@acme.io"}])
    run_post_sync(db, workspace["id"])
    both = [("amy@acme.io", "Acme Pilot", "inferred_single_deal"), ("bob@acme.io", "Acme Pilot", "inferred_single_deal")]
    assert deal_contacts(db, workspace) == both
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "deleted_at": datetime.now(timezone.utc)}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert deal_contacts(db, workspace) == both[:1]
    assert all(not s["changed"] for s in run_post_sync(db, workspace["id"]))
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "deleted_at": None}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert deal_contacts(db, workspace) == both


def test_running_the_pipeline_twice_changes_nothing_the_second_time(db, workspace):
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"}])
    write(db, workspace, "deals", [{"source_id": "d1", "name": "Acme Pilot", "account_name": "Acme"}])
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io"}])
    first = run_post_sync(db, workspace["id"])
    second = run_post_sync(db, workspace["id"])
    assert any(s["changed"] for s in first)
    assert all(not s["changed"] for s in second)


def test_sql_and_python_company_normalisation_agree(db):
    from connectors.file_import.values import normalize_company_name

    names = ["Acme, Inc.", "ACME Inc", "Acme", "AT&T Corp", "Globex Holdings Group", "Initech L.L.C.",
             "Müller GmbH & Co. KG", "  The  Tech  Co ", "Umbrella Corporation", "Stark Industries"]
    with db.connection() as conn:
        sql_side = [r["n"] for r in conn.execute(
            "SELECT pandora_normalize_company(x) AS n FROM unnest(%s::text[]) WITH ORDINALITY u(x, i) ORDER BY i", (names,))]
    assert sql_side == [normalize_company_name(n) or None for n in names]


def _changes(report, step):
    return next(s["changed"] for s in report if s["name"] == step)


def test_incremental_runs_link_what_a_sync_wrote_and_leave_nothing_for_a_full_run(db, workspace):
    write(db, workspace, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"},
                                      {"source_id": "a2", "name": "Globex GmbH", "domain": "globex.de"}])
    write(db, workspace, "deals", [{"source_id": "d1", "name": "Acme Pilot", "account_name": "Acme"}])
    write(db, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io"},
                                      {"source_id": "c9", "email": "eve@initech.com"}])
    run_post_sync(db, workspace["id"])
    assert deal_contacts(db, workspace) == [("bob@acme.io", "Acme Pilot", "inferred_single_deal")]

    # A later sync: a contact at Acme, one naming a deal, a deal for Globex, and Initech arrives (c9 waits for it).
    write(db, workspace, "contacts", [{"source_id": "c2", "email": "amy@acme.io"},
                                      {"source_id": "c3", "email": "kim@globex.de",
                                       "custom_fields": {"associated_deals": ["Acme Pilot"]}}])
    write(db, workspace, "deals", [{"source_id": "d2", "name": "Globex Expansion", "account_name": "Globex"}])
    write(db, workspace, "accounts", [{"source_id": "a3", "name": "Initech", "domain": "initech.com"}])
    incremental = run_post_sync(db, workspace["id"], incremental=True)
    assert _changes(incremental, "associations")["contacts.account_id"] == 3
    assert links(db, workspace, "contacts") == {"c1": "Acme", "c2": "Acme", "c3": "Globex GmbH", "c9": "Initech"}
    assert deal_contacts(db, workspace) == [
        ("amy@acme.io", "Acme Pilot", "inferred_single_deal"), ("bob@acme.io", "Acme Pilot", "inferred_single_deal"),
        ("kim@globex.de", "Acme Pilot", "explicit_deal_name")]

    # Acme gains a second deal: the inferred links of its contacts are withdrawn incrementally too.
    write(db, workspace, "deals", [{"source_id": "d3", "name": "Acme Rollout", "account_name": "Acme"}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert deal_contacts(db, workspace) == [("kim@globex.de", "Acme Pilot", "explicit_deal_name")]
    full = run_post_sync(db, workspace["id"])
    assert _changes(full, "associations") == {} and _changes(full, "resolve_references") == {}


def test_incremental_runs_resolve_references_whose_target_arrives_later(db, workspace):
    with db.connection() as conn:
        upsert_rows(conn, "contacts", workspace["id"], [
            {"source": "hubspot", "source_id": "c1", "email": "bob@acme.io", "account_source_id": "77"}])
    run_post_sync(db, workspace["id"])
    assert links(db, workspace, "contacts") == {"c1": None}
    with db.connection() as conn:
        upsert_rows(conn, "accounts", workspace["id"], [{"source": "hubspot", "source_id": "77", "name": "Acme"}])
    incremental = run_post_sync(db, workspace["id"], incremental=True)
    assert _changes(incremental, "resolve_references") == {"contacts.account_id": 1}
    assert links(db, workspace, "contacts") == {"c1": "Acme"}


def test_a_contact_moving_to_another_account_changes_its_inferred_deal_incrementally(db, workspace):
    """Inferred links are looked at through the scoped accounts' deals; a contact that moved account is looked
    at through itself, so its link to the old account's deal goes and the new account's only deal is inferred."""
    def sync(table, rows):
        with db.connection() as conn:
            upsert_rows(conn, table, workspace["id"], [{"source": "hubspot", **r} for r in rows])

    sync("accounts", [{"source_id": "a1", "name": "Acme"}, {"source_id": "a2", "name": "Globex"}])
    sync("deals", [{"source_id": "d1", "name": "Acme Pilot", "account_source_id": "a1"},
                   {"source_id": "d2", "name": "Globex Deal", "account_source_id": "a2"}])
    sync("contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"},
                      {"source_id": "c2", "email": "amy@acme.io", "account_source_id": "a1"}])
    run_post_sync(db, workspace["id"])
    assert deal_contacts(db, workspace) == [("amy@acme.io", "Acme Pilot", "inferred_single_deal"),
                                            ("bob@acme.io", "Acme Pilot", "inferred_single_deal")]
    sync("contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a2"}])
    run_post_sync(db, workspace["id"], incremental=True)
    assert deal_contacts(db, workspace) == [("amy@acme.io", "Acme Pilot", "inferred_single_deal"),
                                            ("bob@acme.io", "Globex Deal", "inferred_single_deal")]
    full = run_post_sync(db, workspace["id"])
    assert _changes(full, "associations") == {} and _changes(full, "resolve_references") == {}


def test_deleting_deals_contacts_or_a_workspace_deletes_their_deal_contacts(db, workspace):
    """deal_contacts has no foreign keys (migration 0025: they were half of the single-deal inference's first run);
    triggers on deals and contacts delete the links of the rows a statement deleted, as the keys' cascade did:
    an import rollback, a workspace's deletion (which cascades through its deals and contacts). Soft deletes keep
    them, as before."""
    from core.workspaces import create_workspace

    with db.connection() as conn:
        other = create_workspace(conn, "Other RevOps")
    for ws in (workspace, other):
        write(db, ws, "accounts", [{"source_id": "a1", "name": "Acme", "domain": "acme.io"},
                                   {"source_id": "a2", "name": "Globex", "domain": "globex.io"},
                                   {"source_id": "a3", "name": "Initech", "domain": "initech.io"}])
        write(db, ws, "deals", [{"source_id": "d1", "name": "Acme Pilot", "account_name": "Acme"},
                                {"source_id": "d2", "name": "Globex Pilot", "account_name": "Globex"},
                                {"source_id": "d3", "name": "Initech Pilot", "account_name": "Initech"}])
        write(db, ws, "contacts", [{"source_id": f"c{i}", "email": f"p{i}@{d}"}
                                   for i, d in enumerate(["acme.io", "acme.io", "globex.io", "initech.io", "initech.io"])])
        run_post_sync(db, ws["id"])
    assert [n for _, n, _ in deal_contacts(db, workspace)] == sorted(
        ["Acme Pilot", "Acme Pilot", "Globex Pilot", "Initech Pilot", "Initech Pilot"])

    def count(ws):
        with db.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM deal_contacts WHERE workspace_id = %s", (ws["id"],)).fetchone()["n"]

    def run(statement, ws=workspace):
        with db.connection() as conn:
            conn.execute(statement, (ws["id"],))

    run("UPDATE contacts SET deleted_at = now() WHERE workspace_id = %s AND source_id = 'c4'")
    assert count(workspace) == 5  # a soft delete keeps its links
    # two contacts in one statement, then a deal: each statement removes the links of every row it deleted
    run("DELETE FROM contacts WHERE workspace_id = %s AND source_id IN ('c0', 'c3')")
    assert [(e, n) for e, n, _ in deal_contacts(db, workspace)] == [
        ("p1@acme.io", "Acme Pilot"), ("p2@globex.io", "Globex Pilot"), ("p4@initech.io", "Initech Pilot")]
    run("DELETE FROM deals WHERE workspace_id = %s AND source_id = 'd2'")
    assert [(e, n) for e, n, _ in deal_contacts(db, workspace)] == [
        ("p1@acme.io", "Acme Pilot"), ("p4@initech.io", "Initech Pilot")]
    assert count(workspace) == 2  # no link left pointing at a deleted row
    assert count(other) == 5  # the same source ids in another workspace: untouched
    run("DELETE FROM workspaces WHERE id = %s")
    assert count(workspace) == 0 and count(other) == 5

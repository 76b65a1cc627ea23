"""References resolved as rows are written (core.db.references): a row names its account, deal or contact by the
source's id; when that row of the same source is stored already, the write path fills our id, so the post-sync
step has nothing left to rewrite."""
from __future__ import annotations

from core.db.upsert import upsert_rows
from core.pipeline import run_post_sync


def ids(conn, ws, table, col):
    return {r["source_id"]: r[col] for r in conn.execute(
        f"SELECT source_id, {col} FROM {table} WHERE workspace_id = %s", (ws["id"],))}


def write(conn, ws, table, rows, source="hubspot"):
    return upsert_rows(conn, table, ws["id"], [{"source": source, **r} for r in rows])


def test_rows_written_after_their_targets_are_linked_as_they_land(db, workspace):
    with db.connection() as conn:
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}])
        write(conn, workspace, "deals", [{"source_id": "d1", "name": "Pilot", "account_source_id": "a1"}])
        write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"},
                                            {"source_id": "c2", "email": "amy@x.io", "account_source_id": "a404"},
                                            {"source_id": "c3", "email": "kim@x.io"}])
        write(conn, workspace, "activities", [{"source_id": "x1", "activity_type": "email", "contact_source_id": "c1",
                                               "deal_source_id": "d1", "account_source_id": "a1"}])
        account = ids(conn, workspace, "accounts", "id")["a1"]
        assert ids(conn, workspace, "contacts", "account_id") == {"c1": account, "c2": None, "c3": None}
        assert ids(conn, workspace, "deals", "account_id") == {"d1": account}
        activity = conn.execute("SELECT contact_id, deal_id, account_id FROM activities WHERE workspace_id = %s",
                                (workspace["id"],)).fetchone()
        assert activity == {"contact_id": ids(conn, workspace, "contacts", "id")["c1"],
                            "deal_id": ids(conn, workspace, "deals", "id")["d1"], "account_id": account}
    report = {s["name"]: s["changed"] for s in run_post_sync(db, workspace["id"])}
    assert report["resolve_references"] == {}  # nothing left for the step


def test_a_reference_not_found_at_a_later_write_keeps_the_stored_id(db, workspace):
    """A re-sync that changes the row while its account is (for now) not found must not clear the link; a changed
    reference that resolves replaces it."""
    with db.connection() as conn:
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}, {"source_id": "a2", "name": "Globex"}])
        write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"}])
        acme, globex = (ids(conn, workspace, "accounts", "id")[k] for k in ("a1", "a2"))
        conn.execute("DELETE FROM accounts WHERE workspace_id = %s AND source_id = 'a1'", (workspace["id"],))
        result = write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "title": "CTO",
                                                      "account_source_id": "a1"}])
        assert result.updated == 1 and ids(conn, workspace, "contacts", "account_id") == {"c1": acme}
        write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "title": "CTO",
                                             "account_source_id": "a2"}])
        assert ids(conn, workspace, "contacts", "account_id") == {"c1": globex}


def test_a_resolved_id_is_not_a_source_change(db, workspace):
    """The digest covers the source's values only: a row stored before its account arrived and synced again
    unchanged is skipped (updated_at stays), and the post-sync step links it."""
    with db.connection() as conn:
        write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"}])
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}])
        before = conn.execute("SELECT updated_at FROM contacts WHERE workspace_id = %s", (workspace["id"],)).fetchone()
        again = write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"}])
        assert again.counts() == {"inserted": 0, "updated": 0, "unchanged": 1}
        assert conn.execute("SELECT updated_at FROM contacts WHERE workspace_id = %s", (workspace["id"],)).fetchone() == before
    report = {s["name"]: s["changed"] for s in run_post_sync(db, workspace["id"], incremental=True)}
    assert report["resolve_references"] == {"contacts.account_id": 1}


def test_only_same_source_targets_and_never_over_an_id_the_row_writes(db, workspace):
    """A file import's ids may name another source's rows: the step matches those (across sources), not the write
    path; a row that writes the id column itself keeps what it wrote."""
    with db.connection() as conn:
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}])
        write(conn, workspace, "accounts", [{"source_id": "a9", "name": "Other"}], source="salesforce")
        other = ids(conn, workspace, "accounts", "id")["a9"]
        write(conn, workspace, "contacts", [{"source_id": "f1", "email": "f@acme.io", "account_source_id": "a1"}],
              source="csv_import")
        write(conn, workspace, "contacts", [{"source_id": "s1", "email": "s@acme.io", "account_source_id": "a1"}],
              source="salesforce")
        write(conn, workspace, "contacts", [{"source_id": "h1", "email": "h@acme.io", "account_source_id": "a1",
                                             "account_id": other}])
        assert ids(conn, workspace, "contacts", "account_id") == {"f1": None, "s1": None, "h1": other}


def test_references_are_looked_up_only_for_the_rows_a_re_sync_writes(db, workspace, monkeypatch):
    """An unchanged re-sync looks nothing up; a changed row has only its own references looked up."""
    import core.db.references as references

    rows = [{"source_id": "c1", "email": "bob@acme.io", "title": "AE", "account_source_id": "a1"},
            {"source_id": "c2", "email": "amy@globex.io", "title": "AE", "account_source_id": "a2"}]
    with db.connection() as conn:
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}, {"source_id": "a2", "name": "Globex"}])
        write(conn, workspace, "contacts", rows)
        write(conn, workspace, "contacts", rows)  # a re-sync: the first-load path gives way to the lookup path
    asked: list[dict] = []
    real = references._lookup

    def spy(conn, target, workspace_id, wanted):
        asked.append(wanted)
        return real(conn, target, workspace_id, wanted)

    monkeypatch.setattr(references, "_lookup", spy)
    with db.connection() as conn:
        assert write(conn, workspace, "contacts", rows).counts() == {"inserted": 0, "updated": 0, "unchanged": 2}
        assert asked == []
        changed = write(conn, workspace, "contacts", [{**rows[0], "title": "CTO"}, rows[1]])
        assert changed.counts() == {"inserted": 0, "updated": 1, "unchanged": 1}
        assert asked == [{"hubspot": {"a1"}}]
        assert ids(conn, workspace, "contacts", "account_id")["c1"] == ids(conn, workspace, "accounts", "id")["a1"]


def test_activities_are_stored_with_the_labels_of_the_ids_resolved_and_a_re_sync_leaves_labels_alone(db, workspace):
    """The ids of an activity's own references are what the linker's CRM tier would set: the row lands labelled
    crm_native per field resolved, and the linker has nothing to rewrite. An update leaves labels to the linker,
    so a re-sync never overwrites a label a person or a higher tier set."""
    with db.connection() as conn:
        write(conn, workspace, "accounts", [{"source_id": "a1", "name": "Acme"}, {"source_id": "a2", "name": "Beta"}])
        write(conn, workspace, "contacts", [{"source_id": "c1", "email": "bob@acme.io", "account_source_id": "a1"}])
        write(conn, workspace, "deals", [{"source_id": "d1", "name": "Pilot", "account_source_id": "a1"},
                                         {"source_id": "d2", "name": "Expansion", "account_source_id": "a1"}])
        write(conn, workspace, "activities", [
            {"source_id": "x1", "activity_type": "email", "contact_source_id": "c1", "account_source_id": "a1",
             "deal_source_id": "d1"},
            {"source_id": "x2", "activity_type": "call", "contact_source_id": "c404", "account_source_id": "a1"},
            {"source_id": "x3", "activity_type": "note"}])

        def labels():
            return {r["source_id"]: (r["link_details"], r["link_method"], r["linked_at"]) for r in conn.execute(
                "SELECT source_id, link_details, link_method, linked_at FROM activities WHERE workspace_id = %s",
                (workspace["id"],))}

        assert labels() == {
            "x1": ({"contact": "crm_native", "account": "crm_native", "deal": "crm_native"}, "crm_native", None),
            "x2": ({"account": "crm_native"}, "crm_native", None),  # its contact is not stored (yet)
            "x3": ({}, None, None)}
    report = {s["name"]: s["changed"] for s in run_post_sync(db, workspace["id"])}
    assert report["linker_activities"] == {}  # Acme has two open deals: nothing to infer for x2 either
    with db.connection() as conn:
        conn.execute("UPDATE activities SET link_method = 'manual', link_details = '{\"deal\": \"manual\"}'"
                     " WHERE workspace_id = %s AND source_id = 'x1'", (workspace["id"],))
        write(conn, workspace, "activities", [  # re-synced, changed: the same ids resolve again
            {"source_id": "x1", "activity_type": "email", "subject": "Re: pilot", "contact_source_id": "c1",
             "account_source_id": "a1", "deal_source_id": "d1"}])
        assert labels()["x1"][:2] == ({"deal": "manual"}, "manual")

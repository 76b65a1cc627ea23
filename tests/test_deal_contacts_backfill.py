"""HubSpot deal contacts backfilled from stored associations: both association shapes, one link per pair,
unknown and other-source contacts skipped, idempotent (a second run inserts 0), and the REST route."""
from __future__ import annotations

from connectors.hubspot.deal_contacts import populate_deal_contacts_from_source_data
from core.db.upsert import upsert_rows
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace


def seed(db, ws):
    with db.connection() as conn:
        upsert_rows(conn, "contacts", ws, [
            {"source": "hubspot", "source_id": "201", "email": "jane@acme.io"},
            {"source": "hubspot", "source_id": "202", "email": "bob@acme.io"},
            {"source": "hubspot", "source_id": "203", "email": "ann@acme.io"},
            {"source": "salesforce", "source_id": "301", "email": "sf@acme.io"},
        ])
        upsert_rows(conn, "deals", ws, [
            # v3 shape, with a duplicate association type for the same contact
            {"source": "hubspot", "source_id": "d1", "name": "V3", "source_data": {"associations": {"contacts": {
                "results": [{"id": "201", "type": "deal_to_contact"}, {"id": "201", "type": "deal_to_contact_unlabeled"},
                            {"id": "202", "type": "deal_to_contact"}, {"id": "999", "type": "deal_to_contact"}]}}}},
            # a plain list of ids, numbers and strings
            {"source": "hubspot", "source_id": "d2", "name": "Plain", "source_data": {"associations": {"contacts": [203, "202"]}}},
            # v4 shape
            {"source": "hubspot", "source_id": "d3", "name": "V4", "source_data": {"associations": {"contacts": {
                "results": [{"toObjectId": 201, "associationTypes": []}]}}}},
            {"source": "hubspot", "source_id": "d4", "name": "None", "source_data": {"associations": {"contacts": "oops"}}},
            {"source": "hubspot", "source_id": "d5", "name": "Empty", "source_data": {}},
            {"source": "salesforce", "source_id": "d6", "name": "SF", "source_data": {"associations": {"contacts": ["301"]}}},
        ])


def links(db, ws):
    with db.connection() as conn:
        return sorted((r["deal"], r["contact"], r["source"], r["role_source"]) for r in conn.execute(
            "SELECT d.source_id AS deal, c.source_id AS contact, dc.source, dc.role_source FROM deal_contacts dc"
            " JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id"
            " JOIN contacts c ON c.workspace_id = dc.workspace_id AND c.id = dc.contact_id"
            " WHERE dc.workspace_id = %s", (ws,)).fetchall())


def test_backfill_links_both_shapes_and_is_idempotent(db):
    ws = new_workspace(db)
    seed(db, ws)
    with db.connection() as conn:
        assert populate_deal_contacts_from_source_data(conn, ws) == 5
    assert links(db, ws) == [(d, c, "hubspot_association", "crm_association") for d, c in
                             [("d1", "201"), ("d1", "202"), ("d2", "202"), ("d2", "203"), ("d3", "201")]]
    with db.connection() as conn:
        assert populate_deal_contacts_from_source_data(conn, ws) == 0
    assert len(links(db, ws)) == 5


def test_links_from_other_sources_are_kept_alongside(db):
    ws = new_workspace(db)
    seed(db, ws)
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role_source)"
            " SELECT d.workspace_id, d.id, c.id, 'csv_import', 'explicit_deal_name' FROM deals d, contacts c"
            " WHERE d.workspace_id = %(ws)s AND c.workspace_id = %(ws)s AND d.source_id = 'd1' AND c.source_id = '201'",
            {"ws": ws})
        assert populate_deal_contacts_from_source_data(conn, ws) == 5
    assert ("d1", "201", "csv_import", "explicit_deal_name") in links(db, ws)


def test_the_backfill_route_reports_inserted_counts(db, settings):
    ws, other = new_workspace(db), new_workspace(db)
    seed(db, ws)
    seed(db, other)
    client, jobs = make_client(db, settings)
    with client:
        api = Api(client, ws, new_key(db, ws), jobs)
        first = api.post("/connectors/hubspot/populate-deal-contacts")
        second = api.post("/connectors/hubspot/populate-deal-contacts")
    assert first.status_code == 200, first.text
    assert first.json() == {"inserted": 5} and second.json() == {"inserted": 0}
    assert links(db, other) == []  # only the key's workspace

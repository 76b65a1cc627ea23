"""The unified sales roster: tracked reps of every conversation connector merged by email, case-insensitively;
reps without an email kept apart; served at GET /api/workspaces/{id}/sales-roster."""
from __future__ import annotations

from core.connections import save_connection
from core.roster import sales_roster
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace


def connect(db, vault, ws, name, tracked, status="active"):
    with db.connection() as conn:
        save_connection(conn, vault, ws, name, {"token": "t"}, status=status,
                        metadata={"tracked_users": tracked, "users": tracked})


def test_reps_tracked_in_two_connectors_are_merged_by_email_case_insensitively(db, vault):
    ws = new_workspace(db)
    connect(db, vault, ws, "gong", [
        {"id": "g1", "name": "Dana Whitfield", "email": "Dana@Demo.co"},
        {"id": "g2", "name": "Sam Ortiz", "email": "sam@demo.co"},
    ])
    connect(db, vault, ws, "fireflies", [
        {"id": "f9", "name": "Dana W.", "email": "dana@demo.co "},
        {"id": "f7", "name": "Lee Park", "email": "lee@demo.co"},
    ])
    with db.connection() as conn:
        roster = sales_roster(conn, ws)
    assert [r["email"] for r in roster["reps"]] == ["dana@demo.co", "lee@demo.co", "sam@demo.co"]
    dana = roster["reps"][0]
    assert dana["connectors"] == ["fireflies", "gong"]
    assert dana["names"] == ["Dana W.", "Dana Whitfield"]
    assert dana["name"] == "Dana W."  # first by connector name: fireflies < gong
    assert {(s["connector"], s["id"]) for s in dana["sources"]} == {("gong", "g1"), ("fireflies", "f9")}
    assert roster["without_email"] == [] and roster["total"] == 3


def test_reps_without_an_email_are_kept_separately_not_merged_by_name(db, vault):
    ws = new_workspace(db)
    connect(db, vault, ws, "gong", [{"id": "g1", "name": "Dana"}, {"id": "g2", "name": "Robin", "email": ""}])
    connect(db, vault, ws, "fireflies", [{"id": "f1", "name": "Dana"}, "garbage", {"name": "  "}])
    with db.connection() as conn:
        roster = sales_roster(conn, ws)
    assert roster["reps"] == []
    assert roster["without_email"] == [
        {"connector": "fireflies", "id": "f1", "name": "Dana"},
        {"connector": "gong", "id": "g1", "name": "Dana"},
        {"connector": "gong", "id": "g2", "name": "Robin"},
    ]
    assert roster["total"] == 3


def test_disconnected_sources_and_other_workspaces_do_not_contribute(db, vault):
    ws, other = new_workspace(db), new_workspace(db)
    connect(db, vault, ws, "gong", [{"id": "g1", "name": "Dana", "email": "dana@demo.co"}])
    connect(db, vault, ws, "fireflies", [{"id": "f1", "name": "Old", "email": "old@demo.co"}], status="disconnected")
    connect(db, vault, other, "gong", [{"id": "x", "name": "Them", "email": "them@else.co"}])
    connect(db, vault, ws, "hubspot", [])
    with db.connection() as conn:
        assert [r["email"] for r in sales_roster(conn, ws)["reps"]] == ["dana@demo.co"]


def test_the_roster_route(db, settings, vault):
    ws = new_workspace(db)
    connect(db, vault, ws, "gong", [{"id": "g1", "name": "Dana", "email": "DANA@demo.co"}])
    connect(db, vault, ws, "fireflies", [{"id": "f1", "name": "Dana", "email": "dana@demo.co"}])
    client, jobs = make_client(db, settings)
    with client:
        r = Api(client, ws, new_key(db, ws), jobs).get("/sales-roster")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1 and r.json()["reps"][0]["connectors"] == ["fireflies", "gong"]
    assert "token" not in r.text

"""The sales roster after real Gong and Fireflies connects and syncs in one workspace, through the REST flow a
user follows (connect → directory → tracked-users → sync): reps tracked in both, under different ids and
names and with e-mails differing in case, are one roster entry with both sources, and every synced call of
either source belongs to exactly one roster entry. (tests/test_roster.py covers the merge rules themselves
on hand-written metadata.)"""
from __future__ import annotations

import pytest

from connectors.fireflies.connector import FirefliesConnector
from connectors.gong.connector import GongConnector
from core.roster import sales_roster
from core.sync import registry
from tests.fakes.fireflies_api import FakeFireflies, transcript
from tests.fakes.gong_api import FakeGong, make_call, make_user
from tests.support import rows
from tests.test_sidecar_connectors import wait_for_sync
from tests.test_sidecar_support import Api, make_client, new_key, new_workspace

GONG_KEY, GONG_SECRET, FF_KEY = "gong-key", "gong-secret", "ff-key"
# Gong's directory says Sam's address in capitals (the connector stores it lower-cased); Fireflies gives Jon's
# in mixed case and the same people other ids and names. Dana is only in Gong, Lee only in Fireflies.
GONG_USERS = [make_user("234599484848423", "Jon", "Snow", "jon.snow@example.com"),
              make_user("234599484848424", "Sam", "Ortiz", "Sam.Ortiz@Example.COM"),
              make_user("563515258458745", "Dana", "Manager", "dana.manager@example.com")]
FF_USERS = [{"user_id": "01HUSERJONSNOW000001", "name": "Jonathan Snow", "email": "Jon.Snow@Example.com"},
            {"user_id": "01HUSERSAMORTIZ00003", "name": "Sam O.", "email": "sam.ortiz@example.com"},
            {"user_id": "01HUSERLEEPARK000004", "name": "Lee Park", "email": "lee.park@example.com"}]
GONG_CALLS = {"234599484848423": 3, "234599484848424": 2, "563515258458745": 1}
FF_CALLS = {"01HUSERJONSNOW000001": 2, "01HUSERSAMORTIZ00003": 1, "01HUSERLEEPARK000004": 2}
T0 = 1_777_651_200_000


@pytest.fixture
def fakes():
    with FakeGong(GONG_KEY, GONG_SECRET, per_second=None) as gong, FakeFireflies(FF_KEY) as fireflies:
        gong.users = list(GONG_USERS)
        gong.calls = [make_call(f"{uid}{n}", uid, f"2026-04-{n + 1:02d}T09:00:00-07:00")
                      for uid, k in GONG_CALLS.items() for n in range(k)]
        fireflies.users = list(FF_USERS)
        email = {u["user_id"]: u["email"] for u in FF_USERS}
        fireflies.transcripts = [transcript(f"{uid}-{n}", email[uid], T0 - n * 86_400_000)
                                 for uid, k in FF_CALLS.items() for n in range(k)]
        with registry.registered(GongConnector(gong.url), FirefliesConnector(fireflies.url)):
            yield gong, fireflies


@pytest.fixture
def api(db, settings):
    client, jobs = make_client(db, settings)
    ws = new_workspace(db, "Roster sync")
    with client:
        yield Api(client, ws, new_key(db, ws), jobs)
    assert jobs.join(30)


def connect_track_and_sync(api: Api, source: str, credentials: dict, metadata: dict, user_ids) -> dict:
    r = api.post(f"/connectors/{source}/connect", {"credentials": credentials, "metadata": metadata})
    assert r.status_code == 200, r.text
    assert r.json()["directory_users"] == 3, r.json()
    r = api.post(f"/connectors/{source}/tracked-users", {"user_ids": list(user_ids)})
    assert r.status_code == 200, r.text
    r = api.post(f"/connectors/{source}/sync", {})
    assert r.status_code == 202, r.text
    done = wait_for_sync(api, r.json()["sync_id"])
    assert done["status"] == "succeeded", done
    return done


def test_reps_in_gong_and_fireflies_are_one_roster_entry_each_after_real_syncs(db, api, fakes):
    connect_track_and_sync(api, "gong", {"access_key": GONG_KEY, "access_key_secret": GONG_SECRET},
                           {"rate_limit": {"per_second": 1000}}, GONG_CALLS)
    connect_track_and_sync(api, "fireflies", {"api_key": FF_KEY},
                           {"rate_limit": {"requests": 100_000, "period": 1}}, FF_CALLS)

    with db.connection() as conn:
        roster = sales_roster(conn, api.workspace_id)
    r = api.get("/sales-roster")
    assert r.status_code == 200, r.text
    assert r.json() == roster
    assert GONG_SECRET not in r.text and FF_KEY not in r.text

    reps = {rep["email"]: rep for rep in roster["reps"]}
    assert set(reps) == {"jon.snow@example.com", "sam.ortiz@example.com", "dana.manager@example.com",
                         "lee.park@example.com"}
    assert roster["total"] == 4 and roster["without_email"] == []
    jon, sam = reps["jon.snow@example.com"], reps["sam.ortiz@example.com"]
    assert jon["connectors"] == sam["connectors"] == ["fireflies", "gong"]
    assert {(s["connector"], s["id"]) for s in jon["sources"]} == {("gong", "234599484848423"),
                                                                   ("fireflies", "01HUSERJONSNOW000001")}
    assert jon["names"] == ["Jon Snow", "Jonathan Snow"]
    assert {(s["connector"], s["id"]) for s in sam["sources"]} == {("gong", "234599484848424"),
                                                                   ("fireflies", "01HUSERSAMORTIZ00003")}
    assert reps["dana.manager@example.com"]["connectors"] == ["gong"]
    assert reps["lee.park@example.com"]["connectors"] == ["fireflies"]

    # Every synced call belongs to exactly one roster entry through the id its source gave the rep.
    owner = {(s["connector"], s["id"]): rep["email"] for rep in roster["reps"] for s in rep["sources"]}
    calls = rows(db, api.workspace_id,
                 "SELECT source, COALESCE(source_data->>'primary_user_id', source_data->>'tracked_user_id') AS rep"
                 " FROM conversations WHERE workspace_id = %s")
    per_rep: dict[tuple[str, str], int] = {}
    for c in calls:
        key = (owner[(c["source"], c["rep"])], c["source"])
        per_rep[key] = per_rep.get(key, 0) + 1
    assert per_rep == {("jon.snow@example.com", "gong"): 3, ("jon.snow@example.com", "fireflies"): 2,
                       ("sam.ortiz@example.com", "gong"): 2, ("sam.ortiz@example.com", "fireflies"): 1,
                       ("dana.manager@example.com", "gong"): 1, ("lee.park@example.com", "fireflies"): 2}

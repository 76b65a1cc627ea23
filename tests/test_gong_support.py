"""Shared setup for the Gong tests: a seeded fake Gong, a connected workspace with tracked reps, the engine."""
from __future__ import annotations

import pytest

from connectors.gong.connector import GongConnector
from core.connections import save_connection
from core.sync import registry
from tests.fakes.gong_api import FakeGong, load, make_call, make_user
from tests.support import rows

KEY, SECRET = "gong-access-key", "gong-secret"
JON, DANA = "234599484848423", "563515258458745"   # tracked rep, untracked manager (fixture users)
CREDS = {"access_key": KEY, "access_key_secret": SECRET}


def seed(fake: FakeGong) -> FakeGong:
    for name in ("users_page1_CONSTRUCTED.json", "users_last_page_CONSTRUCTED.json"):
        fake.users += load(name)["users"]
    for name in ("calls_extensive_page1_CONSTRUCTED.json", "calls_extensive_last_page_CONSTRUCTED.json"):
        fake.calls += load(name)["calls"]
    fake.calls.append(make_call("9000000000000000001", DANA, "2026-05-01T10:00:00+00:00", title="Dana's private call",
                                parties=[{"id": "p1", "name": "Dana Manager", "emailAddress": "dana.manager@example.com",
                                          "userId": DANA, "affiliation": "Internal"},
                                         {"id": "p2", "name": "Ada Example", "emailAddress": "ada@example.org",
                                          "affiliation": "External"}]))
    return fake


@pytest.fixture
def gong():
    with FakeGong(KEY, SECRET, page_size=2, per_second=None) as fake:
        yield seed(fake)


@pytest.fixture
def connector(gong):
    from connectors import load_all

    load_all()
    c = GongConnector(gong.url)
    with registry.registered(c):
        yield c


def connect(db, vault, workspace_id, tracked=(JON,), **metadata) -> None:
    users = [{"id": JON, "name": "Jon Snow", "email": "jon.snow@example.com"},
             {"id": DANA, "name": "Dana Manager", "email": "dana.manager@example.com"}]
    with db.connection() as conn:
        save_connection(conn, vault, workspace_id, "gong", dict(CREDS), metadata={
            "users": users, "tracked_users": [u for u in users if u["id"] in tracked], **metadata})


@pytest.fixture
def connected(db, vault, workspace, gong, connector):
    connect(db, vault, workspace["id"])
    return workspace


__all__ = ["make_call", "make_user"]

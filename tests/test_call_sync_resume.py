"""Call syncs that die mid-walk resume where they stopped: Gong (one partition per tracked rep) and Fireflies
(one stream per tracked rep), killed in a child process while rep 2's second page is in flight — or, for
Gong, failing on it. The second run finishes every rep, re-reads a finished rep only from its saved cursor,
continues rep 2 at its saved page and stores every call exactly once."""
from __future__ import annotations

import json
import threading
from io import BytesIO

import pytest

from connectors.fireflies.connector import FirefliesConnector, iso_ms
from connectors.gong.connector import GongConnector, utc_iso
from core.connections import save_connection
from core.sync import registry
from tests.fakes.fireflies_api import FakeFireflies, transcript
from tests.fakes.gong_api import FakeGong, make_call, make_user
from tests.fakes.server import send_json
from tests.support import kill_sync_when, rows

GONG_KEY, GONG_SECRET, FF_KEY = "gong-key", "gong-secret", "ff-key"
REPS = [make_user(str(500 + i), f"Rep{i}", "Resume", f"rep{i}@example.com") for i in range(3)]
A, B, C = (u["id"] for u in REPS)
PER_REP = {A: 5, B: 5, C: 3}                  # Gong pages of 2: A 3 pages, B 3, C 2
T0 = 1_777_651_200_000                        # 2026-05-01T16:00:00Z in epoch ms
DAY = 86_400_000


def gong_call_id(uid: str, n: int) -> str:
    return f"{uid}{n:04d}"


def gong_started(n: int) -> str:
    return f"2026-04-{n + 1:02d}T09:00:00-07:00"


def directory() -> list[dict]:
    return [{"id": u["id"], "name": f"{u['firstName']} {u['lastName']}", "email": u["emailAddress"]} for u in REPS]


def swap_connector(connector):
    with registry.registered(connector):
        yield connector


@pytest.fixture
def gong():
    with FakeGong(GONG_KEY, GONG_SECRET, page_size=2, per_second=None) as fake:
        fake.users = list(REPS)
        fake.calls = [make_call(gong_call_id(uid, n), uid, gong_started(n)) for uid, k in PER_REP.items()
                      for n in range(k)]
        yield fake


@pytest.fixture
def gong_connected(db, vault, workspace, gong):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "gong", {"access_key": GONG_KEY, "access_key_secret": GONG_SECRET},
                        metadata={"users": directory(), "tracked_users": directory(), "rate_limit": {"attempts": 2}})
    yield from swap_connector(GongConnector(gong.url))


@pytest.fixture
def fireflies():
    with FakeFireflies(FF_KEY) as fake:
        fake.users = [{"user_id": u["id"], "name": u["name"], "email": u["email"]} for u in directory()]
        fake.transcripts = [transcript(f"{u['id']}-{n}", u["email"], T0 - n * DAY) for u in directory()
                            for n in range(4)]   # pages of 3: a full page, then a short one of 1
        yield fake


@pytest.fixture
def fireflies_connected(db, vault, workspace, fireflies):
    with db.connection() as conn:
        save_connection(conn, vault, workspace["id"], "fireflies", {"api_key": FF_KEY},
                        metadata={"users": directory(), "tracked_users": directory(),
                                  "rate_limit": {"requests": 100_000, "period": 1}})
    yield from swap_connector(FirefliesConnector(fireflies.url, page_size=3))


def hang_on(fake, matches) -> tuple[threading.Event, threading.Event]:
    """The fake stops answering at the first request whose JSON body `matches`: `blocked` is set while it
    hangs, and after `release` it drops the request unanswered (its sender is dead by then)."""
    blocked, release = threading.Event(), threading.Event()
    real = fake.handle_post

    def handle(handler):
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        handler.rfile = BytesIO(raw)
        if not blocked.is_set() and matches(json.loads(raw or b"{}")):
            blocked.set()
            release.wait(20)
            return
        real(handler)
    fake.handle_post = handle
    return blocked, release


def kill_mid_walk(db_url, vault, workspace_id, connector: str, fake, matches) -> None:
    """Run the sync in a forked child (its own pool, as a CLI process would) and SIGKILL it while the fake
    holds the matching request: every page before it is committed, that one never is."""
    blocked, release = hang_on(fake, matches)
    try:
        kill_sync_when(db_url, vault, workspace_id, connector, blocked)
    finally:
        release.set()
    del fake.handle_post   # the real handler again


def stored(db, ws, source: str) -> list[str]:
    return [r["source_id"] for r in rows(db, ws, "SELECT source_id FROM conversations WHERE workspace_id = %s"
                                                 " AND source = %s ORDER BY source_id", source)]


def cursors(db, ws, connector: str) -> dict:
    [row] = rows(db, ws, "SELECT sync_cursors FROM connections WHERE workspace_id = %s AND connector_name = %s",
                 connector)
    return row["sync_cursors"]


def statuses(db, ws) -> list[str]:
    return [r["status"] for r in rows(db, ws, "SELECT status FROM sync_log WHERE workspace_id = %s"
                                              " ORDER BY started_at")]


def gong_requests_by_rep(gong) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for body in gong.calls_requests():
        out.setdefault(body["filter"]["primaryUserIds"][0], []).append(body)
    return out


def assert_gong_resumed(db, ws, gong, report) -> None:
    assert report.status == "succeeded", report.error
    every = sorted(gong_call_id(uid, n) for uid, k in PER_REP.items() for n in range(k))
    assert stored(db, ws, "gong") == every                       # 13 calls, each once
    by_rep = gong_requests_by_rep(gong)
    # Rep A finished in the first run: read again only from its saved cursor (its last call, inclusive).
    assert [b["filter"] for b in by_rep[A]] == [{"primaryUserIds": [A], "fromDateTime": utc_iso(gong_started(4))}]
    # Rep B continues at its saved page 2: the body repeats the filter with the saved cursor; page 3 follows.
    assert len(by_rep[B]) == 2 and all(b.get("cursor") for b in by_rep[B])
    assert by_rep[B][0]["filter"] == {"primaryUserIds": [B]}
    assert [("cursor" in b, b["filter"]) for b in by_rep[C]] == [(False, {"primaryUserIds": [C]}),
                                                                  (True, {"primaryUserIds": [C]})]
    # B's pages 2-3 (3 calls) and C's 3 are new; A's re-read last call is unchanged: nothing written twice.
    assert report.counts["conversations"] == {"fetched": 7, "inserted": 6, "updated": 0, "unchanged": 1}


def test_killed_gong_sync_resumes_rep_two_at_its_page_and_rep_one_from_its_cursor(db, db_url, vault, workspace,
                                                                                  gong, gong_connected, engine):
    kill_mid_walk(db_url, vault, workspace["id"], "gong", gong,
                  lambda body: body["filter"]["primaryUserIds"] == [B] and "cursor" in body)
    assert stored(db, workspace, "gong") == sorted([gong_call_id(A, n) for n in range(5)]
                                                   + [gong_call_id(B, n) for n in range(2)])
    saved = cursors(db, workspace, "gong")
    assert saved[f"calls:primaryUserId={A}"] == {"cursor": utc_iso(gong_started(4))}
    assert saved[f"calls:primaryUserId={B}"]["page"]["cursor"]
    assert f"calls:primaryUserId={C}" not in saved
    gong.log.clear()

    report = engine.run(workspace["id"], "gong")

    assert report.resumed
    assert_gong_resumed(db, workspace, gong, report)
    assert statuses(db, workspace) == ["aborted", "succeeded"]


def test_gong_sync_failing_on_rep_two_resumes_the_same_way(db, vault, workspace, gong, gong_connected, engine):
    """The source keeps answering 500 on rep B's page 2 past the retry budget: the run fails, its committed
    pages and cursors stay, and the next run resumes exactly like after a kill."""
    real = gong.handle_post

    def failing(handler):
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        body = json.loads(raw)
        if body["filter"]["primaryUserIds"] == [B] and "cursor" in body:
            return send_json(handler, 500, {"errors": ["Internal server error"]})
        handler.rfile = BytesIO(raw)
        real(handler)
    gong.handle_post = failing
    first = engine.run(workspace["id"], "gong")
    assert first.status == "failed" and "500" in first.error
    assert len(stored(db, workspace, "gong")) == 7
    del gong.handle_post
    gong.log.clear()

    report = engine.run(workspace["id"], "gong")

    assert report.resumed
    assert_gong_resumed(db, workspace, gong, report)
    assert statuses(db, workspace) == ["failed", "succeeded"]


def test_killed_fireflies_sync_resumes_rep_two_at_its_skip_and_rep_one_from_its_date(db, db_url, vault, workspace,
                                                                                     fireflies, fireflies_connected,
                                                                                     engine):
    a, b, c = directory()
    kill_mid_walk(db_url, vault, workspace["id"], "fireflies", fireflies,
                  lambda body: (body.get("variables") or {}).get("organizer_email") == b["email"]
                  and body["variables"].get("skip"))
    assert stored(db, workspace, "fireflies") == sorted([f"{a['id']}-{n}" for n in range(4)]
                                                        + [f"{b['id']}-{n}" for n in range(3)])
    saved = cursors(db, workspace, "fireflies")
    assert saved[f"transcripts:{a['id']}"] == {"cursor": T0}
    assert saved[f"transcripts:{b['id']}"]["page"] == {"offset": 3}
    fireflies.requests.clear()

    report = engine.run(workspace["id"], "fireflies")

    assert report.status == "succeeded", report.error
    assert report.resumed
    assert stored(db, workspace, "fireflies") == sorted(f"{u['id']}-{n}" for u in (a, b, c) for n in range(4))
    asked = [r["variables"] for r in fireflies.transcript_requests()]
    assert asked == [
        {"organizer_email": a["email"], "fromDate": iso_ms(T0), "limit": 3, "skip": 0},  # A: from its cursor
        {"organizer_email": b["email"], "limit": 3, "skip": 3},                           # B: its saved page
        {"organizer_email": c["email"], "limit": 3, "skip": 0},
        {"organizer_email": c["email"], "limit": 3, "skip": 3},
    ]
    # B's last call and C's four are new; A's newest, read again from the inclusive cursor, is unchanged.
    assert report.counts["conversations"] == {"fetched": 6, "inserted": 5, "updated": 0, "unchanged": 1}
    assert statuses(db, workspace) == ["aborted", "succeeded"]

"""Gong under its 3 requests/s limit, on a virtual clock: tracked reps are fetched one after another (never
interleaved), the pacing stays under the limit (no 429 from the fake's rolling second) and close to it.

The fake's rolling second and the connector's token bucket read the same virtual clock, which only the sync's
sleeps advance: the spacing the fake sees is exactly the spacing the client chose, with no real waiting."""
from __future__ import annotations

from connectors.gong.connector import RATE_PER_SECOND, GongConnector
from core.connections import save_connection
from core.sync import registry
from core.sync.http import RateLimiter
from core.sync.orchestrator import SyncEngine
from tests.fakes.gong_api import FakeGong, make_call, make_user
from tests.support import rows

KEY, SECRET = "gong-key", "gong-secret"
REPS = [make_user(str(700 + i), f"Rep{i}", "Pacing", f"rep{i}@example.com") for i in range(3)]
CALLS = {REPS[0]["id"]: 3, REPS[1]["id"]: 2, REPS[2]["id"]: 4}


class VirtualClock:
    def __init__(self) -> None:
        self.now_s = 1_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


class VirtualClockGong(GongConnector):
    """The real connector and client; only its token bucket reads the virtual clock (same rate, same burst)."""

    def __init__(self, api_base: str, clock: VirtualClock) -> None:
        super().__init__(api_base)
        self.clock = clock

    def client(self, credentials, metadata, *, transport=None, sleep=None):
        client = super().client(credentials, metadata, transport=transport, sleep=sleep)
        pace = client.rate_limiter
        client.rate_limiter = RateLimiter(pace.rate, pace.burst, clock=self.clock.now, sleep=self.clock.sleep)
        return client


def test_reps_are_fetched_one_after_another_under_the_limit_without_a_429(db, vault, workspace):
    clock = VirtualClock()
    with FakeGong(KEY, SECRET, page_size=1, per_second=RATE_PER_SECOND) as fake:
        fake.clock = clock.now
        fake.users = list(REPS)
        fake.calls = [make_call(f"{uid}{n:03d}", uid, f"2026-04-{n + 1:02d}T09:00:00+00:00")
                      for uid, k in CALLS.items() for n in range(k)]
        users = [{"id": u["id"], "name": u["firstName"], "email": u["emailAddress"]} for u in REPS]
        with db.connection() as conn:
            save_connection(conn, vault, workspace["id"], "gong", {"access_key": KEY, "access_key_secret": SECRET},
                            metadata={"users": users, "tracked_users": users})
        with registry.registered(VirtualClockGong(fake.url, clock)):
            started = clock.now()
            report = SyncEngine(db, vault, sleep=clock.sleep).run(workspace["id"], "gong")
            elapsed = clock.now() - started

    assert report.status == "succeeded", report.error
    assert fake.violations == 0
    reps_asked = [body["filter"]["primaryUserIds"] for body in fake.calls_requests()]
    assert len(fake.log) == len(reps_asked) == sum(CALLS.values())    # pages of 1, not one request retried
    assert reps_asked == [[uid] for uid, k in CALLS.items() for _ in range(k)]   # rep by rep, never interleaved
    n = len(reps_asked)
    assert (n - 1) / RATE_PER_SECOND <= elapsed <= (n - 1) / (0.9 * RATE_PER_SECOND)  # under, and within 90 %
    stored = rows(db, workspace, "SELECT source_data->>'primary_user_id' AS rep, count(*) AS n FROM conversations"
                                 " WHERE workspace_id = %s GROUP BY 1")
    assert {r["rep"]: r["n"] for r in stored} == CALLS

"""HubSpot search walked by key (core.sync.paginators.KeysetSearch) against the fake's search endpoint, and
HubSpot's string property values typed on normalize."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connectors.hubspot import values as v
from core.errors import ConnectorError
from core.sync.http import HttpClient
from core.sync.paginators import AfterCursor, KeysetSearch, iterate_pages
from tests.fakes.hubspot_api import FakeHubSpot, hs_time, record

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        server.add_portal(1, "tok")
        yield server


def put(fake, n: int, *, tied: int = 0, first_id: int = 100) -> list[dict]:
    store = fake.portals[1].store("deals")
    recs = [record(first_id + i, "deals", T0 if i < tied else T0 + timedelta(minutes=i)) for i in range(n)]
    for r in recs:
        store.put(r)
    return recs


def walk(fake, since: str, limit: int = 3, state=None):
    body = {"limit": limit, "properties": ["hs_lastmodifieddate"], "filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
    with HttpClient(fake.url, connector="hubspot", headers={"Authorization": "Bearer tok"},
                    sleep=lambda s: None) as client:
        yield from iterate_pages(client, method="POST", path="/crm/v3/objects/deals/search",
                                 paginator=KeysetSearch("hs_lastmodifieddate"), records_path="results",
                                 json=body, state=state)


def ids(pages) -> list[str]:
    return [r["id"] for p in pages for r in p.records]


def test_offset_paging_past_ten_thousand_is_refused_by_the_fake(fake):
    put(fake, 3)
    with HttpClient(fake.url, connector="hubspot", headers={"Authorization": "Bearer tok"}) as client:
        with pytest.raises(ConnectorError, match="400"):
            client.post_json("/crm/v3/objects/deals/search", json={"limit": 100, "after": 9_950})


def test_keyset_walk_reads_every_record_once_plus_boundary_ties(fake):
    put(fake, 10)
    got = ids(walk(fake, hs_time(T0)))
    assert set(got) == {str(100 + i) for i in range(10)}
    assert all(int(b.get("after") or 0) == 0 for _, _, b in fake.requests_to("/search"))


def test_more_ties_than_a_page_are_walked_by_id_and_none_is_skipped(fake):
    put(fake, 12, tied=8)  # 8 records share T0, a page holds 3
    pages = list(walk(fake, hs_time(T0)))
    assert set(ids(pages)) == {str(100 + i) for i in range(12)}
    tie_filters = [f for _, _, b in fake.requests_to("/search") for f in b["filterGroups"][0]["filters"]
                   if f["propertyName"] == "hs_object_id"]
    assert tie_filters and all(f["operator"] == "GT" for f in tie_filters)


def test_a_record_modified_mid_walk_never_pushes_another_out_of_reach(fake):
    recs = put(fake, 10)
    pages = walk(fake, hs_time(T0))
    seen = ids([next(pages)])                # page 1: 100, 101, 102
    recs[1]["properties"]["hs_lastmodifieddate"] = hs_time(T0 + timedelta(days=1))  # 101 moves to the end
    seen += ids(pages)
    assert set(seen) == {str(100 + i) for i in range(10)}  # offset paging would have skipped 103
    assert seen[-1] == "101"                   # and the modified record is read again, with its new value


def test_a_saved_state_resumes_the_walk(fake):
    put(fake, 10)
    first = next(walk(fake, hs_time(T0)))
    rest = ids(walk(fake, hs_time(T0), state=first.state))
    assert set(ids([first]) + rest) == {str(100 + i) for i in range(10)}
    assert rest[0] == ids([first])[-1]         # the boundary tie is re-read, nothing before it


def test_list_paging_follows_after_until_the_last_page(fake):
    put(fake, 5)
    with HttpClient(fake.url, connector="hubspot", headers={"Authorization": "Bearer tok"}) as client:
        pages = list(iterate_pages(client, method="GET", path="/crm/v3/objects/deals", paginator=AfterCursor(),
                                   records_path="results", params={"limit": 2}))
    assert [len(p.records) for p in pages] == [2, 2, 1] and pages[-1].state is None


def test_string_values_are_typed():
    assert v.number("48500.50") == Decimal("48500.50") and v.number("") is None and v.number("n/a") is None
    assert v.timestamp("1714521600000") == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert v.day("2026-06-30T00:00:00Z") == date(2026, 6, 30) and v.timestamp("garbage") is None
    assert v.boolean("true") is True and v.boolean("false") is False and v.boolean(None) is None
    assert v.typed("3", "number") == 3 and v.typed("2.5", "number") == 2.5
    assert v.typed("a;b", "enumeration") == ["a", "b"] and v.typed("a", "enumeration") == "a"
    assert v.typed("2026-01-02", "date") == "2026-01-02" and v.typed("", "string") is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_limiter_whose_sleep_only_records_waits_once_per_wait_and_never_spins():
    """The sync engine of the tests records its waits without sleeping: the limiter's time moves on by each
    wait all the same (one recorded wait per request over the limit, not a busy loop until real time passes)."""
    import time

    from connectors.hubspot.limits import RollingWindowLimiter, SearchPacedLimiter

    waits: list[float] = []
    limiter = SearchPacedLimiter(RollingWindowLimiter(100, 10.0, sleep=waits.append),
                                 RollingWindowLimiter(4, 1.0, headroom=1, sleep=waits.append))
    started = time.monotonic()
    for _ in range(9):
        limiter.acquire("/crm/v3/objects/deals/search")
    limiter.acquire("/crm/v3/objects/deals")  # not a search: the burst limit alone
    assert time.monotonic() - started < 0.5
    assert len(waits) == 2 and all(0.99 < w <= 1.01 for w in waits)  # three a second: the 4th and 7th waited


def test_rolling_window_limiter_never_exceeds_the_window_and_never_waits_longer_than_it_must():
    from connectors.hubspot.limits import RollingWindowLimiter

    clock = Clock()
    limiter = RollingWindowLimiter(10, 10.0, headroom=0, clock=clock, sleep=clock.sleep)
    sent, asked = [], []
    for n in range(35):
        asked.append(clock.now)
        limiter.acquire()
        sent.append(clock.now)
        if n == 12:
            clock.now += 4.0  # a slow database write between two requests
    assert max(sum(1 for t in sent if s <= t < s + 10.0) for s in sent) == 10
    assert sent[9] == 0.0 and sent[10] >= 10.0  # a full burst, then the window decides
    # a request that waited went the moment the one ten before it left the window (a pause is never carried on)
    assert all(sent[n] <= max(asked[n], sent[n - 10] + 10.002) for n in range(10, 35))

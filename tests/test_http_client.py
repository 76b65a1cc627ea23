"""Specs for the shared HTTP client: what is retried, how long it waits, and what each failure becomes."""
from __future__ import annotations

import logging
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from core.errors import AuthError, ConnectorError, RateLimited, RetriableError
from core.sync.http import HttpClient, RateLimiter, RetryPolicy, parse_retry_after
from tests.fakes.paged_api import PagedApi, make_deals


class FakeClock:
    """A clock whose sleep advances time instantly and records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*responses: httpx.Response | Exception, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    """A transport answering with `responses` in order, repeating the last one forever."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler)


def client_for(transport: httpx.BaseTransport, clock: FakeClock, **kwargs) -> HttpClient:
    return HttpClient("https://api.example.test", connector="hubspot", transport=transport, sleep=clock.sleep, **kwargs)


def test_retries_a_500_then_returns_the_success():
    clock = FakeClock()
    with PagedApi(make_deals(2), fail_plan=[{"on_request": 1, "status": 500}]) as api:
        with HttpClient(api.url, connector="hubspot", sleep=clock.sleep) as client:
            payload = client.get_json("/v1/deals")
    assert [r["id"] for r in payload["results"]] == ["1001", "1002"]
    assert len(api.requests) == 2
    assert (client.stats.requests, client.stats.retries) == (2, 1)
    assert len(clock.sleeps) == 1


def test_honours_a_real_retry_after_of_one_second_on_429():
    plan = [{"on_request": 1, "status": 429, "headers": {"Retry-After": "1"}}]
    with PagedApi(make_deals(1), fail_plan=plan) as api:
        with HttpClient(api.url, connector="hubspot") as client:
            started = time.monotonic()
            response = client.request("GET", "/v1/deals")
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.9
    assert api.requests[1].time - api.requests[0].time >= 0.9
    assert client.stats.rate_limited == 1


def test_persistent_429_raises_rate_limited_after_the_retry_budget():
    clock = FakeClock()
    transport = scripted(httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow down"}))
    with client_for(transport, clock) as client, pytest.raises(RateLimited) as caught:
        client.request("GET", "/crm/v3/objects/deals")
    assert caught.value.retry_after == 2.0
    assert caught.value.details["status"] == 429
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0]
    assert client.stats.rate_limited == 5


def test_retry_after_beyond_max_retry_after_raises_at_once():
    clock = FakeClock()
    seen: list[httpx.Request] = []
    transport = scripted(httpx.Response(429, headers={"Retry-After": "86400"}, json={"message": "daily cap"}), seen=seen)
    with client_for(transport, clock, retry=RetryPolicy(max_retry_after=120)) as client:
        with pytest.raises(RateLimited) as caught:
            client.request("GET", "/crm/v3/objects/deals")
    assert caught.value.retry_after == 86400.0
    assert len(seen) == 1
    assert clock.sleeps == []


def test_retry_after_from_callable_takes_precedence_over_the_header():
    clock = FakeClock()
    transport = scripted(
        httpx.Response(429, headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "250", "Retry-After": "9"}),
        httpx.Response(200, json={}),
    )

    def hubspot_interval(response: httpx.Response) -> float | None:
        value = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return int(value) / 1000 if value else None

    with client_for(transport, clock, retry_after_from=hubspot_interval) as client:
        client.request("GET", "/crm/v3/objects/deals")
    assert clock.sleeps == [0.25]


def test_retry_after_accepts_fractional_seconds_and_http_dates():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    in_ten = format_datetime(now + timedelta(seconds=10), usegmt=True)
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(in_ten, now=now.timestamp) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


def test_401_raises_auth_error_without_the_token_in_the_message():
    with PagedApi(make_deals(1), require_token="right-token") as api:
        headers = {"Authorization": "Bearer wrong-secret-123"}
        with HttpClient(api.url, connector="hubspot", headers=headers, sleep=FakeClock().sleep) as client:
            with pytest.raises(AuthError) as caught:
                client.request("GET", "/v1/deals")
    assert caught.value.message.startswith("hubspot: GET /v1/deals answered 401")
    assert "wrong-secret-123" not in str(caught.value.to_dict())
    assert len(api.requests) == 1


def test_400_names_connector_method_path_and_status_but_not_the_query_string():
    clock = FakeClock()
    transport = scripted(httpx.Response(400, json={"message": "Property 'foo' does not exist"}))
    with client_for(transport, clock) as client, pytest.raises(ConnectorError) as caught:
        client.request("GET", "/crm/v3/objects/deals", params={"hapikey": "SECRET-KEY", "limit": 5})
    error = caught.value
    assert type(error) is ConnectorError
    assert error.message.startswith("hubspot: GET /crm/v3/objects/deals answered 400: ")
    assert "Property 'foo' does not exist" in error.message
    assert "SECRET-KEY" not in str(error.to_dict())
    assert error.details["status"] == 400
    assert clock.sleeps == []


def test_transport_errors_become_retriable_error_after_the_retries():
    clock = FakeClock()
    seen: list[httpx.Request] = []
    transport = scripted(httpx.ConnectError("connection refused"), seen=seen)
    with client_for(transport, clock, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(RetriableError) as caught:
            client.request("POST", "/crm/v3/objects/deals/search", json={"limit": 1})
    assert len(seen) == 3
    assert len(clock.sleeps) == 2
    assert "hubspot: POST /crm/v3/objects/deals/search failed after 3 attempts" in caught.value.message


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the range rather than sitting at zero


def test_invalid_json_raises_connector_error():
    transport = scripted(httpx.Response(200, text="<html>maintenance</html>"))
    with client_for(transport, FakeClock()) as client, pytest.raises(ConnectorError) as caught:
        client.get_json("/crm/v3/objects/deals")
    assert "hubspot: GET /crm/v3/objects/deals answered 200 with invalid JSON" in caught.value.message


def test_rate_limiter_spaces_calls_at_the_configured_rate():
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == [0.5, 0.5]
    assert limiter.acquired == 3


def test_rate_limiter_lets_a_burst_through_without_waiting():
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.1)]


def test_rate_limiter_is_consulted_for_every_attempt_including_retries():
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    transport = scripted(httpx.Response(503), httpx.Response(503), httpx.Response(200, json={}))
    with client_for(transport, clock, rate_limiter=limiter, retry=RetryPolicy(base_delay=0.0)) as client:
        client.request("GET", "/crm/v3/objects/deals")
    assert limiter.acquired == 3
    assert clock.sleeps.count(1.0) == 2  # two waits for a token; the zero backoff never sleeps


def test_on_response_hook_sees_every_response():
    statuses: list[int] = []
    transport = scripted(
        httpx.Response(500), httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={})
    )
    with client_for(transport, FakeClock(), on_response=lambda r: statuses.append(r.status_code)) as client:
        client.request("GET", "/crm/v3/objects/deals")
    assert statuses == [500, 429, 200]


def test_retry_logs_never_include_headers(caplog):
    transport = scripted(httpx.Response(502), httpx.Response(200, json={}))
    headers = {"Authorization": "Bearer log-secret-456"}
    with caplog.at_level(logging.DEBUG, logger="pandora.http"):
        with client_for(transport, FakeClock(), headers=headers) as client:
            client.request("GET", "/crm/v3/objects/deals", params={"token": "query-secret"})
    assert "hubspot: GET /crm/v3/objects/deals answered 502; retry 2/5" in caplog.text
    assert "log-secret-456" not in caplog.text
    assert "query-secret" not in caplog.text


class TokenRotation:
    """An AuthRefresher handing out numbered tokens (or failing), counting its calls."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def refresh(self) -> dict[str, str]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return {"Authorization": f"Bearer fresh-{self.calls}"}


def test_401_refreshes_the_token_once_and_keeps_it_for_later_requests():
    seen: list[httpx.Request] = []
    transport = scripted(httpx.Response(401, json=[{"errorCode": "INVALID_SESSION_ID"}]), httpx.Response(200, json={}),
                         seen=seen)
    refresher = TokenRotation()
    headers = {"Authorization": "Bearer expired"}
    with client_for(transport, FakeClock(), headers=headers, auth=refresher, label="Salesforce") as client:
        client.request("GET", "/services/data/v63.0/query")
        client.request("GET", "/services/data/v63.0/query")
    assert refresher.calls == 1
    assert [r.headers["Authorization"] for r in seen] == ["Bearer expired", "Bearer fresh-1", "Bearer fresh-1"]


def test_a_second_401_after_the_refresh_says_reconnect_with_the_label():
    transport = scripted(httpx.Response(401, json=[{"errorCode": "INVALID_SESSION_ID"}]))
    refresher = TokenRotation()
    with client_for(transport, FakeClock(), auth=refresher, label="Salesforce") as client:
        with pytest.raises(AuthError) as caught:
            client.request("GET", "/services/data/v63.0/query")
    assert refresher.calls == 1
    assert caught.value.message.endswith("reconnect Salesforce")
    assert caught.value.details["status"] == 401


def test_a_failed_refresh_is_an_auth_error_saying_reconnect():
    seen: list[httpx.Request] = []
    transport = scripted(httpx.Response(401, json={}), httpx.Response(200, json={}), seen=seen)
    refresher = TokenRotation(fail=ConnectorError("token endpoint said invalid_grant"))
    with client_for(transport, FakeClock(), auth=refresher, label="HubSpot") as client:
        with pytest.raises(AuthError) as caught:
            client.request("GET", "/crm/v3/objects/deals")
    assert "invalid_grant" in caught.value.message and caught.value.message.endswith("reconnect HubSpot")
    assert len(seen) == 1  # nothing retried with the stale token


def test_without_a_refresher_a_401_still_names_the_way_out():
    transport = scripted(httpx.Response(401, json={"message": "expired"}))
    with client_for(transport, FakeClock(), label="HubSpot") as client, pytest.raises(AuthError) as caught:
        client.request("GET", "/crm/v3/objects/deals")
    assert caught.value.message.endswith("reconnect HubSpot")


def test_on_response_may_stop_the_request_with_its_own_error():
    def cap(response: httpx.Response) -> None:
        if response.headers.get("Sforce-Limit-Info") == "api-usage=96/100":
            raise RateLimited("daily cap near", retry_after=None)

    seen: list[httpx.Request] = []
    transport = scripted(httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=96/100"}, json={}), seen=seen)
    with client_for(transport, FakeClock(), on_response=cap) as client, pytest.raises(RateLimited):
        client.request("GET", "/services/data/v63.0/query")
    assert len(seen) == 1

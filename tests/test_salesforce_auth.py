"""Specs for Salesforce's OAuth web flow, session refresh, daily-cap tracking and record typing."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from connectors.salesforce import normalize
from connectors.salesforce.client import LimitGuard
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.soql import modified_since, select
from core.errors import AuthError, RateLimited
from core.sync.protocol import StreamContext
from tests.fakes.salesforce_api import CLIENT_ID, CLIENT_SECRET, SalesforceApi

SETTINGS = SimpleNamespace(salesforce_client_id=CLIENT_ID, salesforce_client_secret=CLIENT_SECRET)


def test_the_web_flow_code_exchange_gives_credentials_on_the_instance_url(monkeypatch):
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", CLIENT_SECRET)
    connector = SalesforceConnector()
    spec = connector.oauth
    assert spec.authorize_url == "https://login.salesforce.com/services/oauth2/authorize"
    assert set(spec.scopes) == {"api", "refresh_token"}
    with SalesforceApi() as sf:
        code = sf.issue_code()
        form = spec.token_params(code, "https://pandora.example/oauth/salesforce/callback", SETTINGS)
        token = httpx.post(f"{sf.url}/services/oauth2/token", data=form).json()
        creds = spec.credentials(token, now=0)
        assert creds["instance_url"] == sf.url and creds["refresh_token"]
        with connector.client(creds, {}) as client:
            assert connector.check_auth(client)["org_id"] == sf.org_id
            sf.expire_tokens()  # the next call refreshes with the app credentials from the settings
            assert connector.check_auth(client)["currency"] == "USD"
        assert [r["grant_type"] for r in sf.requests if r["method"] == "POST"] == ["authorization_code", "refresh_token"]


def test_a_client_without_a_stored_login_asks_to_reconnect():
    with pytest.raises(AuthError) as caught:
        SalesforceConnector().client({"access_token": "x"}, {})
    assert caught.value.message.endswith("reconnect Salesforce")


def test_the_limit_guard_pauses_at_the_threshold_and_on_request_limit_exceeded():
    guard = LimitGuard(0.95)
    guard(httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=10018/100000"}))
    assert (guard.used, guard.limit) == (10018, 100000)
    with pytest.raises(RateLimited) as caught:
        guard(httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=95000/100000"}))
    assert "95,000 of the org's 100,000 daily requests" in caught.value.message
    with pytest.raises(RateLimited):
        guard(httpx.Response(403, json=[{"message": "TotalRequests Limit exceeded.",
                                         "errorCode": "REQUEST_LIMIT_EXCEEDED"}]))
    guard(httpx.Response(403, json=[{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}]))  # not a cap


def test_incremental_window_reaches_back_by_the_overlap_in_a_soql_literal():
    assert modified_since("2026-05-01T07:25:37.000+0000") == "SystemModstamp >= 2026-05-01T07:15:37Z"
    query = select("Opportunity", "IsDeleted = true", org_fields=["Next_Step_Date__c", "CurrencyIsoCode"])
    assert ", Next_Step_Date__c, CurrencyIsoCode, (SELECT Id, ContactId" in query
    assert query.endswith("FROM Opportunity WHERE IsDeleted = true ORDER BY SystemModstamp, Id")


def test_salesforce_probability_is_a_percent_and_times_keep_their_offset():
    ctx = StreamContext("w", "salesforce", {"account": {"currency": "USD"}})
    row = normalize.deal({"Id": "006A", "Probability": 1.0, "Amount": 10.5, "CurrencyIsoCode": "EUR",
                          "SystemModstamp": "2026-05-01T07:25:37.000+0000", "IsDeleted": True,
                          "ForecastCategoryName": "Omitted", "attributes": {"type": "Opportunity"}}, ctx)
    assert row["probability"] == Decimal("1.00") and row["amount"] == Decimal("10.50") and row["currency"] == "EUR"
    assert row["deleted_at"].isoformat() == "2026-05-01T07:25:37+00:00"
    assert row["forecast_category"] == "not_forecasted" and "attributes" not in row["source_data"]


def test_an_expired_query_cursor_is_named_for_what_it_is():
    from core.errors import PageStateExpired

    with pytest.raises(PageStateExpired) as caught:
        LimitGuard()(httpx.Response(400, json=[{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]))
    assert "start its walk again" in caught.value.message

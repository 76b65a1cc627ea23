"""monday.com cells → values, column roles and deal references (pure functions; no server, no database)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import httpx
import pytest

from connectors.monday.client import MondayClient, declared_only
from connectors.monday.columns import BoardRoles, column_settings, parse_value
from connectors.monday.deals import DealRef, deal_reference, salesforce_id18
from connectors.monday.normalize import Board, normalize_item
from core.errors import PageStateExpired, RateLimited
from tests.fakes.monday_api import STATUS_LABELS, cell, column, fixture

STATUS = column_settings(column("status", "Status", "status", STATUS_LABELS, [1]))


def test_status_done_comes_from_done_colors_or_the_done_label():
    done = parse_value(cell("status", "status", "Shipped", {"index": 1, "changed_at": "2026-05-02T08:00:00.000Z"}),
                       STATUS)
    assert done.value == "Shipped" and done.extra["done"] is True
    assert done.extra["changed_at"] == datetime(2026, 5, 2, 8, tzinfo=timezone.utc)
    by_label = parse_value(cell("status", "status", "", {"index": 7}), {"labels": {"7": "Done"}})
    assert by_label.value == "Done" and by_label.extra["done"] is True
    working = parse_value(cell("status", "status", "Working on it", {"index": 0}), STATUS)
    assert working.extra["done"] is False


def test_dates_timelines_numbers_links_people_and_relations_are_decoded():
    at = parse_value(cell("d", "date", "2026-05-08 14:00", {"date": "2026-05-08", "time": "14:00:00"}))
    assert at.value == "2026-05-08T14:00:00Z" and at.extra["date"] == date(2026, 5, 8)
    assert parse_value(cell("t", "timeline", "", {"from": "2026-05-01", "to": "2026-05-09"})).value == {
        "from": "2026-05-01", "to": "2026-05-09"}
    assert parse_value(cell("n", "numbers", "12,000.5", "12000.5")).value == 12000.5
    link = parse_value(cell("l", "link", "Deal", {"url": "https://x.test/a", "text": "Deal"}))
    assert link.value == {"url": "https://x.test/a", "text": "Deal"}
    people = parse_value(cell("p", "people", "Jon Snow, Team A", {"personsAndTeams": [
        {"id": 4012345, "kind": "person"}, {"id": 77, "kind": "team"}]}))
    assert people.extra["people"] == [{"id": "4012345", "kind": "person"}, {"id": "77", "kind": "team"}]
    relation = parse_value({"id": "r", "type": "board_relation", "text": None, "value": None,
                            "display_value": "Acme renewal", "linked_item_ids": ["55"]})
    assert relation.value == "Acme renewal" and relation.extra["linked_ids"] == ["55"]
    assert parse_value(cell("c", "checkbox", "v", {"checked": "true"})).value is True


@pytest.mark.parametrize("raw_cell", [
    cell("s", "status", "Blocked", raw="{not json"),
    cell("d", "date", "someday", {"date": "someday"}),
    cell("n", "numbers", "lots", raw='"lots"'),
    cell("t", "timeline", "soon", {"from": "x", "to": "y"}),
])
def test_a_value_that_does_not_parse_is_kept_as_its_text(raw_cell):
    parsed = parse_value(raw_cell)
    assert parsed.ok is False and parsed.value == raw_cell["text"]


def test_roles_follow_metadata_then_titles_then_types():
    columns = [column_settings(c) for c in (
        column("prio", "Priority", "status", {"0": "High"}), column("state", "Stage", "status", STATUS_LABELS),
        column("date1", "Start", "date"), column("date2", "Due date", "date"), column("p", "Watchers", "people"),
        column("owner", "Owner", "people"), column("link", "Deal link", "link"), column("deal", "Deal", "text"))]
    roles = BoardRoles.pick(columns, {})
    assert (roles.status, roles.priority, roles.due, roles.assignee, roles.deal) == (
        "state", "prio", "date2", "owner", "deal")
    chosen = BoardRoles.pick(columns, {"due_column": "Start", "assignee_column": "p", "deal_column": "link"})
    assert (chosen.due, chosen.assignee, chosen.deal) == ("date1", "p", "link")


def test_deal_references_from_crm_urls_ids_and_names():
    assert deal_reference("https://app.hubspot.com/contacts/4711/deal/9001/") == DealRef("hubspot", "9001", None)
    assert deal_reference("https://app-eu1.hubspot.com/contacts/4711/record/0-3/9002") == DealRef(
        "hubspot", "9002", None)
    assert deal_reference("https://acme.my.salesforce.com/0065g00000AbCdE") == DealRef(
        "salesforce", "0065g00000AbCdEAAV", None)
    assert deal_reference("0065g00000AbCdEAAV") == DealRef("salesforce", "0065g00000AbCdEAAV", None)
    assert deal_reference("20260501") == DealRef("hubspot", "20260501", "20260501")
    assert deal_reference("  Acme renewal ") == DealRef(None, None, "Acme renewal")
    assert deal_reference("https://example.com/something") is None and deal_reference("") is None
    assert salesforce_id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # Salesforce's documented example


def test_an_item_maps_to_a_task_row():
    raw = fixture("boards_items_page_CONSTRUCTED.json")["data"]["boards"][0]["items_page"]["items"][0]
    board = Board({"id": "1", "name": "Deal desk tasks", "columns": [
        column_settings(column("person", "Owner", "people")), STATUS,
        column_settings(column("date4", "Due date", "date")), column_settings(column("text", "Account", "text")),
        column_settings(column("numbers", "Amount", "numbers")), column_settings(column("link", "Deal link", "link"))]},
        {})
    row = normalize_item({**raw, "state": "archived"}, board, {"4012345": {"name": "Jon Snow", "email": "JON@x.test"}})
    assert row["status"] == "Working on it" and row["assignee_email"] == "jon@x.test"
    assert row["deleted_at"] == datetime(2026, 5, 1, 7, 25, 37, tzinfo=timezone.utc)
    assert row["source_data"]["id"] == "9876543210" and row["custom_fields"]["Amount"] == 12000


def test_timeline_end_is_the_due_date_without_a_date_column():
    board = Board({"id": "1", "name": "B", "columns": [column_settings(column("tl", "When", "timeline"))]}, {})
    row = normalize_item({"id": "5", "name": "x", "column_values": [
        cell("tl", "timeline", "", {"from": "2026-05-01", "to": "2026-05-09"})]}, board, {})
    assert row["due_date"] == date(2026, 5, 9) and row["custom_fields"]["When"]["to"] == "2026-05-09"


def _client(*replies, sleeps=None):
    queue = list(replies)
    transport = httpx.MockTransport(lambda request: queue.pop(0))
    return MondayClient("https://api.monday.test", connector="monday", label="Monday.com", transport=transport,
                        sleep=(sleeps.append if sleeps is not None else lambda s: None), clock=lambda: 0.0)


def test_an_expired_cursor_asks_the_engine_to_restart_the_walk():
    client = _client(httpx.Response(200, json=fixture("error_cursor_expired_CONSTRUCTED.json")))
    with pytest.raises(PageStateExpired) as caught:
        client.request("POST", "/v2", json={"query": "query { next_items_page }"})
    assert caught.value.details["restart"] is True


def test_a_budget_wait_longer_than_the_retry_budget_stops_with_rate_limited():
    body = fixture("error_complexity_budget_exhausted.json")
    body["errors"][0]["extensions"]["retry_in_seconds"] = 86_400
    with pytest.raises(RateLimited) as caught:
        _client(httpx.Response(200, json=body)).request("POST", "/v2", json={"query": "query { me { id } }"})
    assert caught.value.retry_after == 86_400 and "resumes on the next run" in caught.value.message


def test_the_client_waits_for_the_budget_reset_when_the_next_query_would_not_fit():
    low = {"data": {"complexity": {"before": 900, "after": 400, "query": 500, "reset_in_x_seconds": 33}, "me": {}}}
    sleeps: list = []
    client = _client(httpx.Response(200, json=low), httpx.Response(200, json=low), sleeps=sleeps)
    client.request("POST", "/v2", json={"query": "query { me { id } }"})
    assert sleeps == []
    client.request("POST", "/v2", json={"query": "query { me { id } }"})
    assert sleeps == [33.0]


def test_only_declared_variables_are_sent():
    body = {"query": "query ($cursor: String!, $limit: Int!) { next_items_page(cursor: $cursor, limit: $limit) }",
            "variables": {"cursor": "c", "limit": 2, "board": ["1"], "qp": {"rules": []}}}
    assert declared_only(body)["variables"] == {"cursor": "c", "limit": 2}
    assert json.dumps(declared_only({"query": "{ me }"})) == json.dumps({"query": "{ me }"})

"""Specs for paging: each paginator walks its API shape, resumes from saved state, and never loops forever."""
from __future__ import annotations

import json

import httpx
import pytest

from core.errors import ConnectorError
from core.sync.http import HttpClient
from core.sync.paginators import (
    AfterCursor,
    GraphQLCursor,
    NextUrl,
    OffsetPaginator,
    dig,
    iterate_pages,
)
from tests.fakes.paged_api import PagedApi, make_deals


def no_sleep(_seconds: float) -> None:
    pass


def mock_client(handler, connector: str = "test", base_url: str = "https://api.example.test") -> HttpClient:
    return HttpClient(base_url, connector=connector, transport=httpx.MockTransport(handler), sleep=no_sleep)


def walk_deals(api: PagedApi, **kwargs) -> list:
    kwargs.setdefault("params", {"limit": 3})
    with HttpClient(api.url, connector="hubspot", sleep=no_sleep) as client:
        return list(iterate_pages(
            client, method="GET", path="/v1/deals", paginator=AfterCursor(), records_path="results", **kwargs,
        ))


def test_after_cursor_walk_collects_every_record_across_pages_in_order():
    with PagedApi(make_deals(7)) as api:
        pages = walk_deals(api)
    assert [len(p.records) for p in pages] == [3, 3, 1]
    assert [r["id"] for p in pages for r in p.records] == [str(i) for i in range(1001, 1008)]
    assert pages[-1].state is None
    assert all(p.state is not None for p in pages[:-1])


def test_resuming_from_a_saved_state_yields_only_the_remaining_records():
    with PagedApi(make_deals(7)) as api:
        saved = walk_deals(api)[0].state
        api.requests.clear()
        resumed = walk_deals(api, state=json.loads(json.dumps(saved)))  # the state survives a JSON round trip
    assert [r["id"] for p in resumed for r in p.records] == [str(i) for i in range(1004, 1008)]
    assert api.requests[0].query["after"] == saved["cursor"]


def test_after_cursor_sends_the_stream_params_on_every_page():
    with PagedApi(make_deals(5)) as api:
        walk_deals(api, params={"limit": 2, "since": "2026-01-01T00:01:00Z"})
    assert [r.query.get("since") for r in api.requests] == ["2026-01-01T00:01:00Z"] * 2
    assert "after" not in api.requests[0].query


def test_a_repeated_cursor_raises_a_paginator_loop_error():
    with PagedApi(make_deals(9), loop_cursor=True) as api, pytest.raises(ConnectorError) as caught:
        walk_deals(api)
    assert "hubspot: GET /v1/deals: paginator loop: cursor" in caught.value.message
    assert "repeated at page 2" in caught.value.message
    assert len(api.requests) == 2


def test_walking_past_max_pages_raises():
    with PagedApi(make_deals(9)) as api, pytest.raises(ConnectorError) as caught:
        walk_deals(api, max_pages=2)
    assert "more than 2 pages" in caught.value.message


def test_after_cursor_in_body_merges_into_a_search_post():
    bodies: list[dict] = []

    def search(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "after" not in body:
            return httpx.Response(200, json={"results": [{"id": "1"}], "paging": {"next": {"after": "1"}}})
        return httpx.Response(200, json={"results": [{"id": "2"}]})

    base = {"filterGroups": [{"filters": []}], "limit": 1}
    with mock_client(search) as client:
        pages = list(iterate_pages(
            client, method="POST", path="/crm/v3/objects/deals/search",
            paginator=AfterCursor(in_body=True), records_path="results", json=base,
        ))
    assert [r["id"] for p in pages for r in p.records] == ["1", "2"]
    assert bodies[1] == {**base, "after": "1"}


def test_offset_paging_stops_on_a_short_page():
    items = [{"n": i} for i in range(7)]
    seen: list[dict] = []

    def listing(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        seen.append(query)
        offset, limit = int(query["offset"]), int(query["limit"])
        return httpx.Response(200, json={"data": items[offset:offset + limit]})

    with mock_client(listing) as client:
        pages = list(iterate_pages(
            client, method="GET", path="/items", paginator=OffsetPaginator(3), records_path="data",
        ))
    assert [r["n"] for p in pages for r in p.records] == list(range(7))
    assert [q["offset"] for q in seen] == ["0", "3", "6"]


def test_offset_paging_in_graphql_variables_keeps_the_stream_variables():
    bodies: list[dict] = []

    def graphql(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        skip = body["variables"]["skip"]
        return httpx.Response(200, json={"data": {"transcripts": [{"id": str(skip)}, {"id": str(skip + 1)}][: 3 - skip]}})

    query = "query($limit: Int, $skip: Int, $from: DateTime) { transcripts(limit: $limit, skip: $skip) { id } }"
    paginator = OffsetPaginator(2, limit_param="limit", offset_param="skip", in_variables=True)
    with mock_client(graphql) as client:
        pages = list(iterate_pages(
            client, method="POST", path="/graphql", paginator=paginator, records_path="data.transcripts",
            json={"query": query, "variables": {"from": "2026-01-01"}},
        ))
    assert [r["id"] for p in pages for r in p.records] == ["0", "1", "2"]
    assert bodies[1] == {"query": query, "variables": {"from": "2026-01-01", "limit": 2, "skip": 2}}


def test_next_url_paging_follows_next_records_url_without_resending_the_query():
    seen: list[httpx.URL] = []

    def salesforce(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path.endswith("/query"):
            return httpx.Response(200, json={
                "done": False, "records": [{"Id": "006A"}],
                "nextRecordsUrl": "/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
            })
        return httpx.Response(200, json={"done": True, "records": [{"Id": "006B"}]})

    client = mock_client(salesforce, connector="salesforce", base_url="https://acme.my.salesforce.com/services/data/v59.0")
    with client:
        pages = list(iterate_pages(
            client, method="GET", path="/query", paginator=NextUrl(), records_path="records",
            params={"q": "SELECT Id FROM Opportunity"},
        ))
    assert [r["Id"] for p in pages for r in p.records] == ["006A", "006B"]
    assert str(seen[1]) == "https://acme.my.salesforce.com/services/data/v59.0/query/01gD0000002HU6KIAW-2000"


def test_next_url_paging_can_follow_a_link_header():
    def github_like(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        headers = {"Link": f'<https://api.example.test/items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return httpx.Response(200, json=[{"page": page}], headers=headers)

    with mock_client(github_like) as client:
        pages = list(iterate_pages(
            client, method="GET", path="/items", paginator=NextUrl(use_link_header=True), records_path="",
        ))
    assert [r["page"] for p in pages for r in p.records] == [1, 2, 3]


def test_graphql_cursor_switches_to_next_query_after_the_first_page():
    first_query = "query($board: [ID!]) { boards(ids: $board) { items_page(limit: 1) { cursor items { id } } } }"
    next_query = "query($cursor: String!) { next_items_page(cursor: $cursor, limit: 1) { cursor items { id } } }"
    bodies: list[dict] = []

    def monday(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if body["query"] == first_query:
            return httpx.Response(200, json={"data": {"boards": [{"items_page": {"cursor": "c1", "items": [{"id": "1"}]}}]}})
        cursor = body["variables"]["cursor"]
        following = {"c1": "c2", "c2": None}[cursor]
        return httpx.Response(200, json={"data": {"next_items_page": {"cursor": following, "items": [{"id": cursor}]}}})

    paginator = GraphQLCursor(
        "data.boards.0.items_page.cursor", next_query=next_query,
        next_cursor_path="data.next_items_page.cursor", next_records_path="data.next_items_page.items",
    )
    with mock_client(monday, connector="monday") as client:
        pages = list(iterate_pages(
            client, method="POST", path="/v2", paginator=paginator, records_path="data.boards.0.items_page.items",
            json={"query": first_query, "variables": {"board": ["42"]}},
        ))
    assert [r["id"] for p in pages for r in p.records] == ["1", "c1", "c2"]
    assert [b["query"] for b in bodies] == [first_query, next_query, next_query]
    assert bodies[1]["variables"]["cursor"] == "c1"


def test_graphql_errors_in_a_200_response_raise_connector_error():
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": None, "errors": [{"message": "Complexity budget exhausted"}]})

    with mock_client(failing, connector="monday") as client, pytest.raises(ConnectorError) as caught:
        list(iterate_pages(client, method="POST", path="/v2", paginator=GraphQLCursor("data.cursor"),
                           records_path="data.items", json={"query": "{ x }"}))
    assert "monday: POST /v2: page 1 returned errors: Complexity budget exhausted" == caught.value.message


def test_dig_follows_dotted_paths_and_list_indexes():
    payload = {"data": {"boards": [{"items_page": {"cursor": "abc"}}]}}
    assert dig(payload, "data.boards.0.items_page.cursor") == "abc"
    assert dig(payload, "") is payload


def test_dig_returns_none_for_missing_paths():
    payload = {"data": {"boards": [{"items_page": None}]}, "paging": {}}
    assert dig(payload, "paging.next.after") is None
    assert dig(payload, "data.boards.3.items_page") is None
    assert dig(payload, "data.boards.0.items_page.cursor") is None
    assert dig(payload, "data.boards.x") is None
    assert dig(None, "a") is None

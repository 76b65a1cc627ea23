"""Every connector's paging, in one module: small stateless paginators plus the one loop that walks pages.

A paginator only translates between a JSON-serialisable `state` (where the walk stands) and the next request;
the orchestrator persists that state with each committed page, so a killed sync resumes where it stopped.
`iterate_pages` is the only paging loop in Pandora: no connector writes its own, and it refuses to walk in
circles (a repeated cursor or more than `max_pages` pages is a ConnectorError, never an endless sync).
"""
from __future__ import annotations

import json as jsonlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx

from core.errors import ConnectorError
from core.sync.http import HttpClient

State = dict[str, Any]


def dig(obj: Any, path: str) -> Any:
    """`obj["a"]["b"][0]["c"]` for "a.b.0.c"; None when any step is missing. The empty path is `obj`."""
    if not path:
        return obj
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            index = int(part)
            obj = obj[index] if -len(obj) <= index < len(obj) else None
        else:
            return None
        if obj is None:
            return None
    return obj


@dataclass
class PageRequest:
    """What one page adds to the stream's request: query params, JSON body keys, or a whole next URL."""

    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    url: str | None = None


@dataclass
class Page:
    """One fetched page; `state` is where the NEXT page starts (None after the last page)."""

    records: list[Any]
    payload: Any
    state: State | None


class Paginator(ABC):
    """Stateless: everything about the position lives in `state`, so it can be saved and resumed."""

    @abstractmethod
    def request(self, state: State | None) -> PageRequest:
        """The request for the page at `state` (None = first page)."""

    @abstractmethod
    def next_state(
        self, state: State | None, payload: Any, response: httpx.Response, records: list[Any]
    ) -> State | None:
        """The state of the page after this one, or None when this was the last."""

    def records_path(self, state: State | None, default: str) -> str:
        """Where the records sit in the payload; only paginators whose later pages differ override it."""
        return default


class AfterCursor(Paginator):
    """An opaque cursor read from the payload and sent back as a query param or body key.

    HubSpot list (`paging.next.after` → ?after=), Gong
    (`records.cursor` → body "cursor"), Google Drive (`nextPageToken` → ?pageToken=).
    """

    def __init__(self, cursor_path: str = "paging.next.after", param: str = "after", in_body: bool = False):
        self.cursor_path = cursor_path
        self.param = param
        self.in_body = in_body

    def request(self, state: State | None) -> PageRequest:
        if state is None:
            return PageRequest()
        value = {self.param: state["cursor"]}
        return PageRequest(json=value) if self.in_body else PageRequest(params=value)

    def next_state(self, state, payload, response, records):
        cursor = dig(payload, self.cursor_path)
        return {"cursor": cursor} if cursor not in (None, "") else None


class OffsetPaginator(Paginator):
    """limit/offset paging that stops on a short page (Fireflies GraphQL: variables limit/skip)."""

    def __init__(
        self,
        page_size: int,
        limit_param: str = "limit",
        offset_param: str = "offset",
        in_body: bool = False,
        in_variables: bool = False,
    ):
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        self.page_size = page_size
        self.limit_param = limit_param
        self.offset_param = offset_param
        self.in_body = in_body
        self.in_variables = in_variables

    def request(self, state: State | None) -> PageRequest:
        offset = state["offset"] if state else 0
        value = {self.limit_param: self.page_size, self.offset_param: offset}
        if self.in_variables:
            return PageRequest(json={"variables": value})
        return PageRequest(json=value) if self.in_body else PageRequest(params=value)

    def next_state(self, state, payload, response, records):
        if len(records) < self.page_size:
            return None
        return {"offset": (state["offset"] if state else 0) + len(records)}


class PageNumber(Paginator):
    """1-based page numbers with a page size, stopping on a short page (Monday `boards`, `users` and
    `activity_logs`: variables limit/page)."""

    def __init__(self, page_size: int, limit_param: str = "limit", page_param: str = "page", *,
                 first: int = 1, in_variables: bool = False):
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        self.page_size = page_size
        self.limit_param = limit_param
        self.page_param = page_param
        self.first = first
        self.in_variables = in_variables

    def request(self, state: State | None) -> PageRequest:
        value = {self.limit_param: self.page_size, self.page_param: state["page"] if state else self.first}
        return PageRequest(json={"variables": value}) if self.in_variables else PageRequest(params=value)

    def next_state(self, state, payload, response, records):
        if len(records) < self.page_size:
            return None
        return {"page": (state["page"] if state else self.first) + 1}


class NextUrl(Paginator):
    """The response names the next page's URL: a payload field (Salesforce `nextRecordsUrl`) or a
    `Link: <…>; rel="next"` header. Relative URLs are resolved against the URL that was just fetched, and
    the next URL is used as given: the stream's base params are not re-sent (the URL already carries them).
    """

    def __init__(self, next_path: str = "nextRecordsUrl", use_link_header: bool = False):
        self.next_path = next_path
        self.use_link_header = use_link_header

    def request(self, state: State | None) -> PageRequest:
        return PageRequest() if state is None else PageRequest(url=state["url"])

    def next_state(self, state, payload, response, records):
        if self.use_link_header:
            link = response.links.get("next", {}).get("url")
        else:
            link = dig(payload, self.next_path)
        if not link:
            return None
        return {"url": str(response.request.url.join(link))}


class GraphQLCursor(Paginator):
    """A cursor passed back as a GraphQL variable (Monday: `items_page` first, then `next_items_page`).

    With `next_query`, later pages send that query instead of the stream's; because its result sits under a
    different root, `next_cursor_path` / `next_records_path` say where to look on those pages.
    """

    def __init__(
        self,
        cursor_path: str,
        cursor_var: str = "cursor",
        next_query: str | None = None,
        *,
        next_cursor_path: str | None = None,
        next_records_path: str | None = None,
    ):
        self.cursor_path = cursor_path
        self.cursor_var = cursor_var
        self.next_query = next_query
        self.next_cursor_path = next_cursor_path
        self.next_records_path = next_records_path

    def request(self, state: State | None) -> PageRequest:
        if state is None:
            return PageRequest()
        body: dict[str, Any] = {"variables": {self.cursor_var: state["cursor"]}}
        if self.next_query is not None:
            body["query"] = self.next_query
        return PageRequest(json=body)

    def next_state(self, state, payload, response, records):
        path = self.cursor_path
        if state is not None and self.next_cursor_path:
            path = self.next_cursor_path
        cursor = dig(payload, path)
        return {"cursor": cursor} if cursor not in (None, "") else None

    def records_path(self, state: State | None, default: str) -> str:
        return self.next_records_path if state is not None and self.next_records_path else default


class KeysetSearch(Paginator):
    """A search API walked by key instead of by offset (HubSpot CRM search: POST body, `after` capped at 10,000).

    Every page is a fresh query "cursor property >= the last value seen", sorted ascending, with no offset: the
    10,000-result cap never applies, and a record modified during the walk (which moves to the end of the sort)
    can never shift an unseen record out of reach the way offset paging would — it is simply met again later.
    Records sharing the last value are re-read on the next page (upserts make that harmless). When a whole
    page shares one value (more ties than a page holds), the walk switches to that value's tie-break walk,
    "value = v AND id > last id" sorted by id (ids are unique, so no tie is ever skipped), then resumes with
    "value > v". The first page's filter comes from the stream (its `since`); `state` is
    `{"mode": "gte" | "tie" | "gt", "value", "id"}` and resumes exactly.

    `value_path` / `id_path` locate the value and id in a record; `property` / `id_property` name them in the
    query. The filters replace the stream's `filterGroups` and `sorts`, so the stream body should not depend on
    them beyond the first page.
    """

    def __init__(self, property: str, *, id_property: str = "hs_object_id", value_path: str | None = None,
                 id_path: str = "id", more_path: str = "paging.next.after"):
        self.property = property
        self.id_property = id_property
        self.value_path = value_path or f"properties.{property}"
        self.id_path = id_path
        self.more_path = more_path

    def _filter(self, operator: str, value: Any, prop: str | None = None) -> dict[str, Any]:
        return {"propertyName": prop or self.property, "operator": operator, "value": value}

    def request(self, state: State | None) -> PageRequest:
        if state is None:
            return PageRequest()
        mode, value = state["mode"], state["value"]
        if mode == "tie":
            filters = [self._filter("EQ", value)]
            if state.get("id") is not None:
                filters.append(self._filter("GT", state["id"], self.id_property))
            sort = self.id_property
        else:
            filters = [self._filter("GTE" if mode == "gte" else "GT", value)]
            sort = self.property
        return PageRequest(json={"filterGroups": [{"filters": filters}],
                                 "sorts": [{"propertyName": sort, "direction": "ASCENDING"}]})

    def next_state(self, state, payload, response, records):
        more = dig(payload, self.more_path) not in (None, "")
        if state is not None and state["mode"] == "tie":
            if more and records:
                return {"mode": "tie", "value": state["value"], "id": dig(records[-1], self.id_path)}
            return {"mode": "gt", "value": state["value"]}  # every tie read: move past the value
        if not more or not records:
            return None
        first, last = dig(records[0], self.value_path), dig(records[-1], self.value_path)
        if first == last:  # a full page of one value: only the tie-break walk can get past it
            return {"mode": "tie", "value": last, "id": None}
        return {"mode": "gte", "value": last}


def _merge(base: dict[str, Any] | None, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """Body keys from the paginator win; nested dicts (GraphQL "variables") are merged one level deep."""
    if extra is None:
        return base
    merged = dict(base or {})
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _state_key(state: State) -> str:
    return jsonlib.dumps(state, sort_keys=True, default=str)


def _describe(state: State) -> str:
    """A state for an error message: the bare cursor, and a next URL without its query (it may carry keys)."""
    value = next(iter(state.values())) if len(state) == 1 else state
    if isinstance(value, str) and "://" in value:
        value = httpx.URL(value).path
    return repr(value)[:100]


def iterate_pages(
    client: HttpClient,
    *,
    method: str,
    path: str,
    paginator: Paginator,
    records_path: str,
    state: State | None = None,
    params: dict[str, Any] | None = None,
    json: dict[str, Any] | None = None,
    max_pages: int = 100_000,
) -> Iterator[Page]:
    """Walk pages from `state` (None = the beginning), yielding each with the state of the page after it.

    A page whose next state repeats one already seen in this walk is not yielded: the walk raises instead,
    so a looping cursor is never persisted as a resume point.
    """
    method = method.upper()
    where = f"{client.connector}: {method} {path}"
    seen = {_state_key(state)} if state is not None else set()
    number = 0
    while True:
        number += 1
        if number > max_pages:
            raise ConnectorError(
                f"{where}: more than {max_pages} pages; stopping (paginator loop?)",
                connector=client.connector, path=path, max_pages=max_pages,
            )
        try:
            page = paginator.request(state)
        except (KeyError, TypeError) as exc:
            raise ConnectorError(
                f"{where}: saved page state {_describe(state or {})} does not fit {type(paginator).__name__}",
                connector=client.connector, path=path,
            ) from exc
        query = dict(page.params) if page.url else {**(params or {}), **page.params}
        response = client.request(method, page.url or path, params=query or None, json=_merge(json, page.json))
        payload = client.parse_json(response)
        if isinstance(payload, dict) and payload.get("errors"):  # GraphQL reports failures with a 200
            first = payload["errors"][0] if isinstance(payload["errors"], list) else payload["errors"]
            message = first.get("message", first) if isinstance(first, dict) else first
            raise ConnectorError(f"{where}: page {number} returned errors: {str(message)[:200]}",
                                 connector=client.connector, path=path, page=number)
        records_at = paginator.records_path(state, records_path)
        records = dig(payload, records_at)
        if records is None:
            records = []
        elif not isinstance(records, list):
            raise ConnectorError(
                f"{where}: expected a list at '{records_at}' on page {number}, got {type(records).__name__}",
                connector=client.connector, path=path, page=number,
            )
        next_state = paginator.next_state(state, payload, response, records)
        if next_state is not None:
            key = _state_key(next_state)
            if key in seen:
                raise ConnectorError(
                    f"{where}: paginator loop: cursor {_describe(next_state)} repeated at page {number}",
                    connector=client.connector, path=path, page=number,
                )
            seen.add(key)
        yield Page(records=records, payload=payload, state=next_state)
        if next_state is None:
            return
        state = next_state

"""The HubSpot connector: credentials, auth check, metadata, and the streams the sync engine runs.

Streams (in this order, so references resolve within one run): companies, contacts, deals (with stage history
and deal_contacts), then the engagements (calls, meetings, emails, notes, tasks), then each object's archived
records (→ `deleted_at`). Owners, deal pipelines/stages and the portal's custom property definitions are read
in `prepare` and kept in `connections.metadata` (owners fill owner names/emails; stages feed stage mappings;
property types drive `custom_fields`).

Endpoint per object: a first (or `--full`) sync walks the v3 list endpoint (`paging.next.after`, 100 per
page); once a cursor exists, the search endpoint on the last-modified property (contacts `lastmodifieddate`,
everything else `hs_lastmodifieddate`), walked by key (`KeysetSearch`: no 10,000-result cap, ties never
skipped). A killed walk is finished with the endpoint it started with.

Properties and URL length: search bodies carry the property list. The list endpoint takes properties in the
query string, so we put as many as fit in `URL_BUDGET` characters there (the mapped ones first) and fetch the
rest — many custom properties, stage-history dates — with one batch read per page (POST body). Small portals
cost one request per page; big ones two, never a 414.

Rate limits: at most the documented burst in any rolling 10 s (default 100 requests; metadata `rate_limit`
{"per_10s", "window"} overrides; `limits.RollingWindowLimiter`) and, for the search endpoints, their own limit
of 4 requests a second per token (`rate_limit.search_per_second`; one left as headroom, as the 1 s window leaves
no room for clock skew; `limits.SearchPacedLimiter`), and a 429 waits as its `policyName` says:
TEN_SECONDLY_ROLLING/SECONDLY for the window in `X-HubSpot-RateLimit-Interval-Milliseconds` (or Retry-After),
DAILY stops the sync with RateLimited.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import httpx

from connectors.hubspot import auth, engagements, normalize as norm
from connectors.hubspot.associations import enricher
from connectors.hubspot.deal_contacts import populate_deal_contacts_from_associations
from connectors.hubspot.limits import RollingWindowLimiter, SearchPacedLimiter
from core.errors import AuthError
from core.sync.http import HttpClient, RetryPolicy
from core.sync.paginators import AfterCursor, KeysetSearch, iterate_pages
from core.sync.protocol import CredentialField, Stream, StreamContext

LIST_PAGE = 100
SEARCH_PAGE = 200
URL_BUDGET = 2000          # characters of the `properties` query value on list requests
CURSOR_MARGIN = 300        # seconds: a list walk's next cursor starts this long before the walk did


def _obj(name, entity, normalize, properties, modified="hs_lastmodifieddate", to=(), related=None,
         on_written=None, object_type=None):
    return {"name": name, "entity": entity, "normalize": normalize, "properties": tuple(properties),
            "modified": modified, "to": tuple(to), "related": related, "on_written": on_written,
            "type": object_type or name}


def _deal_contacts(conn, ctx: StreamContext, by_table: dict[str, list[dict]]) -> dict[str, int]:
    ids = [r["source_id"] for r in by_table.get("deals", []) if r.get("deleted_at") is None]
    n = populate_deal_contacts_from_associations(conn, ctx.workspace_id, ids)
    return {"deal_contacts": n} if n else {}


OBJECTS = (
    _obj("companies", "accounts", norm.normalize_company, norm.COMPANY_PROPERTIES),
    _obj("contacts", "contacts", norm.normalize_contact, norm.CONTACT_PROPERTIES, modified="lastmodifieddate"),
    _obj("deals", "deals", norm.normalize_deal, norm.DEAL_PROPERTIES, to=("contacts", "companies"),
         related=norm.stage_history, on_written=_deal_contacts),
    _obj("calls", "calls", engagements.normalize_call, engagements.properties("calls"),
         to=("deals", "contacts", "companies"), related=engagements.call_activity),
    _obj("meetings", "activities", engagements.normalize_meeting, engagements.properties("meetings"),
         to=("deals", "contacts", "companies")),
    _obj("emails", "activities", engagements.normalize_email, engagements.properties("emails"),
         to=("deals", "contacts", "companies")),
    _obj("notes", "activities", engagements.normalize_note, engagements.properties("notes"),
         to=("deals", "contacts", "companies")),
    _obj("tasks", "tasks", engagements.normalize_task, engagements.properties("tasks"),
         to=("deals", "contacts", "companies")),
)
CUSTOM_PROPERTY_OBJECTS = ("companies", "contacts", "deals")


def iso(epoch: float) -> str:
    """HubSpot's timestamp format, so cursor values compare as text with the ones HubSpot sends."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


def retry_after(response: httpx.Response) -> float | None:
    """How long a HubSpot 429 asks us to wait: the daily cap is a stop (a day), a burst window its length."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    policy = (body or {}).get("policyName") if isinstance(body, dict) else None
    if policy == "DAILY":
        return 86_400.0
    if response.headers.get("Retry-After"):
        return None  # the standard header is read by the client
    if policy in ("TEN_SECONDLY_ROLLING", "SECONDLY"):
        window = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return int(window) / 1000 if window and window.isdigit() else 1.0
    return None


def split_properties(core: list[str], extra: list[str], budget: int) -> tuple[list[str], list[str]]:
    """(properties for the list URL, properties for a batch read): core ones first, as many as fit."""
    in_url, rest, used = [], [], 0
    for name in dict.fromkeys([*core, *extra]):
        if used + len(name) + 1 <= budget:
            in_url.append(name)
            used += len(name) + 1
        else:
            rest.append(name)
    return in_url, rest


class HubSpotConnector:
    name = "hubspot"
    label = "HubSpot"
    credential_fields = [CredentialField(
        "access_token", "Private app access token",
        help="HubSpot → Settings → Integrations → Private apps → your app → Access token (pat-…)")]

    def __init__(self, api_base: str = auth.API_BASE, *, objects: tuple[str, ...] | None = None,
                 list_page: int = LIST_PAGE, search_page: int = SEARCH_PAGE, url_budget: int = URL_BUDGET) -> None:
        self.api_base = api_base.rstrip("/")
        self.oauth = auth.oauth_spec(self.api_base)
        self.objects = tuple(o for o in OBJECTS if objects is None or o["name"] in objects)
        self.list_page = list_page
        self.search_page = search_page
        self.url_budget = url_budget

    # -- connection -------------------------------------------------------------------------------------------
    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
               on_credentials: Callable[[dict[str, Any]], None] | None = None) -> HttpClient:
        token = credentials.get("access_token") or credentials.get("token")
        if not token:
            raise AuthError("No HubSpot access token is stored: reconnect HubSpot", connector=self.name)
        refresher = None
        if credentials.get("refresh_token"):
            client_id, client_secret = auth.app_credentials(credentials)
            refresher = auth.TokenRefresher(credentials, token_url=self.oauth.token_url, client_id=client_id,
                                            client_secret=client_secret, on_credentials=on_credentials,
                                            transport=transport)
        limit, sleep = metadata.get("rate_limit") or {}, sleep or time.sleep
        limiter = SearchPacedLimiter(
            RollingWindowLimiter(int(limit.get("per_10s", 100)), float(limit.get("window", 10.0)), sleep=sleep),
            RollingWindowLimiter(int(limit.get("search_per_second", 4)), 1.0, headroom=1, sleep=sleep))
        return HttpClient(
            metadata.get("base_url") or self.api_base, connector=self.name, label=self.label,
            headers={"Authorization": f"Bearer {token}"}, auth=refresher,
            retry=RetryPolicy(max_attempts=int(limit.get("attempts", 6)), base_delay=0.5, max_delay=10.0),
            rate_limiter=limiter, transport=transport, sleep=sleep, retry_after_from=retry_after,
        )

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """The portal behind the token (`/account-info/v3/details`): portal id, currency, time zone."""
        info = client.get_json("/account-info/v3/details") or {}
        return {"portal_id": str(info.get("portalId")) if info.get("portalId") is not None else None,
                "currency": info.get("companyCurrency"), "time_zone": info.get("timeZone"),
                "ui_domain": info.get("uiDomain")}

    def list_users(self, client: HttpClient) -> list[dict[str, Any]]:
        return [{"id": k, **v} for k, v in self._owners(client).items()]

    # -- metadata ---------------------------------------------------------------------------------------------
    def _walk(self, client: HttpClient, path: str, params: dict | None = None):
        for page in iterate_pages(client, method="GET", path=path, paginator=AfterCursor(),
                                  records_path="results", params=params):
            yield from page.records

    def _owners(self, client: HttpClient) -> dict[str, dict[str, Any]]:
        owners: dict[str, dict[str, Any]] = {}
        for archived in ("false", "true"):  # departed reps still own old deals
            for o in self._walk(client, "/crm/v3/owners", {"limit": 100, "archived": archived}):
                name = " ".join(p for p in (o.get("firstName"), o.get("lastName")) if p) or None
                owners.setdefault(str(o["id"]), {"name": name or o.get("email"), "email": o.get("email"),
                                                 "active": archived == "false",
                                                 "teams": [t.get("name") for t in o.get("teams") or []]})
        return owners

    def prepare(self, client: HttpClient, ctx: StreamContext) -> dict[str, Any]:
        """Owners, deal pipelines and stages, custom property definitions (→ connections.metadata)."""
        stages: dict[str, dict[str, Any]] = {}
        pipelines: dict[str, str] = {}
        for pipeline in (client.get_json("/crm/v3/pipelines/deals") or {}).get("results") or []:
            pipelines[str(pipeline["id"])] = pipeline.get("label") or str(pipeline["id"])
            for stage in pipeline.get("stages") or []:
                meta = stage.get("metadata") or {}
                probability = norm.v.number(meta.get("probability"))
                closed = str(meta.get("isClosed")).lower() == "true"
                stages[str(stage["id"])] = {
                    "label": stage.get("label"), "pipeline": str(pipeline["id"]), "closed": closed,
                    "won": (probability == 1) if closed and probability is not None else None,
                    "probability": float(probability) if probability is not None else None,
                    "order": stage.get("displayOrder")}
        custom: dict[str, dict[str, str]] = {}
        for object_type in CUSTOM_PROPERTY_OBJECTS:
            defs = (client.get_json(f"/crm/v3/properties/{object_type}") or {}).get("results") or []
            custom[object_type] = {d["name"]: d.get("type") or "string" for d in defs
                                   if d.get("hubspotDefined") is not True and not d.get("calculated")}
        return {"owners": self._owners(client), "pipelines": pipelines, "deal_stages": stages,
                "custom_properties": custom}

    # -- streams ----------------------------------------------------------------------------------------------
    def streams(self, ctx: StreamContext) -> list[Stream]:
        live = [self._stream(spec, ctx) for spec in self.objects]
        archived = [self._archived_stream(spec, ctx) for spec in self.objects]
        return live + archived

    def _properties(self, spec: dict, ctx: StreamContext) -> tuple[list[str], list[str]]:
        core = list(spec["properties"])
        extra = list(((ctx.metadata.get("custom_properties") or {}).get(spec["type"]) or {}))
        if spec["name"] == "deals":
            extra += norm.stage_history_properties(ctx)
        return core, extra

    def _stream(self, spec: dict, ctx: StreamContext) -> Stream:
        core, extra = self._properties(spec, ctx)
        state = ctx.cursors.get(spec["name"]) or {}
        page = state.get("page")
        use_search = ("mode" in page) if isinstance(page, dict) else bool(state.get("cursor")) and not ctx.full
        modified = spec["modified"]
        common = dict(name=spec["name"], entity=spec["entity"], normalize=spec["normalize"],
                      cursor_field=f"properties.{modified}", related=spec["related"],
                      on_written=spec["on_written"], records_path="results")
        if use_search:
            return Stream(
                **common, path=f"/crm/v3/objects/{spec['type']}/search", method="POST",
                paginator=KeysetSearch(modified),
                body={"properties": [*core, *extra], "limit": self.search_page,
                      "sorts": [{"propertyName": modified, "direction": "ASCENDING"}]},
                since=lambda since: {"json": {"filterGroups": [{"filters": [
                    {"propertyName": modified, "operator": "GTE", "value": since}]}]}},
                enrich=enricher(spec["type"], spec["to"], []) if spec["to"] else None,
            )
        in_url, rest = split_properties(core, extra, self.url_budget)
        return Stream(
            **common, path=f"/crm/v3/objects/{spec['type']}", paginator=AfterCursor(),
            params={"limit": self.list_page, "properties": ",".join(in_url), "archived": "false"},
            enrich=enricher(spec["type"], spec["to"], rest) if (spec["to"] or rest) else None,
            cursor_ceiling=lambda started: iso(started - CURSOR_MARGIN),
        )

    def _archived_stream(self, spec: dict, ctx: StreamContext) -> Stream:
        """Archived records (the list with archived=true, read whole every run: search never returns them)
        become soft deletes. Association-derived references are left as they were."""
        core, _extra = self._properties(spec, ctx)
        in_url, _rest = split_properties(core, [], self.url_budget)
        normalize, related = spec["normalize"], spec["related"]

        def archived(record: dict, c: StreamContext) -> dict:
            return _strip(normalize(record, c))

        def archived_related(record: dict, c: StreamContext):
            for table, row in related(record, c):
                if table != "deal_stage_history":  # history of a deleted deal stays as it was
                    yield table, _strip(row)

        return Stream(name=f"{spec['name']}_archived", entity=spec["entity"], normalize=archived,
                      related=archived_related if related else None,
                      path=f"/crm/v3/objects/{spec['type']}", paginator=AfterCursor(), records_path="results",
                      params={"limit": self.list_page, "properties": ",".join(in_url), "archived": "true"})


def _strip(row: dict) -> dict:
    """An archived record's row without what only a live read knows (associations, custom properties)."""
    for key in ("account_source_id", "deal_source_id", "contact_source_id", "custom_fields", "source_data"):
        row.pop(key, None)
    return row


def register() -> HubSpotConnector:
    from core.sync import registry

    return registry.register(HubSpotConnector())

"""The Salesforce connector: OAuth credentials on the org's instance URL, and its streams declared for the engine.

Before the streams (`prepare`, stored in connection metadata): the org's custom fields per object from the
sobject describe (cached; described again on a full sync or when missing), the user directory (`owners`) and the
opportunity stages with their closed/won flags and probabilities (`deal_stages`, read by stage normalization).

Streams, in order (each on `/query` by nextRecordsUrl, ordered by (SystemModstamp, Id), incremental on
SystemModstamp with an overlap window — see `soql`):
  Account → accounts, Contact → contacts, Opportunity (with its contact roles) → deals, opportunities whose
  contact roles changed → deals again (a role change does not touch the opportunity's own modstamp),
  Lead → leads (converted_*_source_id), Task and Event → activities, OpportunityHistory → deal_stage_history;
  then one `/queryAll … IsDeleted = true` stream per deletable object, which writes the same full row with
  deleted_at set (merged losers keep MasterRecordId for the merge step in `steps`).
It never writes to the database itself: the engine commits pages and cursors, `steps` runs after the sync.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx

from core.errors import AuthError
from core.sync.http import HttpClient
from core.sync.paginators import NextUrl, iterate_pages
from core.sync.protocol import CredentialField, Stream, StreamContext
from connectors.salesforce import normalize as n
from connectors.salesforce.client import LABEL, LimitGuard, TokenRefresher
from connectors.salesforce.oauth import oauth_spec
from connectors.salesforce.soql import API, DEFAULT_OVERLAP, QUERY, QUERY_ALL, literal, modified_since, select

# (stream name, sobject, entity table, normalize)
OBJECTS = (
    ("accounts", "Account", "accounts", n.account),
    ("contacts", "Contact", "contacts", n.contact),
    ("opportunities", "Opportunity", "deals", n.deal),
    ("leads", "Lead", "leads", n.lead),
    ("tasks", "Task", "activities", n.task),
    ("events", "Event", "activities", n.event),
    ("opportunity_history", "OpportunityHistory", "deal_stage_history", n.stage_history),
)
DELETABLE = ("Account", "Contact", "Opportunity", "Lead", "Task", "Event")  # also the objects with custom fields
ROLES_STREAM = "opportunity_contact_roles"
_ROLES_CHANGED = "Id IN (SELECT OpportunityId FROM OpportunityContactRole WHERE {since})"


def _sf_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class SalesforceConnector:
    name = "salesforce"
    label = LABEL
    credential_fields = [
        CredentialField("instance_url", "Instance URL", secret=False,
                        help="Your org's address, e.g. https://acme.my.salesforce.com"),
        CredentialField("access_token", "Access token"),
        CredentialField("refresh_token", "Refresh token", required=False,
                        help="Lets Pandora renew the session; without it you reconnect when it expires"),
    ]

    def __init__(self, *, batch_size: int = 2000, pause_at: float = 0.95) -> None:
        self.batch_size = batch_size
        self.pause_at = pause_at
        self.oauth = oauth_spec()

    def client(self, credentials: dict[str, Any], metadata: dict[str, Any], *,
               transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] | None = None,
               on_credentials: Callable[[dict], None] | None = None) -> HttpClient:
        instance_url = (credentials.get("instance_url") or "").rstrip("/")
        if not instance_url or not credentials.get("access_token"):
            raise AuthError("Salesforce needs the org's instance URL and an access token (connecting with "
                            "Salesforce's login stores both): reconnect Salesforce", connector=self.name)
        batch = int(metadata.get("batch_size") or self.batch_size)
        return HttpClient(
            instance_url, connector=self.name, label=self.label, transport=transport,
            headers={"Authorization": f"Bearer {credentials['access_token']}",
                     "Sforce-Query-Options": f"batchSize={batch}"},
            auth=TokenRefresher(credentials, on_credentials=on_credentials, transport=transport, sleep=sleep),
            on_response=LimitGuard(float(metadata.get("pause_at") or self.pause_at)),
            sleep=sleep or time.sleep,
        )

    def check_auth(self, client: HttpClient) -> dict[str, Any]:
        """The org: id, name and default currency (amounts without their own CurrencyIsoCode are in it)."""
        org = client.get_json(QUERY, params={"q": "SELECT Id, Name, DefaultCurrencyIsoCode FROM Organization"})
        record = (org.get("records") or [{}])[0]
        return {"org_id": record.get("Id"), "org_name": record.get("Name"),
                "currency": record.get("DefaultCurrencyIsoCode")}

    # --- before the streams ------------------------------------------------------------------------------------

    def _query_all_pages(self, client: HttpClient, soql: str) -> list[dict[str, Any]]:
        return [r for page in iterate_pages(client, method="GET", path=QUERY, paginator=NextUrl(),
                                            records_path="records", params={"q": soql}) for r in page.records]

    def _org_fields(self, client: HttpClient, sobject: str) -> list[str]:
        payload = client.get_json(f"{API}/sobjects/{sobject}/describe") or {}
        return [f["name"] for f in payload.get("fields", []) if isinstance(f, dict)
                and (f.get("custom") or f.get("name") == "CurrencyIsoCode")
                and f.get("type") not in ("address", "location")]  # compound fields cannot be selected

    def prepare(self, client: HttpClient, ctx: StreamContext) -> dict[str, Any]:
        patch: dict[str, Any] = {"account": self.check_auth(client)}  # the org's default currency may change
        cached = ctx.metadata.get("org_fields")
        if ctx.full or not isinstance(cached, dict) or any(s not in cached for s in DELETABLE):
            patch["org_fields"] = {sobject: self._org_fields(client, sobject) for sobject in DELETABLE}
            patch["org_fields_described_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        users = self._query_all_pages(client, "SELECT Id, Name, Email, Title, IsActive FROM User ORDER BY Id")
        patch["owners"] = [{"id": u["Id"], "name": u.get("Name"), "email": u.get("Email"), "title": u.get("Title"),
                            "active": u.get("IsActive")} for u in users]
        stages = self._query_all_pages(client, "SELECT ApiName, MasterLabel, IsClosed, IsWon, DefaultProbability,"
                                               " ForecastCategoryName, SortOrder FROM OpportunityStage ORDER BY SortOrder")
        patch["deal_stages"] = {s["ApiName"]: {"label": s.get("MasterLabel"), "closed": s.get("IsClosed"),
                                               "won": s.get("IsWon"), "probability": s.get("DefaultProbability"),
                                               "forecast_category": s.get("ForecastCategoryName")} for s in stages}
        return patch

    # --- streams -----------------------------------------------------------------------------------------------

    def streams(self, ctx: StreamContext) -> list[Stream]:
        overlap = timedelta(seconds=float(ctx.metadata.get("overlap_seconds") or DEFAULT_OVERLAP.total_seconds()))
        org_fields = ctx.metadata.get("org_fields") or {}

        def stream(name: str, sobject: str, entity: str, normalize, *, path: str = QUERY, where: tuple = (),
                   since_where: Callable[[str], tuple] | None = None, cursor: str = "SystemModstamp",
                   ceiling: Callable[[float], Any] | None = None) -> Stream:
            extra = org_fields.get(sobject) or ()
            since_where = since_where or (lambda c: (*where, modified_since(c, overlap)))
            return Stream(name=name, entity=entity, path=path, paginator=NextUrl(), normalize=normalize,
                          records_path="records", params={"q": select(sobject, *where, org_fields=extra)},
                          cursor_field=cursor, cursor_ceiling=ceiling,
                          since=lambda c: {"params": {"q": select(sobject, *since_where(c), org_fields=extra)}})

        streams = [stream(*spec) for spec in OBJECTS]
        # Contact roles changed since the cursor: re-read their opportunities (with all their roles). The first
        # or a full run reads every opportunity anyway, so it only looks back one overlap window and leaves its
        # cursor at the walk's start (cursor_ceiling), from where the next run continues.
        first = ctx.full or not (ctx.cursors.get(ROLES_STREAM) or {}).get("cursor")
        since_now = literal(datetime.now(timezone.utc) - overlap)
        streams.insert(3, stream(
            ROLES_STREAM, "Opportunity", "deals", n.deal,
            where=(_ROLES_CHANGED.format(since=f"SystemModstamp >= {since_now}"),) if first else (),
            since_where=lambda c: (_ROLES_CHANGED.format(since=modified_since(c, overlap)),),
            cursor="OpportunityContactRoles.records.0.SystemModstamp", ceiling=_sf_time))
        streams += [stream(f"{name}_deleted", sobject, entity, normalize, path=QUERY_ALL, where=("IsDeleted = true",))
                    for name, sobject, entity, normalize in OBJECTS if sobject in DELETABLE]
        return streams

"""A local fake of one Salesforce org (REST API v63.0 + the OAuth token endpoint), for the connector's tests.

What it reproduces (shapes from ../shared/fixtures/salesforce): SOQL over `/query` and `/queryAll` (the subset
in `salesforce_soql`), results snapshotted when the query runs and paged by `nextRecordsUrl`
(`/services/data/v63.0/query/01gFAKE…-<offset>`, `done: false` until the last page; batch size from the
`Sforce-Query-Options: batchSize=N` header); `/queryAll` also returns deleted rows (`IsDeleted: true`, merged
losers with `MasterRecordId`); relationship fields (`Owner.Name`) and child subqueries (`OpportunityContactRoles`);
`/sobjects/<Object>/describe` with the org's custom `__c` fields; `POST /services/oauth2/token` for the
authorization_code and refresh_token grants; 401 `INVALID_SESSION_ID` for an unknown or expired token;
`Sforce-Limit-Info: api-usage=used/limit` on every API response and 403 `REQUEST_LIMIT_EXCEEDED` past the cap;
scripted failures (429/503) and a page that blocks (to kill a sync mid-walk). Errors use Salesforce's JSON array
envelope. Datetimes look like 2026-05-01T07:25:37.000+0000 and come from `tick` (whole seconds, strictly increasing).

Every knob is a plain attribute a test may change while the server runs; it never listens beyond 127.0.0.1.
"""
from __future__ import annotations

import copy
import itertools
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.salesforce_soql import Query, SoqlError, matches, parse, sort_key
from tests.fakes.server import FakeServer, send_json

API = "/services/data/v63.0"
CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"

# Standard fields per object (what describe lists and what SOQL may select), besides the org's custom ones.
COMMON = ["Id", "OwnerId", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"]
SCHEMA: dict[str, list[str]] = {
    "Organization": ["Id", "Name", "DefaultCurrencyIsoCode", "IsSandbox"],
    "User": ["Id", "Name", "Email", "IsActive", "UserType", "Title", "LastModifiedDate", "SystemModstamp"],
    "Account": COMMON + ["Name", "Website", "Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCity",
                         "BillingState", "BillingCountry", "Type", "ParentId", "MasterRecordId"],
    "Contact": COMMON + ["FirstName", "LastName", "Email", "Title", "Phone", "Department", "AccountId",
                         "MasterRecordId"],
    "Opportunity": COMMON + ["Name", "StageName", "Amount", "CloseDate", "Probability", "ForecastCategoryName",
                             "IsClosed", "IsWon", "Type", "LeadSource", "NextStep", "AccountId"],
    "OpportunityContactRole": ["Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "IsDeleted",
                               "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "Lead": COMMON + ["FirstName", "LastName", "Email", "Title", "Phone", "Company", "Website", "Industry",
                      "NumberOfEmployees", "Status", "LeadSource", "Rating", "IsConverted", "ConvertedDate",
                      "ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId", "MasterRecordId"],
    "Task": COMMON + ["Subject", "Description", "ActivityDate", "Status", "TaskSubtype", "CallType",
                      "CallDurationInSeconds", "WhoId", "WhatId", "AccountId"],
    "Event": COMMON + ["Subject", "Description", "StartDateTime", "EndDateTime", "DurationInMinutes", "WhoId",
                       "WhatId", "AccountId"],
    "OpportunityStage": ["Id", "ApiName", "MasterLabel", "IsActive", "IsClosed", "IsWon", "DefaultProbability",
                         "ForecastCategoryName", "SortOrder", "IsDeleted", "SystemModstamp"],
    "OpportunityHistory": ["Id", "OpportunityId", "StageName", "Amount", "CloseDate", "Probability",
                           "ForecastCategory", "CreatedById", "CreatedDate", "IsDeleted", "SystemModstamp"],
}
PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "Task": "00T", "Event": "00U",
          "OpportunityContactRole": "00K", "OpportunityHistory": "008", "OpportunityStage": "01J", "User": "005", "Organization": "00D"}
# The stages a new org comes with: (name, default probability, forecast category, closed, won).
DEFAULT_STAGES = [
    ("Prospecting", 10.0, "Pipeline", False, False), ("Qualification", 10.0, "Pipeline", False, False),
    ("Needs Analysis", 20.0, "Pipeline", False, False), ("Value Proposition", 50.0, "Pipeline", False, False),
    ("Proposal/Price Quote", 75.0, "Pipeline", False, False), ("Negotiation/Review", 90.0, "Pipeline", False, False),
    ("Closed Won", 100.0, "Closed", True, True), ("Closed Lost", 0.0, "Omitted", True, False),
]
# Relationship name → (reference field, referenced object); child relationship → (child object, its parent field).
PARENTS = {"Owner": ("OwnerId", "User"), "Account": ("AccountId", "Account")}
CHILDREN = {"OpportunityContactRoles": ("OpportunityContactRole", "OpportunityId")}


def sf_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _error(code: str, message: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


class SalesforceApi(FakeServer):
    """One org. `with SalesforceApi() as sf:`; the API host (instance_url) and the login host are both `sf.url`."""

    def __init__(self, *, org_id: str = "00DFAKE000000001", api_limit: int = 100_000, batch_size: int = 2000,
                 currency_field: bool = False) -> None:
        super().__init__()
        self.org_id = org_id
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMA}
        self.custom_fields: dict[str, list[str]] = {name: [] for name in SCHEMA}
        # A multi-currency org has CurrencyIsoCode on every money-bearing object.
        currency = ["CurrencyIsoCode"] if currency_field else []
        self.extra_fields = {name: list(currency) for name in ("Account", "Opportunity", "Lead", "OpportunityHistory")}
        self.clock = datetime.now(timezone.utc).replace(microsecond=0)
        self.api_used, self.api_limit = 0, api_limit
        self.batch_size = batch_size
        self.access_tokens: set[str] = set()
        self.refresh_tokens: dict[str, str] = {}  # refresh token → org
        self.codes: dict[str, str] = {}           # authorization code → refresh token it yields
        self.fail_plan: list[dict[str, Any]] = []
        self.block_on_locator_page: int | None = None  # block serving this page number of a query …
        self.block_sobject = "Opportunity"               # … on this object (None: any query)
        self.blocked, self.release = threading.Event(), threading.Event()
        self.requests: list[dict[str, Any]] = []
        self._cursors: dict[str, tuple[list[dict[str, Any]], int, str, str]] = {}  # locator → (rows, batch, resource, sobject)
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.add("Organization", {"Name": f"Org {org_id[-4:]}", "DefaultCurrencyIsoCode": "USD", "IsSandbox": False},
                 id=org_id)
        for order, (name, probability, category, closed, won) in enumerate(DEFAULT_STAGES, 1):
            self.add("OpportunityStage", {"ApiName": name, "MasterLabel": name, "IsActive": True, "IsClosed": closed,
                                          "IsWon": won, "DefaultProbability": probability,
                                          "ForecastCategoryName": category, "SortOrder": order})

    # --- data ----------------------------------------------------------------------------------------------

    def fields_of(self, sobject: str) -> list[str]:
        return SCHEMA[sobject] + self.extra_fields.get(sobject, []) + self.custom_fields[sobject]

    def tick(self, seconds: int = 1) -> str:
        """The next modstamp: at least a second after the last one and never behind the real clock (the
        connector compares modstamps with its own clock), so records added later always sort later."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        self.clock = max(self.clock + timedelta(seconds=seconds), now)
        return sf_time(self.clock)

    def add(self, sobject: str, values: dict[str, Any], *, id: str | None = None, same_time: bool = False) -> str:
        """Insert a record; system fields are filled in. `same_time` gives it the previous record's modstamp."""
        with self._lock:
            record_id = id or f"{PREFIX[sobject]}FAKE{next(self._ids):011d}AAA"[:18]
            stamp = sf_time(self.clock) if same_time else self.tick()
            record = {f: None for f in self.fields_of(sobject)}
            record.update({"Id": record_id, "IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp,
                           "SystemModstamp": stamp})
            if sobject == "Opportunity":
                record.update(IsClosed=False, IsWon=False)
            if sobject == "Lead":
                record["IsConverted"] = False
            record.update(values)
            self.records[sobject][record_id] = record
            return record_id

    def update(self, sobject: str, record_id: str, **values: Any) -> str:
        with self._lock:
            stamp = self.tick()
            self.records[sobject][record_id].update(values, LastModifiedDate=stamp, SystemModstamp=stamp)
            return stamp

    def delete(self, sobject: str, record_id: str, *, master: str | None = None) -> None:
        with self._lock:
            stamp = self.tick()
            self.records[sobject][record_id].update(IsDeleted=True, SystemModstamp=stamp)
            if master is not None:
                self.records[sobject][record_id]["MasterRecordId"] = master

    def merge(self, sobject: str, winner: str, loser: str) -> None:
        """Salesforce's merge: the loser is deleted with MasterRecordId = winner, its children reparented."""
        ref = {"Account": "AccountId", "Contact": "ContactId"}.get(sobject)
        with self._lock:
            for child in ("Contact", "Opportunity", "Task", "Event", "OpportunityContactRole"):
                for rec in self.records[child].values():
                    for field in (ref, "WhoId", "WhatId"):
                        if field in rec and rec[field] == loser:
                            stamp = self.tick()
                            rec.update({field: winner, "SystemModstamp": stamp, "LastModifiedDate": stamp})
            self.delete(sobject, loser, master=winner)

    def expire_query_locators(self) -> None:
        """What Salesforce does to a query cursor left idle for ~15 minutes: its nextRecordsUrl becomes a 400."""
        self._cursors.clear()

    def expire_tokens(self) -> None:
        """Every issued access token stops working (a session timeout); refresh tokens still do."""
        with self._lock:
            self.access_tokens.clear()

    def issue_code(self, code: str = "auth-code-1") -> str:
        self.codes[code] = f"refresh-{self.org_id}-{len(self.codes) + 1}"
        return code

    def grant(self, refresh_token: str | None = None) -> dict[str, Any]:
        """Credentials as if the OAuth flow had just run (what the connector stores)."""
        refresh_token = refresh_token or f"refresh-{self.org_id}-direct"
        self.refresh_tokens[refresh_token] = self.org_id
        token = self._new_access_token()
        return {"access_token": token, "refresh_token": refresh_token, "instance_url": self.url,
                "login_url": self.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def _new_access_token(self) -> str:
        token = f"{self.org_id}!AQ{next(self._ids):06d}"
        self.access_tokens.add(token)
        return token

    # --- HTTP ----------------------------------------------------------------------------------------------

    def on_stop(self) -> None:
        self.release.set()

    def handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        with self._lock:
            self.requests.append({"method": "POST", "path": split.path, "grant_type": form.get("grant_type")})
        if split.path != "/services/oauth2/token":
            return send_json(handler, 404, _error("NOT_FOUND", "The requested resource does not exist"))
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return send_json(handler, 400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        grant = form.get("grant_type")
        with self._lock:
            if grant == "authorization_code" and form.get("code") in self.codes:
                refresh = self.codes.pop(form["code"])
                self.refresh_tokens[refresh] = self.org_id
            elif grant == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
                refresh = None
            else:
                return send_json(handler, 400, {"error": "invalid_grant",
                                                "error_description": "expired access/refresh token"})
            body = {"access_token": self._new_access_token(), "signature": "ZmFrZQ==", "scope": "refresh_token api id",
                    "instance_url": self.url, "id": f"https://login.salesforce.com/id/{self.org_id}/005FAKE",
                    "token_type": "Bearer", "issued_at": "1778052337000"}
            if refresh:
                body["refresh_token"] = refresh
        send_json(handler, 200, body)

    def handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append({"method": "GET", "path": split.path, "q": query.get("q")})
            failure = self._next_failure()
            token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
            authorized = token in self.access_tokens
            if authorized and failure is None:
                self.api_used += 1
            limit = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}
        if failure is not None:
            return send_json(handler, failure["status"], failure.get("body", _error("SERVER_ERROR", "scripted")),
                             {**limit, **failure.get("headers", {})})
        if not authorized:
            return send_json(handler, 401, _error("INVALID_SESSION_ID", "Session expired or invalid"))
        if self.api_used > self.api_limit:
            return send_json(handler, 403, _error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), limit)
        try:
            status, body = self._route(split.path, query, handler.headers.get("Sforce-Query-Options") or "")
        except SoqlError as exc:
            status, body = 400, _error(exc.code, str(exc))
        send_json(handler, status, body, limit)

    def _next_failure(self) -> dict[str, Any] | None:
        if not self.fail_plan:
            return None
        failure = self.fail_plan[0]
        failure["times"] = failure.get("times", 1) - 1
        if failure["times"] <= 0:
            self.fail_plan.pop(0)
        return failure

    def _route(self, path: str, query: dict[str, str], options: str) -> tuple[int, Any]:
        if path in (f"{API}/query", f"{API}/queryAll"):
            if "q" not in query:
                return 400, _error("MALFORMED_QUERY", "q is required")
            batch = self.batch_size
            if "batchSize=" in options:
                batch = int(options.split("batchSize=", 1)[1].split(",")[0])
            return 200, self._run_query(query["q"], include_deleted=path.endswith("queryAll"), batch=batch)
        if path.startswith(f"{API}/query/") or path.startswith(f"{API}/queryAll/"):
            return self._next_page(path.rsplit("/", 1)[1])
        if path.startswith(f"{API}/sobjects/") and path.endswith("/describe"):
            return self._describe(path.split("/")[-2])
        return 404, _error("NOT_FOUND", "The requested resource does not exist")

    def _describe(self, sobject: str) -> tuple[int, Any]:
        if sobject not in SCHEMA:
            return 404, _error("NOT_FOUND", "The requested resource does not exist")
        fields = [{"name": f, "label": f.removesuffix("__c").replace("_", " "), "custom": f.endswith("__c"),
                   "type": "string", "nillable": True} for f in self.fields_of(sobject)]
        return 200, {"name": sobject, "label": sobject, "keyPrefix": PREFIX[sobject], "queryable": True,
                     "fields": fields}

    # --- SOQL ----------------------------------------------------------------------------------------------

    def _select(self, q: Query, include_deleted: bool) -> list[dict[str, Any]]:
        if q.sobject not in SCHEMA:
            raise SoqlError("INVALID_TYPE", f"sObject type '{q.sobject}' is not supported.")
        known = set(self.fields_of(q.sobject))
        for name in q.fields + [c.field for c in q.where] + [o[0] for o in q.order]:
            head = name.split(".", 1)[0]
            if name not in known and not ("." in name and head in PARENTS):
                raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{q.sobject}'.")
        rows = [r for r in self.records[q.sobject].values() if include_deleted or not r["IsDeleted"]]
        rows = [r for r in rows if all(matches(r, c, self._ids_of) for c in q.where)]
        if q.order:
            rows.sort(key=sort_key(q.order))
        return rows[:q.limit] if q.limit is not None else rows

    def _ids_of(self, sub: Query) -> set[Any]:
        return {r.get(sub.fields[0]) for r in self._select(sub, include_deleted=False)}

    def _shape(self, sobject: str, record: dict[str, Any], q: Query) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"{API}/sobjects/{sobject}/{record['Id']}"}}
        for name in q.fields:
            if "." in name:
                rel, sub = name.split(".", 1)
                ref_field, target = PARENTS[rel]
                parent = self.records[target].get(record.get(ref_field) or "")
                if parent is None:
                    out[rel] = None
                    continue
                node = out.get(rel) or {"attributes": {"type": target, "url": f"{API}/sobjects/{target}/{parent['Id']}"}}
                node[sub] = parent.get(sub)
                out[rel] = node
            else:
                out[name] = record.get(name)
        for child in q.children:
            child_object, parent_field = CHILDREN[child.sobject]
            sub = Query(child_object, child.fields, [], child.where, child.order, child.limit)
            kids = [k for k in self._select(sub, include_deleted=False) if k.get(parent_field) == record["Id"]]
            out[child.sobject] = ({"totalSize": len(kids), "done": True,
                                   "records": [self._shape(child_object, k, sub) for k in kids]} if kids else None)
        return out

    def _run_query(self, text: str, *, include_deleted: bool, batch: int) -> dict[str, Any]:
        q = parse(text)
        with self._lock:
            rows = [copy.deepcopy(self._shape(q.sobject, r, q)) for r in self._select(q, include_deleted)]
            locator = f"01gFAKE{len(self._cursors) + 1:08d}"
            # A snapshot: records changed after this moment never show up in this walk (as in Salesforce).
            self._cursors[locator] = (rows, batch, "queryAll" if include_deleted else "query", q.sobject)
        return self._page(locator, 0)

    def _page(self, locator: str, offset: int) -> dict[str, Any]:
        rows, batch, resource, _ = self._cursors[locator]
        body: dict[str, Any] = {"totalSize": len(rows), "done": offset + batch >= len(rows),
                                "records": rows[offset:offset + batch]}
        if not body["done"]:
            body["nextRecordsUrl"] = f"{API}/{resource}/{locator}-{offset + batch}"
        return body

    def _next_page(self, token: str) -> tuple[int, Any]:
        locator, _, offset = token.rpartition("-")
        if locator not in self._cursors or not offset.isdigit():
            return 400, _error("INVALID_QUERY_LOCATOR", "invalid query locator")
        _, batch, _, sobject = self._cursors[locator]
        if self.block_on_locator_page == int(offset) // batch + 1 and self.block_sobject in (None, sobject):
            self.blocked.set()
            self.release.wait()
        return 200, self._page(locator, int(offset))


def dump(body: Any) -> str:  # handy when a test fails
    return json.dumps(body, indent=2, default=str)

"""The SOQL the Salesforce connector sends: one field list per object, and the incremental window.

Every stream reads its object ordered by (SystemModstamp, Id), so records arrive in cursor order and records
sharing a modstamp keep a stable order. An incremental run asks for `SystemModstamp >= cursor - overlap`: rows
committed late with an older modstamp (long transactions, triggers) are still caught, and ties on the cursor
value are read again rather than skipped; re-reading is harmless because the write path skips unchanged rows.

The org's own fields (`__c`, and CurrencyIsoCode in multi-currency orgs) come from the sobject describe the
connector caches in metadata and are appended to the standard list: SOQL's FIELDS(CUSTOM) would do it, but
Salesforce only accepts that with LIMIT 200. This module builds text only: it never sends a request.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

API_VERSION = "v63.0"
API = f"/services/data/{API_VERSION}"
QUERY, QUERY_ALL = f"{API}/query", f"{API}/queryAll"
DEFAULT_OVERLAP = timedelta(minutes=10)

_SYSTEM = ["IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"]
_OWNER = ["OwnerId", "Owner.Name", "Owner.Email"]
# Contact roles ride along with their opportunity (newest first: its modstamp is the roles stream's cursor).
ROLES = ("(SELECT Id, ContactId, Role, IsPrimary, SystemModstamp FROM OpportunityContactRoles"
         " ORDER BY SystemModstamp DESC)")

FIELDS: dict[str, list[str]] = {
    "Account": ["Id", "Name", "Website", "Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCity",
                "BillingState", "BillingCountry", "Type", "ParentId", "MasterRecordId", *_OWNER, *_SYSTEM],
    "Contact": ["Id", "FirstName", "LastName", "Email", "Title", "Phone", "Department", "AccountId",
                "Account.Name", "MasterRecordId", *_OWNER, *_SYSTEM],
    "Opportunity": ["Id", "Name", "StageName", "Amount", "CloseDate", "Probability", "ForecastCategoryName",
                    "IsClosed", "IsWon", "Type", "LeadSource", "NextStep", "AccountId", "Account.Name", *_OWNER,
                    *_SYSTEM, ROLES],
    "Lead": ["Id", "FirstName", "LastName", "Email", "Title", "Phone", "Company", "Website", "Industry",
             "NumberOfEmployees", "Status", "LeadSource", "Rating", "IsConverted", "ConvertedDate",
             "ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId", "MasterRecordId", *_OWNER,
             *_SYSTEM],
    "Task": ["Id", "Subject", "Description", "ActivityDate", "Status", "TaskSubtype", "CallType",
             "CallDurationInSeconds", "WhoId", "WhatId", "AccountId", *_OWNER, *_SYSTEM],
    "Event": ["Id", "Subject", "Description", "StartDateTime", "EndDateTime", "DurationInMinutes", "WhoId",
              "WhatId", "AccountId", *_OWNER, *_SYSTEM],
    "OpportunityHistory": ["Id", "OpportunityId", "StageName", "Amount", "CloseDate", "Probability",
                           "ForecastCategory", "CreatedById", "CreatedDate", "IsDeleted", "SystemModstamp"],
}
ORDER = "ORDER BY SystemModstamp, Id"


def select(sobject: str, *where: str, org_fields: list[str] | tuple[str, ...] = ()) -> str:
    """`SELECT <fields> FROM <sobject> [WHERE a AND b] ORDER BY SystemModstamp, Id`; `org_fields` (the org's
    custom fields) go before any child subquery."""
    fields = [f for f in FIELDS[sobject] if not f.startswith("(")]
    fields += [f for f in org_fields if f not in fields]
    fields += [f for f in FIELDS[sobject] if f.startswith("(")]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {', '.join(fields)} FROM {sobject}{clause} {ORDER}"


def parse_time(value: str) -> datetime:
    """Salesforce's 2026-05-01T07:25:37.000+0000 (no colon in the offset), or any ISO-8601 form."""
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def literal(when: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC, whole seconds: the overlap makes truncation harmless)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def modified_since(cursor: str, overlap: timedelta = DEFAULT_OVERLAP) -> str:
    return f"SystemModstamp >= {literal(parse_time(cursor) - overlap)}"

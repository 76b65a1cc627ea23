"""Salesforce records → Pandora entity rows (one function per object).

Salesforce sends typed JSON (numbers, booleans, null) with datetimes like 2026-05-01T07:25:37.000+0000 and
dates like 2026-05-01; owners come in as the `Owner` relationship (Name, Email) the queries select. Every row
keeps the raw record in `source_data` (the `attributes` envelope dropped), the org's `__c` fields in
`custom_fields`, and `deleted_at` = SystemModstamp when `/queryAll` returned it deleted (a merged loser also
carries `MasterRecordId`, which the merge step follows). References stay Salesforce ids in the `*_source_id`
columns; the post-sync `resolve_references` step turns them into our row ids.

These functions are pure: no database, no HTTP. They never set columns the post-sync steps own
(stage_normalized, account_id, scores).
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from core.stages import to_percent
from core.sync.protocol import StreamContext
from connectors.salesforce.soql import parse_time

SOURCE = "salesforce"
# Salesforce id prefixes of the records an activity can point at (WhoId / WhatId are polymorphic).
CONTACT, ACCOUNT, OPPORTUNITY, LEAD = "003", "001", "006", "00Q"
FORECAST = {"closed": "closed", "commit": "commit", "best case": "best_case", "pipeline": "pipeline",
            "omitted": "not_forecasted"}


def _ts(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) and value else None


def _date(value: Any) -> date | None:
    return date.fromisoformat(value[:10]) if isinstance(value, str) and value else None


def _money(value: Any) -> Decimal | None:
    return None if value is None or isinstance(value, bool) else Decimal(str(value)).quantize(Decimal("0.01"))


def _int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def _owner(record: dict[str, Any]) -> tuple[str | None, str | None]:
    owner = record.get("Owner") or {}
    return owner.get("Name"), owner.get("Email")


def _prefix(record_id: Any, prefix: str) -> str | None:
    return record_id if isinstance(record_id, str) and record_id.startswith(prefix) else None


def domain_of(website: Any) -> str | None:
    """acme.example.com from 'https://www.acme.example.com/about' (None for an empty website)."""
    if not isinstance(website, str) or not website.strip():
        return None
    text = website.strip()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    return host.removeprefix("www.") or None


def _base(record: dict[str, Any]) -> dict[str, Any]:
    """source, source_id, timestamps, deletion, raw record and custom fields: what every row carries."""
    raw = {k: v for k, v in record.items() if k != "attributes"}
    return {
        "source": SOURCE,
        "source_id": record["Id"],
        "source_created_at": _ts(record.get("CreatedDate")),
        "source_updated_at": _ts(record.get("SystemModstamp") or record.get("LastModifiedDate")),
        "deleted_at": _ts(record.get("SystemModstamp")) if record.get("IsDeleted") else None,
        "source_data": raw,
        "custom_fields": {k: v for k, v in raw.items() if k.endswith("__c")},
    }


def account(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    owner, owner_email = _owner(record)
    return {**_base(record), "name": record.get("Name"), "website": record.get("Website"),
            "domain": domain_of(record.get("Website")), "industry": record.get("Industry"),
            "employee_count": _int(record.get("NumberOfEmployees")),
            "annual_revenue": _money(record.get("AnnualRevenue")), "country": record.get("BillingCountry"),
            "state": record.get("BillingState"), "city": record.get("BillingCity"),
            "account_type": record.get("Type"), "parent_source_id": record.get("ParentId"),
            "owner": owner, "owner_email": owner_email}


def contact(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    owner, owner_email = _owner(record)
    return {**_base(record), "email": record.get("Email"), "first_name": record.get("FirstName"),
            "last_name": record.get("LastName"), "title": record.get("Title"), "phone": record.get("Phone"),
            "department": record.get("Department"), "company_name": (record.get("Account") or {}).get("Name"),
            "account_source_id": record.get("AccountId"), "owner": owner, "owner_email": owner_email}


def currency(record: dict[str, Any], ctx: StreamContext) -> str | None:
    """The record's own CurrencyIsoCode (multi-currency orgs), else the org's default currency."""
    return record.get("CurrencyIsoCode") or (ctx.metadata.get("account") or {}).get("currency")


def deal(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    owner, owner_email = _owner(record)
    probability = record.get("Probability")
    closed = bool(record.get("IsClosed"))
    close_date = _date(record.get("CloseDate"))
    category = FORECAST.get(str(record.get("ForecastCategoryName") or "").casefold())
    return {**_base(record), "name": record.get("Name"), "amount": _money(record.get("Amount")),
            "currency": currency(record, ctx), "stage": record.get("StageName"),
            # Salesforce's Probability is always a percent: 1 means 1 %, not 100 %.
            "probability": to_percent(f"{probability}%") if probability is not None else None,
            "forecast_category": category, "close_date": close_date,
            "closed_at": datetime.combine(close_date, time(), timezone.utc) if closed and close_date else None,
            "owner": owner, "owner_email": owner_email, "account_source_id": record.get("AccountId"),
            "account_name": (record.get("Account") or {}).get("Name"), "next_step": record.get("NextStep"),
            "deal_type": record.get("Type"), "lead_source": record.get("LeadSource")}


def lead(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    owner, owner_email = _owner(record)
    email = record.get("Email")
    converted = _date(record.get("ConvertedDate"))
    return {**_base(record), "email": email, "first_name": record.get("FirstName"),
            "last_name": record.get("LastName"), "title": record.get("Title"), "phone": record.get("Phone"),
            "company": record.get("Company"),
            "domain": domain_of(record.get("Website")) or (email.rsplit("@", 1)[1].lower() if email and "@" in email else None),
            "industry": record.get("Industry"), "employee_count": _int(record.get("NumberOfEmployees")),
            "status": record.get("Status"), "lead_source": record.get("LeadSource"), "rating": record.get("Rating"),
            "owner": owner, "owner_email": owner_email, "is_converted": bool(record.get("IsConverted")),
            "converted_at": datetime.combine(converted, time(), timezone.utc) if converted else None,
            "converted_contact_source_id": record.get("ConvertedContactId"),
            "converted_account_source_id": record.get("ConvertedAccountId"),
            "converted_deal_source_id": record.get("ConvertedOpportunityId")}


def _activity(record: dict[str, Any]) -> dict[str, Any]:
    owner, owner_email = _owner(record)
    who, what = record.get("WhoId"), record.get("WhatId")
    return {**_base(record), "subject": record.get("Subject"), "body": record.get("Description"),
            "owner": owner, "owner_email": owner_email, "contact_source_id": _prefix(who, CONTACT),
            "account_source_id": record.get("AccountId") or _prefix(what, ACCOUNT),
            "deal_source_id": _prefix(what, OPPORTUNITY)}


_TASK_TYPES = {"call": "call", "email": "email", "listemail": "email", "cadence": "task", "task": "task"}


def task(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    subtype = str(record.get("TaskSubtype") or "Task").casefold()
    when = _date(record.get("ActivityDate"))
    direction = {"inbound": "inbound", "outbound": "outbound"}.get(str(record.get("CallType") or "").casefold())
    return {**_activity(record), "activity_type": _TASK_TYPES.get(subtype, "task"), "direction": direction,
            "occurred_at": datetime.combine(when, time(), timezone.utc) if when else _ts(record.get("CreatedDate")),
            "duration_seconds": _int(record.get("CallDurationInSeconds"))}


def event(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    minutes = _int(record.get("DurationInMinutes"))
    return {**_activity(record), "activity_type": "meeting", "occurred_at": _ts(record.get("StartDateTime")),
            "duration_seconds": minutes * 60 if minutes is not None else None}


def stage_history(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any] | None:
    if not record.get("StageName"):
        return None
    row = _base(record)
    row.pop("custom_fields")
    return {**row, "deal_source_id": record["OpportunityId"], "stage": record["StageName"],
            "entered_at": _ts(record.get("CreatedDate"))}

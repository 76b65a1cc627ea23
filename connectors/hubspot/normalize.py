"""HubSpot CRM records (deals, contacts, companies) → entity rows.

Each function turns one raw v3 record (`{id, properties, createdAt, updatedAt, archived, archivedAt}`, plus the
`associations` our enrich step added) into a row for the one upsert path: typed columns, `custom_fields` (the
portal's own properties, typed by their declared type), `source_data` (the raw record) and `deleted_at` (set
for archived records, None otherwise, so a restored record comes back). Owner ids become names and emails
from the owners directory kept in `connections.metadata.owners`. Every row of a kind has the same keys: the
upsert path writes the columns a page names, and a key missing from one row would blank that column.

Never calls HubSpot and never touches the database.
"""
from __future__ import annotations

from typing import Any, Iterable

from connectors.hubspot import values as v
from core.sync.protocol import StreamContext

SOURCE = "hubspot"

# Properties we map to columns (requested on every read, whatever the portal's custom ones).
DEAL_PROPERTIES = (
    "dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate", "hubspot_owner_id",
    "hs_deal_stage_probability", "hs_manual_forecast_category", "dealtype", "hs_next_step", "hs_is_closed",
    "hs_is_closed_won", "createdate", "hs_lastmodifieddate", "hs_object_id",
)
CONTACT_PROPERTIES = (
    "email", "firstname", "lastname", "jobtitle", "phone", "lifecyclestage", "hs_lead_status", "company",
    "hubspot_owner_id", "associatedcompanyid", "createdate", "lastmodifieddate", "hs_object_id",
)
COMPANY_PROPERTIES = (
    "name", "domain", "website", "industry", "numberofemployees", "annualrevenue", "country", "state", "city",
    "type", "hubspot_owner_id", "hs_parent_company_id", "createdate", "hs_lastmodifieddate", "hs_object_id",
)

_FORECAST = {"COMMIT": "commit", "BEST_CASE": "best_case", "PIPELINE": "pipeline", "OMIT": "not_forecasted",
             "CLOSED": "closed"}


def owner(ctx: StreamContext, owner_id: Any) -> tuple[str | None, str | None]:
    """(name, email) of a HubSpot owner id from the directory in metadata; the id itself when unknown."""
    owner_id = v.text(owner_id)
    if owner_id is None:
        return None, None
    info = (ctx.metadata.get("owners") or {}).get(owner_id)
    if not info:
        return owner_id, None
    return info.get("name") or info.get("email") or owner_id, info.get("email")


def custom_fields(props: dict[str, Any], ctx: StreamContext, object_type: str) -> dict[str, Any]:
    """The portal's own (non-HubSpot-defined) properties with a value, typed by their declared type."""
    custom = (ctx.metadata.get("custom_properties") or {}).get(object_type) or {}
    out = {}
    for name, kind in custom.items():
        value = v.typed(props.get(name), kind)
        if value is not None:
            out[name] = value
    return out


def deleted_at(record: dict[str, Any]):
    if not record.get("archived"):
        return None
    return v.timestamp(record.get("archivedAt")) or v.timestamp(record.get("updatedAt"))


def _common(record: dict[str, Any], ctx: StreamContext, object_type: str, modified: str) -> dict[str, Any]:
    props = record.get("properties") or {}
    return {
        "source": SOURCE,
        "source_id": str(record["id"]),
        "source_created_at": v.timestamp(props.get("createdate")) or v.timestamp(record.get("createdAt")),
        "source_updated_at": v.timestamp(props.get(modified)) or v.timestamp(record.get("updatedAt")),
        "deleted_at": deleted_at(record),
        "custom_fields": custom_fields(props, ctx, object_type),
        "source_data": record,
    }


def _associated(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return ((record.get("associations") or {}).get(kind)) or []


def primary_id(record: dict[str, Any], kind: str) -> str | None:
    """The associated record flagged primary (HubSpot's "Primary" association label), else the first."""
    items = _associated(record, kind)
    for item in items:
        if item.get("primary"):
            return item["id"]
    return items[0]["id"] if items else None


def normalize_deal(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    props = record.get("properties") or {}
    stages = ctx.metadata.get("deal_stages") or {}
    pipelines = ctx.metadata.get("pipelines") or {}
    stage = v.text(props.get("dealstage"))
    stage_info = stages.get(stage or "") or {}
    probability = v.number(props.get("hs_deal_stage_probability"))
    if probability is None and stage_info.get("probability") is not None:
        probability = v.number(stage_info["probability"])
    if probability is not None and probability <= 1:  # HubSpot sends 0-1; we store 0-100
        probability = probability * 100
    name, email = owner(ctx, props.get("hubspot_owner_id"))
    closed = v.boolean(props.get("hs_is_closed"))
    if closed is None and stage_info:
        closed = bool(stage_info.get("closed"))
    pipeline = v.text(props.get("pipeline"))
    return {
        **_common(record, ctx, "deals", "hs_lastmodifieddate"),
        "name": v.text(props.get("dealname")),
        "amount": v.number(props.get("amount")),
        "currency": v.text(props.get("deal_currency_code")) or ctx.metadata.get("currency"),
        "stage": stage,
        "pipeline": pipelines.get(pipeline or "", pipeline),
        "probability": probability.quantize(v.Decimal("0.01")) if probability is not None else None,
        "forecast_category": _FORECAST.get((v.text(props.get("hs_manual_forecast_category")) or "").upper()),
        "close_date": v.day(props.get("closedate")),
        "closed_at": v.timestamp(props.get("closedate")) if closed else None,
        "owner": name,
        "owner_email": email,
        "account_source_id": primary_id(record, "companies"),
        "deal_type": v.text(props.get("dealtype")),
        "next_step": v.text(props.get("hs_next_step")),
        "stage_entered_at": v.timestamp(props.get(f"hs_v2_date_entered_{stage}")) if stage else None,
    }


def stage_history(record: dict[str, Any], ctx: StreamContext) -> Iterable[tuple[str, dict[str, Any]]]:
    """One deal_stage_history row per stage the deal entered, from `hs_v2_date_entered_<stage id>` (and the
    matching `hs_v2_date_exited_…`), for every stage of the portal's deal pipelines."""
    props = record.get("properties") or {}
    deal_id = str(record["id"])
    for stage in ctx.metadata.get("deal_stages") or {}:
        entered = v.timestamp(props.get(f"hs_v2_date_entered_{stage}"))
        if entered is None:
            continue
        yield "deal_stage_history", {
            "source": SOURCE, "source_id": f"{deal_id}:{stage}", "deal_source_id": deal_id, "stage": stage,
            "entered_at": entered, "exited_at": v.timestamp(props.get(f"hs_v2_date_exited_{stage}")),
        }


def stage_history_properties(ctx: StreamContext) -> list[str]:
    return [f"hs_v2_date_{edge}_{stage}" for stage in ctx.metadata.get("deal_stages") or {}
            for edge in ("entered", "exited")]


def normalize_contact(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    props = record.get("properties") or {}
    name, email = owner(ctx, props.get("hubspot_owner_id"))
    email_address = v.text(props.get("email"))
    return {
        **_common(record, ctx, "contacts", "lastmodifieddate"),
        "email": email_address.lower() if email_address else None,
        "first_name": v.text(props.get("firstname")),
        "last_name": v.text(props.get("lastname")),
        "title": v.text(props.get("jobtitle")),
        "phone": v.text(props.get("phone")),
        "lifecycle_stage": v.text(props.get("lifecyclestage")),
        "lead_status": v.text(props.get("hs_lead_status")),
        "company_name": v.text(props.get("company")),
        "owner": name,
        "owner_email": email,
        "account_source_id": v.text(props.get("associatedcompanyid")),
    }


def normalize_company(record: dict[str, Any], ctx: StreamContext) -> dict[str, Any]:
    props = record.get("properties") or {}
    name, email = owner(ctx, props.get("hubspot_owner_id"))
    domain = v.text(props.get("domain"))
    return {
        **_common(record, ctx, "companies", "hs_lastmodifieddate"),
        "name": v.text(props.get("name")),
        "domain": domain.lower() if domain else None,
        "website": v.text(props.get("website")),
        "industry": v.text(props.get("industry")),
        "employee_count": v.integer(props.get("numberofemployees")),
        "annual_revenue": v.number(props.get("annualrevenue")),
        "country": v.text(props.get("country")),
        "state": v.text(props.get("state")),
        "city": v.text(props.get("city")),
        "account_type": v.text(props.get("type")),
        "owner": name,
        "owner_email": email,
        "parent_source_id": v.text(props.get("hs_parent_company_id")),
    }

"""What an imported file is and which column is what, by heuristics: entity detection, the column mapper, user
overrides, and the natural keys that give rows without a record id a stable `source_id`.

The catalog (`FIELDS`) knows the headers real exports use (Salesforce reports and Data Loader, HubSpot exports
and internal names, Pipedrive's "Deal - Title" style, generic spreadsheets). Target names are the columns of
migrations/0002_entities.sql plus pseudo-fields the transform resolves and never writes as columns
(`PSEUDO_FIELDS`): source_id; full_name (contacts, leads); associated_deals (contacts); deal_name, contact_email,
account_name (activities); deal_status (open/won/lost), is_won, is_closed (deals → `core.stages.closed_flags`).
This module
reads headers and a few sample values only: it never parses values for storage (values.py does) and never
calls an LLM (classifier.py does, and falls back to this module).

Rules (the original's: exact header 0.95, partial 0.75, each field claimed once, first column wins), refined:
- Matching ignores case, punctuation and spacing ("Probability (%)" = "probability", "CloseDate" = "close date");
  a header that starts with the entity's own word ("Deal - Stage", "Company owner") also matches without it (0.90).
- Partial matches (a synonym inside a longer header) never use generic words (name, id, type, status …) and
  never reach id or yes/no fields; "(converted)" columns lose 0.1, so "Amount" beats "Amount (converted)".
- Columns are claimed best match first (score, then synonym rank, then column order), not in a fixed field
  order: an exact "Account Name" is never lost to a partial match claimed earlier.
- Sample values break ties (+0.02 when they fit the field's type); a partial match whose values clearly do not
  fit is dropped, an exact one is kept with a warning. An unclaimed column of e-mail addresses is the e-mail.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

from core.errors import InputError

ENTITIES = ("deals", "contacts", "accounts", "leads", "activities")
FIELD_TYPES = frozenset({"text", "amount", "date", "datetime", "percent", "email", "domain", "bool", "int", "stage", "id"})
CUSTOM = "-"  # an override value meaning "send this column to custom_fields"


@dataclass(frozen=True)
class FieldSpec:
    type: str
    synonyms: tuple[str, ...] = ()
    weight: float = 1.0      # how much a match says "this file is this entity"
    partial: bool = True     # may match a longer header that contains a synonym
    pseudo: bool = False     # not a column of the entity table: the transform resolves it


def _f(type_: str, synonyms: str, weight: float = 1.0, *, partial: bool | None = None, pseudo: bool = False) -> FieldSpec:
    assert type_ in FIELD_TYPES, type_
    allow = partial if partial is not None else type_ not in ("id", "bool")
    return FieldSpec(type_, tuple(s.strip() for s in synonyms.split("|")), weight, allow, pseudo)


_OWNER = "owner|owner name|rep|sales rep|assigned to|assigned|account executive|ae|salesperson|hubspot owner id"
_OWNER_EMAIL = "owner email|rep email|assigned to email|owner e mail"
_CREATED = "created date|create date|created|created at|date created|created time|createdate|add time"
_UPDATED = "last modified date|last modified|modified date|updated at|last updated|update time|hs lastmodifieddate"
_EMAIL = "email|email address|work email|business email|primary email|e mail|emails"
_PHONE = "phone|phone number|mobile|mobile phone|mobile phone number|work phone|telephone|direct phone|business phone"
_TITLE = "title|job title|position|role|jobtitle"
_FULL_NAME = "name|full name|contact name|person name|contact"

FIELDS: dict[str, dict[str, FieldSpec]] = {
    "deals": {
        "source_id": _f("id", "record id|opportunity id|deal id|id|hubspot id|hs object id|object id|deal record id", 0.3),
        "name": _f("text", "deal name|opportunity name|deal|opportunity|name|deal title|title|dealname", 1.5),
        "amount": _f("amount", "amount|deal amount|opportunity amount|value|deal value|arr|acv|tcv|revenue"
                               "|total amount|contract value|amount usd", 2),
        "currency": _f("text", "currency|amount currency|deal currency|currency of value|opportunity currency"
                               "|currency code|currency iso code|deal currency code", 0.5),
        "stage": _f("stage", "stage|deal stage|opportunity stage|stage name|sales stage|pipeline stage|dealstage"
                             "|status", 2),
        "pipeline": _f("text", "pipeline|deal pipeline|sales pipeline", 1.5),
        "probability": _f("percent", "probability|deal probability|win probability|win prob|deal stage probability"
                                     "|hs deal stage probability|likelihood|percent|close probability", 1.5),
        "forecast_category": _f("text", "forecast category|forecast category name|hs forecast category|forecast", 1.5),
        "close_date": _f("date", "close date|expected close date|expected close|closing date|close|closedate"
                                 "|target close date|estimated close date|expected close time", 2),
        "closed_at": _f("datetime", "closed date|date closed|closed at|close time|deal closed on|won time|won date", 1),
        "owner": _f("text", "deal owner|opportunity owner|" + _OWNER, 0.3),
        "owner_email": _f("email", "deal owner email|opportunity owner email|" + _OWNER_EMAIL, 0.3),
        "account_name": _f("text", "account name|account|company|company name|organization|organization name"
                                   "|associated company|customer|client|customer name", 0.5),
        "account_source_id": _f("id", "account id|associated company id|associated company ids|company id"
                                      "|organization id|org id", 0.3),
        "next_step": _f("text", "next step|next steps|hs next step", 1),
        "deal_type": _f("text", "type|deal type|opportunity type|business type|dealtype", 0.5),
        "lead_source": _f("text", "lead source|source|original source|deal source|opportunity source", 0.3),
        "source_created_at": _f("datetime", "deal created|opportunity created date|" + _CREATED, 0.2),
        "source_updated_at": _f("datetime", _UPDATED, 0.2),
        "deal_status": _f("text", "deal status|status|won lost|open won lost", 0.5, pseudo=True),
        "is_won": _f("bool", "won|is won", 1, pseudo=True),
        "is_closed": _f("bool", "closed|is closed", 1, pseudo=True),
    },
    "contacts": {
        "source_id": _f("id", "record id|contact id|person id|id|hubspot id|hs object id|object id", 0.3),
        "email": _f("email", _EMAIL, 1),
        "first_name": _f("text", "first name|firstname|given name|first", 1),
        "last_name": _f("text", "last name|lastname|surname|family name|last", 1),
        "full_name": _f("text", _FULL_NAME, 1, pseudo=True),
        "title": _f("text", _TITLE, 1),
        "phone": _f("text", _PHONE, 0.8),
        "department": _f("text", "department|dept", 1),
        "seniority": _f("text", "seniority|seniority level|level|job level|management level", 1),
        "lifecycle_stage": _f("text", "lifecycle stage|lifecyclestage|lifecycle|stage", 2),
        "lead_status": _f("text", "lead status|hs lead status|contact status|status", 0.5),
        "company_name": _f("text", "company name|company|account name|account|organization|organization name"
                                   "|employer|associated company", 0.8),
        "account_source_id": _f("id", "account id|associated company id|associated company ids|company id"
                                      "|organization id|primary associated company id", 0.5),
        "owner": _f("text", "contact owner|" + _OWNER, 0.3),
        "owner_email": _f("email", "contact owner email|" + _OWNER_EMAIL, 0.3),
        "source_created_at": _f("datetime", _CREATED, 0.2),
        "source_updated_at": _f("datetime", _UPDATED, 0.2),
        "associated_deals": _f("text", "associated deals|associated deal|deals|deal names|deal name|deal"
                                       "|opportunities|opportunity|opportunity name|associated deal ids", 1.5,
                               pseudo=True),
    },
    "accounts": {
        "source_id": _f("id", "record id|account id|company id|organization id|id|hubspot id|hs object id", 0.3),
        "name": _f("text", "account name|company name|name|company|organization|organization name|account"
                           "|customer|customer name", 1),
        "domain": _f("domain", "domain|company domain name|company domain|domain name|email domain", 2),
        "website": _f("domain", "website|website url|url|web site|web|homepage", 2),
        "industry": _f("text", "industry|sector|vertical", 2),
        "employee_count": _f("int", "employees|number of employees|employee count|headcount|company size|size"
                                    "|numberofemployees|num employees|no of employees", 2),
        "annual_revenue": _f("amount", "annual revenue|revenue|annualrevenue|arr|annual recurring revenue", 1.5),
        "country": _f("text", "country|country region|billing country|shipping country|hq country", 1),
        "state": _f("text", "state|state region|billing state province|billing state|state province"
                            "|shipping state province|hq state", 1),
        "city": _f("text", "city|billing city|shipping city|hq city|town", 1),
        "account_type": _f("text", "type|account type|company type|customer type", 0.5),
        "owner": _f("text", "account owner|company owner|" + _OWNER, 0.3),
        "owner_email": _f("email", "account owner email|company owner email|" + _OWNER_EMAIL, 0.3),
        "parent_source_id": _f("id", "parent account id|parent company id|parent id|parent company", 0.5),
        "source_created_at": _f("datetime", _CREATED, 0.2),
        "source_updated_at": _f("datetime", _UPDATED, 0.2),
    },
    "leads": {
        "source_id": _f("id", "lead id|record id|id|hubspot id", 0.3),
        "email": _f("email", _EMAIL, 0.8),
        "first_name": _f("text", "first name|firstname|given name|first", 0.8),
        "last_name": _f("text", "last name|lastname|surname|family name|last", 0.8),
        "full_name": _f("text", _FULL_NAME + "|lead name", 0.8, pseudo=True),
        "title": _f("text", _TITLE, 0.8),
        "phone": _f("text", _PHONE, 0.6),
        "company": _f("text", "company|company account|company name|organization|organization name|employer", 1),
        "domain": _f("domain", "domain|company domain|email domain|website|website url", 0.5),
        "industry": _f("text", "industry|sector|vertical", 0.5),
        "employee_count": _f("int", "employees|number of employees|employee count|no of employees|headcount"
                                    "|company size", 0.5),
        "status": _f("text", "lead status|status", 1.5),
        "lead_source": _f("text", "lead source|source|original source", 0.5),
        "rating": _f("text", "rating|lead rating", 1.5),
        "owner": _f("text", "lead owner|" + _OWNER, 0.3),
        "owner_email": _f("email", "lead owner email|" + _OWNER_EMAIL, 0.3),
        "is_converted": _f("bool", "converted|is converted|lead converted", 2),
        "converted_at": _f("datetime", "converted date|conversion date|converted at|date converted", 2),
        "converted_contact_source_id": _f("id", "converted contact id|converted contact", 2),
        "converted_account_source_id": _f("id", "converted account id|converted account", 2),
        "converted_deal_source_id": _f("id", "converted opportunity id|converted deal id|converted opportunity", 2),
        "source_created_at": _f("datetime", _CREATED, 0.2),
        "source_updated_at": _f("datetime", _UPDATED, 0.2),
    },
    "activities": {
        "source_id": _f("id", "activity id|record id|id|task id|event id|engagement id|hubspot id", 0.3),
        "activity_type": _f("text", "activity type|type|task type|engagement type|event type|task subtype"
                                    "|activity", 2),
        "subject": _f("text", "subject|activity subject|title|task|call title|meeting name", 2),
        "body": _f("text", "body|description|notes|note|details|comments|content|call notes|email body"
                           "|full comments", 1.5),
        "direction": _f("text", "direction|call direction|email direction", 2),
        "occurred_at": _f("datetime", "activity date|date|occurred at|timestamp|due date|start time|start date"
                                      "|activity date time|call date|meeting date|email send date", 2),
        "duration_seconds": _f("int", "duration|duration seconds|call duration|call duration in seconds"
                                      "|duration sec", 2),
        "owner": _f("text", "activity owner|created by|user|" + _OWNER, 0.3),
        "owner_email": _f("email", "activity owner email|" + _OWNER_EMAIL, 0.3),
        "deal_name": _f("text", "deal name|deal|opportunity|opportunity name|related to|associated deal"
                                "|associated deals", 1, pseudo=True),
        "deal_source_id": _f("id", "deal id|opportunity id|associated deal id|associated deal ids|what id", 0.5),
        "contact_email": _f("email", "contact email|email|person email|attendee email|recipient email"
                                     "|email address", 0.8, pseudo=True),
        "contact_source_id": _f("id", "contact id|associated contact id|associated contact ids|person id|who id", 0.5),
        "account_name": _f("text", "account name|company|company name|organization|account|associated company", 0.5,
                           pseudo=True),
        "account_source_id": _f("id", "account id|company id|associated company id|associated company ids"
                                      "|organization id", 0.5),
        "source_created_at": _f("datetime", _CREATED, 0.2),
        "source_updated_at": _f("datetime", _UPDATED, 0.2),
    },
}
PSEUDO_FIELDS = {entity: {name for name, spec in specs.items() if spec.pseudo or name == "source_id"}
                 for entity, specs in FIELDS.items()}

# A header starting with the entity's own word also matches without it ("Deal - Stage" → "stage").
_OWN_PREFIXES = {
    "deals": ("deal", "opportunity"), "contacts": ("contact", "person"),
    "accounts": ("account", "company", "organization", "org"), "leads": ("lead",),
    "activities": ("activity", "task", "engagement", "event"),
}
# Words too generic to match inside a longer header on their own.
_GENERIC = frozenset({"id", "name", "type", "date", "status", "source", "owner", "deal", "opportunity", "account",
                      "company", "contact", "lead", "organization", "person", "value", "title", "stage", "first",
                      "last", "level", "size", "close", "closed", "won", "forecast", "percent", "task", "activity",
                      "user", "url", "web", "assigned", "rep", "ae", "deals", "state", "city", "country"})
# Exact header → (entity, bonus): headers that only one kind of export has.
_SIGNALS: dict[str, tuple[str, float]] = {
    "opportunity id": ("deals", 2), "opportunity name": ("deals", 2), "deal id": ("deals", 1.5),
    "deal name": ("deals", 1.5), "deal stage": ("deals", 2), "opportunity owner": ("deals", 2),
    "deal owner": ("deals", 2), "dealname": ("deals", 2), "dealstage": ("deals", 2), "stage name": ("deals", 1),
    "contact id": ("contacts", 2), "contact owner": ("contacts", 2), "person id": ("contacts", 1.5),
    "company domain name": ("accounts", 2), "company owner": ("accounts", 2), "account owner": ("accounts", 1),
    "organization id": ("accounts", 1), "lead id": ("leads", 3), "lead owner": ("leads", 3),
    "converted": ("leads", 2), "company account": ("leads", 2), "is converted": ("leads", 2),
    "activity id": ("activities", 2), "activity type": ("activities", 2), "activity date": ("activities", 2),
    "task type": ("activities", 2), "call duration": ("activities", 2),
}
_PIPEDRIVE_PREFIX = re.compile(r"^\s*(deal|person|organization|lead|activity)\s+-\s+", re.I)
_PIPEDRIVE_ENTITY = {"deal": "deals", "person": "contacts", "organization": "accounts", "lead": "leads",
                     "activity": "activities"}
_REQUIRED = {
    "deals": (("name",), "no column looks like a deal name"),
    "contacts": (("email", "full_name", "first_name", "last_name"), "no column looks like a contact email or name"),
    "accounts": (("name", "domain", "website"), "no column looks like an account name or domain"),
    "leads": (("email", "company"), "no column looks like a lead email or company"),
    "activities": (("occurred_at", "subject"), "no column looks like an activity date or subject"),
}
_NATURAL_KEY_TEXT = {
    "deals": "deal name + account name", "contacts": "email (else name + company)",
    "accounts": "domain (else company name)", "leads": "email (else name + company)",
    "activities": "date + subject + owner",
}
EXACT, PREFIXED, PARTIAL = 0.95, 0.90, 0.75


def _tokens(text: str) -> tuple[str, ...]:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(text)).replace("#", " number ")
    return tuple(re.findall(r"[a-z0-9]+", text.casefold()))


_SYNONYM_TOKENS = {entity: {name: [_tokens(s) for s in spec.synonyms] for name, spec in specs.items()}
                   for entity, specs in FIELDS.items()}


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _match(header: tuple[str, ...], entity: str, name: str) -> tuple[float, int] | None:
    """(score, synonym rank) of the best way `header` names field `name`, or None."""
    spec = FIELDS[entity][name]
    squashed = "".join(header)
    stripped = header[1:] if len(header) > 1 and header[0] in _OWN_PREFIXES[entity] else None
    demote = 0.1 if "converted" in header else 0.0
    best: tuple[float, int] | None = None
    for rank, synonym in enumerate(_SYNONYM_TOKENS[entity][name]):
        if header == synonym or squashed == "".join(synonym):
            score = EXACT
        elif stripped is not None and (stripped == synonym or "".join(stripped) == "".join(synonym)):
            score = PREFIXED
        elif (spec.partial and synonym and len(synonym) < len(header) and _contains(header, synonym)
              and not (len(synonym) == 1 and synonym[0] in _GENERIC)):
            score = PARTIAL - (demote if "converted" not in synonym else 0.0)
        else:
            continue
        if best is None or score > best[0]:
            best = (score, rank)
    return best


# --- sample values ----------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[a-z]{2,}$", re.I)
_DOMAIN_RE = re.compile(r"^(https?://)?(www\.)?[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?(/\S*)?$", re.I)
_MONTHS = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_RES = (
    re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ t].*)?$", re.I),
    re.compile(r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}( .*)?$"),
    re.compile(rf"^{_MONTHS}\s+\d{{1,2}}(st|nd|rd|th)?,?\s+\d{{4}}( .*)?$", re.I),
    re.compile(rf"^\d{{1,2}}[-\s]{_MONTHS}[-\s,]+\d{{2,4}}( .*)?$", re.I),
)
_AMOUNT_RE = re.compile(r"^[-+(]?\s*([a-z]{3}\s*)?[$€£¥]?\s*[-+]?\d[\d,.' ]*\s*[kmb]?\s*([a-z]{3}|[$€£¥])?\)?$", re.I)
_PERCENT_RE = re.compile(r"^[-+]?\d+([.,]\d+)?\s*%?$")
_INT_RE = re.compile(r"^\d[\d,. ]*(\s*[-–]\s*\d[\d,. ]*|\+)?$")
_BOOLS = frozenset({"true", "false", "yes", "no", "y", "n", "1", "0", "x", "checked", "unchecked", "t", "f"})


def _fits(type_: str, value: Any) -> bool | None:
    """Does one non-empty sample value look like `type_`? None when the type has no shape to check."""
    if type_ in ("date", "datetime"):
        return isinstance(value, (date, datetime)) or any(r.match(str(value).strip()) for r in _DATE_RES)
    if isinstance(value, (date, datetime)):
        return False
    text = str(value).strip()
    if type_ == "email":
        return bool(_EMAIL_RE.match(text))
    if type_ == "domain":
        return bool(_DOMAIN_RE.match(text)) and "@" not in text
    if type_ == "amount":
        return isinstance(value, (int, float, Decimal)) or bool(_AMOUNT_RE.match(text))
    if type_ == "percent":
        return isinstance(value, (int, float, Decimal)) or bool(_PERCENT_RE.match(text))
    if type_ == "int":
        return isinstance(value, (int, float, Decimal)) or bool(_INT_RE.match(text))
    if type_ == "bool":
        return isinstance(value, bool) or text.casefold() in _BOOLS
    return None


def _column_values(sample_rows: list[list] | None, index: int) -> list[Any]:
    values = []
    for row in sample_rows or ():
        if index < len(row) and row[index] is not None and str(row[index]).strip():
            values.append(row[index])
    return values


def _fit_ratio(type_: str, values: list[Any]) -> float | None:
    checks = [_fits(type_, v) for v in values]
    if not checks or checks[0] is None:
        return None
    return sum(1 for c in checks if c) / len(checks)


# --- detection and mapping --------------------------------------------------------------------------------------

@dataclass
class Detection:
    entity: str
    confidence: float
    scores: dict[str, float]
    method: str = "heuristic"

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "confidence": self.confidence, "scores": self.scores, "method": self.method}


@dataclass
class ColumnMapping:
    """header → field (None: the column goes to custom_fields), with per-header confidence and warnings."""

    entity: str
    columns: dict[str, str | None]
    confidence: dict[str, float] = field(default_factory=dict)
    id_column: str | None = None
    warnings: list[str] = field(default_factory=list)
    overrides: dict[str, str | None] = field(default_factory=dict)

    def header_for(self, name: str) -> str | None:
        """The column mapped to field `name` (e.g. "currency"), if any."""
        return next((h for h, f in self.columns.items() if f == name), None)

    @property
    def fields(self) -> dict[str, str]:
        return {f: h for h, f in self.columns.items() if f is not None}

    @property
    def custom_headers(self) -> list[str]:
        return [h for h, f in self.columns.items() if f is None]

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "columns": dict(self.columns), "confidence": dict(self.confidence),
                "id_column": self.id_column, "warnings": list(self.warnings), "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMapping:
        return cls(entity=data["entity"], columns=dict(data.get("columns") or {}),
                   confidence=dict(data.get("confidence") or {}), id_column=data.get("id_column"),
                   warnings=list(data.get("warnings") or []), overrides=dict(data.get("overrides") or {}))


def _check_entity(entity: str) -> None:
    if entity not in FIELDS:
        raise InputError(f"unknown entity {entity!r}; valid entities: {', '.join(ENTITIES)}", field="entity")


def _candidates(headers: list[str], entity: str, sample_rows: list[list] | None):
    """Every plausible (score, rank, index, header, field, warning) pairing, best first."""
    found = []
    for index, header in enumerate(headers):
        tokens = _tokens(header)
        if not tokens:
            continue
        values = _column_values(sample_rows, index)
        for name, spec in FIELDS[entity].items():
            hit = _match(tokens, entity, name)
            if hit is None:
                continue
            score, rank = hit
            warning = None
            ratio = _fit_ratio(spec.type, values)
            if ratio is not None and ratio >= 0.8:
                score += 0.02
            elif ratio is not None and ratio < 0.5 and len(values) >= 2:
                if score < PREFIXED:
                    continue
                score -= 0.2
                warning = f"column {header!r} maps to {name} but its sample values don't look like {spec.type}s"
            found.append((score, rank, index, header, name, warning))
    found.sort(key=lambda c: (-c[0], c[1], c[2]))
    return found


def _assign(headers: list[str], entity: str, sample_rows: list[list] | None) -> ColumnMapping:
    seen: set[str] = set()
    warnings: list[str] = []
    unique = []
    for header in headers:
        if header in seen:
            warnings.append(f"duplicate column {header!r}: only the first one is mapped")
        else:
            seen.add(header)
            unique.append(header)
    columns: dict[str, str | None] = {h: None for h in unique}
    confidence: dict[str, float] = {}
    claimed: set[str] = set()
    for score, _rank, _index, header, name, warning in _candidates(headers, entity, sample_rows):
        if columns.get(header) is not None or name in claimed or header not in columns:
            continue
        columns[header], confidence[header] = name, round(min(score, 0.99), 2)
        claimed.add(name)
        if warning:
            warnings.append(warning)
    if entity == "deals":
        _status_as_stage(headers, columns, sample_rows)
    email_field = {"contacts": "email", "leads": "email", "activities": "contact_email"}.get(entity)
    if email_field and email_field not in claimed:
        for index, header in enumerate(headers):
            if columns.get(header) is None and _fit_ratio("email", _column_values(sample_rows, index) or [""]) == 1:
                columns[header], confidence[header] = email_field, 0.6
                warnings.append(f"column {header!r} holds e-mail addresses; mapped to {email_field}")
                break
    return ColumnMapping(entity, columns, confidence, warnings=warnings)


def _status_as_stage(headers: list[str], columns: dict[str, str | None], sample_rows: list[list] | None) -> None:
    """A lone "Status" on a deals file is the stage (the original's stage/status synonym), unless its values are
    only open/won/lost, which the transform reads as a won/lost flag."""
    status = next((h for h, f in columns.items() if f == "deal_status"), None)
    if status is None or "stage" in columns.values():
        return
    values = {str(v).strip().casefold() for v in _column_values(sample_rows, headers.index(status))}
    if not values or not values <= {"open", "won", "lost", "deleted"}:
        columns[status] = "stage"


def recheck(mapping: ColumnMapping) -> ColumnMapping:
    """Recompute id_column and the warnings that depend on which fields are mapped (after any change)."""
    generated = {text for _fields, text in _REQUIRED.values()}
    mapping.warnings = [w for w in mapping.warnings if w not in generated and not w.startswith("no record id column")]
    mapping.id_column = mapping.header_for("source_id")
    needed, text = _REQUIRED[mapping.entity]
    if not any(name in mapping.columns.values() for name in needed):
        mapping.warnings.append(text)
    if mapping.id_column is None:
        mapping.warnings.append(f"no record id column; records are identified by "
                                f"{_NATURAL_KEY_TEXT[mapping.entity]}")
    return mapping


def map_columns(headers: list[str], entity: str, sample_rows: list[list] | None = None) -> ColumnMapping:
    """Map each header to a field of `entity` (see the module docstring for the rules)."""
    _check_entity(entity)
    return recheck(_assign(list(headers), entity, sample_rows))


def detect_entity(headers: list[str], sample_rows: list[list] | None = None) -> Detection:
    """Which entity a file holds, from how well its headers fit each entity plus export-specific signals.

    confidence = (0.5 + half the winner's margin over the runner-up) scaled down when few columns matched; a file
    where nothing matched is "deals" at confidence 0.
    """
    scores: dict[str, float] = {}
    for entity in ENTITIES:
        mapping = _assign(list(headers), entity, sample_rows)
        scores[entity] = sum(mapping.confidence[h] * FIELDS[entity][f].weight
                             for h, f in mapping.columns.items() if f is not None)
    for header in headers:
        tokens = _tokens(header)
        signal = _SIGNALS.get(" ".join(tokens))
        if signal:
            scores[signal[0]] += signal[1]
        if tokens[:1] == ("opportunity",):  # Salesforce names opportunity report columns this way
            scores["deals"] += 1.0
        prefix = _PIPEDRIVE_PREFIX.match(str(header))
        if prefix:
            scores[_PIPEDRIVE_ENTITY[prefix.group(1).casefold()]] += 1.0
    scores = {e: round(s, 2) for e, s in scores.items()}
    ranked = sorted(ENTITIES, key=lambda e: -scores[e])
    top, second = scores[ranked[0]], scores[ranked[1]]
    if top <= 0:
        return Detection("deals", 0.0, scores)
    confidence = (0.5 + 0.5 * (top - second) / top) * min(1.0, top / 4)
    return Detection(ranked[0], round(min(confidence, 0.99), 2), scores)


# --- overrides --------------------------------------------------------------------------------------------------

def _split_unquoted(text: str, sep: str) -> list[str]:
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            if char == quote:
                quote = None
            current.append(char)
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise InputError(f"--map {text!r}: unterminated quote", field="map")
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_overrides(spec: str | Iterable[str] | None) -> dict[str, str]:
    """`--map "Close Date=close_date,Amount=amount"` (or several --map flags) → {header: field}.

    A header containing a comma or "=" is quoted: `--map '"Revenue, USD"=amount'`. `Header=` and `Header=-` both
    mean "send to custom_fields" and come back as CUSTOM ("-"). Later entries win.
    """
    specs = [spec] if isinstance(spec, str) else list(spec or [])
    result: dict[str, str] = {}
    for text in specs:
        for item in _split_unquoted(text, ","):
            if not item.strip():
                continue
            pieces = _split_unquoted(item, "=")
            if len(pieces) < 2:
                raise InputError(f"--map expects Header=field, got {item.strip()!r}", field="map")
            header, target = _unquote("=".join(pieces[:-1])), _unquote(pieces[-1])
            if not header:
                raise InputError(f"--map {item.strip()!r}: the column name is empty", field="map")
            result[header] = target.strip() or CUSTOM
    return result


def _field_name(target: str | None) -> str | None:
    if target is None:
        return None
    name = re.sub(r"[\s-]+", "_", target.strip().casefold()).strip("_")
    return None if name in ("", "custom", "custom_fields", "none", "null") else name


def _find_header(columns: Mapping[str, Any], header: str) -> str | None:
    if header in columns:
        return header
    for folded in (str.casefold, lambda h: " ".join(_tokens(h))):
        hits = [h for h in columns if folded(h) == folded(header)]
        if len(hits) == 1:
            return hits[0]
    return None


def apply_overrides(
    mapping: ColumnMapping | Mapping[str, str | None],
    overrides: Mapping[str, str | None],
    entity: str | None = None,
    *,
    strict: bool = True,
) -> Any:
    """A new mapping with the user's (or the workspace's stored) choices applied; overridden columns get
    confidence 1.0 and any column that held the same field goes to custom_fields. Given a ColumnMapping it returns
    one; given a plain {header: field} dict (then `entity` is required) it returns a plain dict.

    strict=True (the --map flag): an unknown field or header raises InputError naming it. strict=False (a stored
    per-workspace mapping, made for some earlier file): entries for headers this file lacks, or fields the entity
    lacks, are skipped.
    """
    if not isinstance(mapping, ColumnMapping):
        if entity is None:
            raise TypeError("apply_overrides needs the entity when given a plain {header: field} dict")
        plain = ColumnMapping(entity, dict(mapping), {h: EXACT for h, f in mapping.items() if f is not None})
        return apply_overrides(plain, overrides, entity, strict=strict).columns
    entity = entity or mapping.entity
    _check_entity(entity)
    result = ColumnMapping.from_dict(mapping.to_dict())
    if entity != mapping.entity:
        result = map_columns(list(mapping.columns), entity)
    wanted: dict[str, str | None] = {}
    for raw_header, raw_target in overrides.items():
        header = _find_header(result.columns, raw_header)
        name = _field_name(raw_target)
        if header is None:
            if strict:
                shown = ", ".join(repr(h) for h in result.columns)
                raise InputError(f"--map: the file has no column {raw_header!r}; its columns are {shown}",
                                 column=raw_header)
            continue
        if name is not None and name not in FIELDS[entity]:
            if strict:
                raise InputError(f"--map {raw_header}={raw_target}: unknown field {raw_target!r} for {entity}; "
                                 f"valid fields: {', '.join(FIELDS[entity])}", column=header, field=raw_target)
            continue
        wanted[header] = name
    targets = [n for n in wanted.values() if n is not None]
    for name in {n for n in targets if targets.count(n) > 1}:
        raise InputError(f"--map maps several columns to {name}: "
                         f"{', '.join(h for h, n in wanted.items() if n == name)}", field=name)
    for header, name in wanted.items():
        holder = result.header_for(name) if name else None
        if holder is not None and holder != header and holder not in wanted:
            result.columns[holder] = None
            result.confidence.pop(holder, None)
            result.warnings.append(f"column {holder!r} no longer maps to {name} (you mapped {header!r})")
        result.columns[header] = name
        result.overrides[header] = name
        if name is None:
            result.confidence.pop(header, None)
        else:
            result.confidence[header] = 1.0
    return recheck(result)


# --- identity ---------------------------------------------------------------------------------------------------

_LEGAL_SUFFIXES = frozenset({"inc", "llc", "ltd", "corp", "co", "corporation", "incorporated", "limited", "gmbh",
                             "ag", "sa", "plc", "pty", "bv", "srl", "sarl", "oy", "ab", "as", "kk"})


def _norm_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return " ".join(str(value).casefold().split())


def _norm_company(value: Any) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", _norm_text(value)) if w not in _LEGAL_SUFFIXES]
    return " ".join(words)


def _norm_domain(value: Any) -> str:
    text = _norm_text(value)
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/")[0].split(":")[0].strip(".")
    text = text.split("@")[-1]
    return text[4:] if text.startswith("www.") else text


def natural_key(entity: str, row: Mapping[str, Any]) -> str | None:
    """The fields that identify a record when the file has no id column, normalized; None if it lacks them.

    deals: name + account name. Not the close date: it moves between exports, and the same deal must keep its id.
    contacts / leads: email, else full name (or first + last) + company. accounts: domain (or the website's), else
    the company name without legal suffixes (Inc, LLC, GmbH …). activities: occurred_at + subject + owner.
    """
    _check_entity(entity)
    get = lambda name: _norm_text(row.get(name))  # noqa: E731
    if entity == "deals":
        return f"deal:{get('name')}|{_norm_company(row.get('account_name'))}" if get("name") else None
    if entity in ("contacts", "leads"):
        if get("email"):
            return f"email:{get('email')}"
        name = get("full_name") or " ".join(p for p in (get("first_name"), get("last_name")) if p)
        company = _norm_company(row.get("company_name" if entity == "contacts" else "company"))
        return f"name:{name}|{company}" if name else None
    if entity == "accounts":
        domain = _norm_domain(row.get("domain")) or _norm_domain(row.get("website"))
        if domain:
            return f"domain:{domain}"
        name = _norm_company(row.get("name"))
        return f"name:{name}" if name else None
    if not (get("occurred_at") or get("subject")):
        return None
    return f"activity:{get('occurred_at')}|{get('subject')}|{get('owner')}"


def stable_source_id(entity: str, row: Mapping[str, Any], *, occurrence: int = 0) -> str:
    """"h:" + 16 hex digits of sha256 over the natural key: importing the same file twice yields the same ids.

    `occurrence` (0 for the first) tells apart rows of one file that share a natural key, in file order.
    """
    key = natural_key(entity, row)
    if key is None:
        raise InputError(f"a row of this {entity} file has no record id and no {_NATURAL_KEY_TEXT[entity]} "
                         f"to identify it")
    if occurrence:
        key = f"{key}#{occurrence}"
    return "h:" + hashlib.sha256(f"{entity}\x1f{key}".encode()).hexdigest()[:16]

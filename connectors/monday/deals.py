"""What a monday.com item says about its deal: a CRM record (HubSpot / Salesforce URL or id) or a deal name.

`deal_reference(text)` reads one cell: a HubSpot deal URL (`app.hubspot.com/contacts/<portal>/deal/<id>` or the
newer `/record/0-3/<id>`, any regional `app-*.hubspot.com` host), a Salesforce opportunity URL (Lightning
`/lightning/r/Opportunity/006…/view` or Classic `/006…`) or a bare opportunity id (`006` + 12 or 15 characters;
a 15-character id is widened to the 18-character form Salesforce's API returns) → ("hubspot" | "salesforce", id).
A bare number is taken as a HubSpot deal id *and* kept as a name, since a deal may be called "2026"; anything else
is a deal name. The linking itself happens after the sync in SQL (`connectors.monday.steps`).
"""
from __future__ import annotations

import re
from typing import NamedTuple

_HUBSPOT = re.compile(r"https?://app(?:-[a-z0-9]+)?\.hubspot(?:qa)?\.com/contacts/\d+/(?:deal|record/0-3)/(\d+)", re.I)
_SF_URL = re.compile(r"https?://[\w.-]+\.(?:force|salesforce)\.com/(?:lightning/r/Opportunity/)?(006[A-Za-z0-9]{12}"
                     r"(?:[A-Za-z0-9]{3})?)(?![A-Za-z0-9])")
_SF_ID = re.compile(r"^006[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
_NUMBER = re.compile(r"^\d{4,20}$")
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class DealRef(NamedTuple):
    crm: str | None      # "hubspot" | "salesforce" | None
    source_id: str | None
    name: str | None


def salesforce_id18(sf_id: str) -> str:
    """A 15-character (case-sensitive) Salesforce id in its 18-character form; 18-character ids unchanged."""
    if len(sf_id) != 15:
        return sf_id
    suffix = ""
    for chunk in (sf_id[0:5], sf_id[5:10], sf_id[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return sf_id + suffix


def deal_reference(value: str | None) -> DealRef | None:
    """The deal one cell names (see the module docstring), or None for an empty cell."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if m := _HUBSPOT.search(text):
        return DealRef("hubspot", m.group(1), None)
    if m := _SF_URL.search(text):
        return DealRef("salesforce", salesforce_id18(m.group(1)), None)
    if _SF_ID.match(text):
        return DealRef("salesforce", salesforce_id18(text), None)
    if _NUMBER.match(text):
        return DealRef("hubspot", text, text)
    if "://" in text:
        return None  # some other link: not a deal we can name
    return DealRef(None, None, text)


def is_crm_deal_url(url: str | None) -> bool:
    ref = deal_reference(url) if url and "://" in str(url) else None
    return ref is not None and ref.crm is not None

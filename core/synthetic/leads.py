"""Leads: about 40 % converted into a generated contact, account and new-business deal (the deal inherits
the lead's source), the rest still in the funnel at companies that are mostly not accounts yet."""
from __future__ import annotations

import random
from datetime import timedelta

from core.synthetic.deals import DealPlan
from core.synthetic.model import Clock, Person, Row, between, lognormal, pick
from core.synthetic.org import NamePool, company_names
from core.synthetic.vocab import CONTACT_TITLES, LEAD_SOURCES, SOURCE

CONVERTED_SHARE = 0.4
_SOURCES = [s for s, _ in LEAD_SOURCES]
_SOURCE_WEIGHTS = [w for _, w in LEAD_SOURCES]


def generate(rng: random.Random, target: int, plans: list[DealPlan], accounts: list[Row], reps: list[Person],
             clock: Clock, taken_names: set[str]) -> tuple[list[Row], dict[str, object]]:
    """Lead rows, and converted contact source_id → converted_at (the contact was created then)."""
    firsts: dict[str, DealPlan] = {}
    for plan in plans:  # plans are in creation order: a lead converts into its account's first deal
        firsts.setdefault(plan.account["source_id"], plan)
    new_business = [p for p in firsts.values() if p.row["deal_type"] == "new_business"]
    converted = rng.sample(new_business, min(round(target * CONVERTED_SHARE), len(new_business)))
    used_contacts: set[str] = set()
    contact_created: dict[str, object] = {}
    drafts: list[Row] = []
    for plan in sorted(converted, key=lambda p: p.row["source_id"]):
        contact = plan.contacts[0]
        if contact["source_id"] in used_contacts:
            continue
        used_contacts.add(contact["source_id"])
        acct = plan.account
        converted_at = plan.entered[0] - timedelta(hours=rng.randint(1, 48))
        created = converted_at - timedelta(days=rng.randint(3, 60), minutes=rng.randrange(600))
        lead_source = pick(rng, _SOURCES, _SOURCE_WEIGHTS)
        plan.row["lead_source"] = lead_source
        contact_created[contact["source_id"]] = converted_at
        drafts.append(_lead(
            created, contact["first_name"], contact["last_name"], contact["email"], contact["title"], contact["phone"],
            acct["name"], acct["domain"], acct["industry"], acct["employee_count"], "Converted", lead_source,
            pick(rng, ("Hot", "Warm")), plan.owner, converted_at, contact["source_id"], acct["source_id"],
            plan.row["source_id"], updated=converted_at,
        ))
    names = NamePool(rng)
    fresh = company_names(rng, target, taken_names)
    for i in range(max(0, target - len(drafts))):
        first, last = names.take()
        if rng.random() < 0.15:
            acct = pick(rng, accounts)
            company, domain, industry, employees = acct["name"], acct["domain"], acct["industry"], acct["employee_count"]
        else:
            company, industry, stem = fresh[i]
            domain, employees = f"{stem}.com", int(lognormal(rng, 350, 0.7, 20, 5000))
        title = pick(rng, CONTACT_TITLES, [t[3] for t in CONTACT_TITLES])[0]
        status = pick(rng, ("New", "Working", "Nurturing", "Unqualified"), (30, 25, 25, 20))
        owner = None if status == "New" and rng.random() < 0.4 else pick(rng, reps)
        created = between(rng, clock.days_ago(180), clock.now)
        email = f"{first}.{last}@{domain}".lower() if rng.random() > 0.02 else None
        drafts.append(_lead(
            created, first, last, email, title, None, company, domain, industry, employees, status,
            pick(rng, _SOURCES, _SOURCE_WEIGHTS), pick(rng, ("Hot", "Warm", "Cold", "Cold")), owner,
            None, None, None, None, updated=min(clock.now, created + timedelta(days=rng.randint(0, 20))),
        ))
    drafts.sort(key=lambda r: (r["source_created_at"], r["last_name"], r["first_name"]))
    for i, row in enumerate(drafts, 1):
        row["source_id"] = f"lead-{i:05d}"
        row["source_data"]["Id"] = row["source_id"]
    return drafts, contact_created


def _lead(created, first, last, email, title, phone, company, domain, industry, employees, status, lead_source,
          rating, owner: Person | None, converted_at, contact_sid, account_sid, deal_sid, *, updated) -> Row:
    return {
        "source": SOURCE, "source_id": "", "email": email, "first_name": first, "last_name": last, "title": title,
        "phone": phone, "company": company, "domain": domain, "industry": industry, "employee_count": employees,
        "status": status, "lead_source": lead_source, "rating": rating,
        "owner": owner.name if owner else None, "owner_email": owner.email if owner else None,
        "is_converted": converted_at is not None, "converted_at": converted_at,
        "converted_contact_source_id": contact_sid, "converted_account_source_id": account_sid,
        "converted_deal_source_id": deal_sid,
        "source_data": {
            "Id": "", "FirstName": first, "LastName": last, "Email": email, "Company": company, "Title": title,
            "Status": status, "LeadSource": lead_source, "Rating": rating, "IsConverted": converted_at is not None,
            "ConvertedDate": converted_at.date().isoformat() if converted_at else None,
            "ConvertedContactId": contact_sid, "ConvertedAccountId": account_sid,
            "ConvertedOpportunityId": deal_sid, "CreatedDate": created.isoformat(),
        },
        "custom_fields": {}, "source_created_at": created, "source_updated_at": updated,
    }

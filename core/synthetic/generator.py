"""`generate`: put Demo Co together from the parts, then make the cross-entity facts agree (account types,
contact lifecycle stages, and creation times that precede every reference to a record)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from core.errors import InputError
from core.synthetic import activities, deals, leads, meetings, org, workitems
from core.synthetic.deals import DealPlan
from core.synthetic.model import Clock, Dataset, Row, sub_rng

# Rows per unit of scale.
PER_SCALE = {"accounts": 150, "contacts": 600, "deals": 400, "activities": 4000, "conversations": 600,
             "tasks": 300, "documents": 150, "leads": 300}


def generate(seed: int = 7, scale: int = 1, today: date | None = None) -> Dataset:
    """A believable B2B SaaS company's GTM data, deterministic for (seed, scale, today). Pure: no I/O."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise InputError(f"scale must be a whole number of at least 1, got {scale!r}", field="scale")
    today = today or date.today()
    clock = Clock(today)

    def rng(part: str):
        return sub_rng(seed, scale, part)

    def n(table: str) -> int:
        return PER_SCALE[table] * scale

    staff = org.people(rng("people"), scale)
    reps = [p for p in staff if p.role == "account_executive"]
    taken_names: set[str] = set()
    accounts = org.accounts(rng("accounts"), n("accounts"), reps, clock, taken_names)
    contacts = org.contacts(rng("contacts"), accounts, n("contacts"), clock)
    by_account: dict[str, list[Row]] = {a["source_id"]: [] for a in accounts}
    for c in contacts:
        by_account[c["account_source_id"]].append(c)

    plans = deals.generate(rng("deals"), n("deals"), accounts, by_account, reps, clock)
    reps_by_name = {r.name: r for r in reps}
    acts = activities.generate(rng("activities"), n("activities"), plans, accounts, by_account, reps_by_name, clock)
    convs = meetings.generate(rng("conversations"), n("conversations"), plans, accounts, by_account, staff, clock)
    tasks = workitems.tasks(rng("tasks"), n("tasks"), plans, staff, clock)
    docs = workitems.documents(rng("documents"), n("documents"), plans, clock)
    lead_rows, converted = leads.generate(rng("leads"), n("leads"), plans, accounts, reps, clock, taken_names)

    _settle(rng("settle"), accounts, contacts, plans, acts, convs, converted, clock)
    return Dataset(
        seed=seed, scale=scale, today=today, people=staff,
        quotas=org.quotas(rng("quotas"), reps, today, scale),
        tables={
            "accounts": accounts, "contacts": contacts, "deals": [p.row for p in plans],
            "deal_stage_history": deals.history_rows(plans), "activities": acts, "conversations": convs,
            "tasks": tasks, "documents": docs, "leads": lead_rows,
        },
    )


def _settle(rng, accounts: list[Row], contacts: list[Row], plans: list[DealPlan], acts: list[Row],
            convs: list[Row], converted: dict[str, datetime], clock: Clock) -> None:
    first_seen: dict[str, datetime] = {}

    def seen(key: str | None, moment: datetime) -> None:
        if key and (key not in first_seen or moment < first_seen[key]):
            first_seen[key] = moment

    by_email = {c["email"]: c["source_id"] for c in contacts if c["email"]}
    for plan in plans:
        seen(plan.account["source_id"], plan.entered[0])
        for c in plan.contacts:
            seen(c["source_id"], plan.entered[0])
    for a in acts:
        seen(a["contact_source_id"], a["occurred_at"])
    for cv in convs:
        for party in cv["participants"]:
            seen(by_email.get(party["email"]), cv["started_at"])
    last_seen: dict[str, datetime] = {}
    for a in acts:
        for key in (a["contact_source_id"], a["account_source_id"]):
            last_seen[key] = max(last_seen.get(key, a["occurred_at"]), a["occurred_at"])

    won = {p.account["source_id"] for p in plans if p.stage == "closed_won"}
    open_contacts = {c["source_id"] for p in plans if p.is_open for c in p.contacts}
    deal_contacts = {c["source_id"] for p in plans for c in p.contacts}
    earliest_contact: dict[str, datetime] = {}
    for c in contacts:
        sid, acct = c["source_id"], c["account_source_id"]
        if sid in converted:
            c["source_created_at"] = converted[sid]
        elif sid in first_seen and first_seen[sid] <= c["source_created_at"]:
            c["source_created_at"] = first_seen[sid] - timedelta(hours=rng.randint(2, 240))
        c["lifecycle_stage"] = ("customer" if acct in won else "opportunity" if sid in open_contacts
                                else "salesqualifiedlead" if sid in deal_contacts
                                else rng.choice(("lead", "marketingqualifiedlead", "subscriber")))
        c["lead_status"] = None if sid in deal_contacts else rng.choice(("NEW", "OPEN", "IN_PROGRESS", "ATTEMPTED_TO_CONTACT"))
        c["source_updated_at"] = max(c["source_created_at"], last_seen.get(sid, c["source_created_at"]))
        c["source_data"] = {"id": sid, "properties": {
            "email": c["email"], "firstname": c["first_name"], "lastname": c["last_name"], "jobtitle": c["title"],
            "phone": c["phone"], "company": c["company_name"], "lifecyclestage": c["lifecycle_stage"],
            "hs_lead_status": c["lead_status"], "hubspot_owner_id": c["owner_email"],
            "createdate": c["source_created_at"].isoformat(),
        }, "associations": {"companies": [acct]}}
        earliest_contact[acct] = min(earliest_contact.get(acct, c["source_created_at"]), c["source_created_at"])
    for a in accounts:
        sid = a["source_id"]
        firsts = [t for t in (first_seen.get(sid), earliest_contact.get(sid)) if t is not None]
        if firsts and min(firsts) <= a["source_created_at"]:
            a["source_created_at"] = min(firsts) - timedelta(days=rng.randint(1, 30))
        a["account_type"] = "Customer" if sid in won else "Prospect"
        a["source_updated_at"] = max(a["source_created_at"], last_seen.get(sid, a["source_created_at"]))
        a["source_data"] = {"id": sid, "properties": {
            "name": a["name"], "domain": a["domain"], "website": a["website"],
            "industry": a["industry"].upper().replace(" & ", "_").replace(" ", "_").replace("-", "_"),
            "numberofemployees": str(a["employee_count"]), "annualrevenue": str(a["annual_revenue"]),
            "country": a["country"], "state": a["state"], "city": a["city"], "type": a["account_type"].upper(),
            "hubspot_owner_id": a["owner_email"], "createdate": a["source_created_at"].isoformat(),
        }}

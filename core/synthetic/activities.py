"""CRM activities (emails, calls, meetings, notes) on deals and accounts.

Most of the budget is spread over deals in proportion to how long each was active; every deal's last
activity lands exactly on its `end` (so a stale deal is silent since then); the rest are account-level
prospecting touches with no deal.
"""
from __future__ import annotations

import random
from datetime import datetime

from core.synthetic.deals import DealPlan
from core.synthetic.model import Clock, Person, Row, between, pick, spread
from core.synthetic.vocab import CALL_SUBJECTS, EMAIL_SUBJECTS, NOTE_SUBJECTS, SOURCE

DEAL_SHARE = 0.88
_TYPES = ("email", "call", "meeting", "note")
_TYPE_WEIGHTS = {
    "awareness": (60, 25, 5, 10), "qualification": (50, 25, 12, 13), "evaluation": (45, 15, 25, 15),
    "decision": (50, 15, 20, 15), "negotiation": (55, 20, 12, 13), "closed_won": (60, 10, 20, 10),
    "closed_lost": (60, 25, 5, 10),
}


def generate(rng: random.Random, target: int, plans: list[DealPlan], accounts: list[Row],
             contacts_by_account: dict[str, list[Row]], reps_by_name: dict[str, Person], clock: Clock) -> list[Row]:
    budget = round(target * DEAL_SHARE)
    weights = [((p.end - p.entered[0]).days + 5) ** 0.8 for p in plans]
    total = sum(weights)
    drafts: list[tuple[datetime, Row]] = []
    for plan, w in zip(plans, weights):
        raw = budget * w / total
        n = max(2, int(raw) + (rng.random() < raw - int(raw)))
        moments = [*spread(rng, plan.entered[0], plan.end, n - 1), plan.end]
        for moment in moments:
            contact = pick(rng, plan.contacts) if rng.random() < 0.5 else plan.contacts[0]
            drafts.append((moment, _activity(rng, moment, plan.stage_at(moment), plan.owner, plan.account, contact,
                                             plan.row["source_id"], plan.row["custom_fields"])))
    for _ in range(max(0, target - len(drafts))):
        acct = pick(rng, accounts)
        contact = pick(rng, contacts_by_account[acct["source_id"]])
        moment = between(rng, clock.days_ago(200), clock.now)
        owner = reps_by_name[acct["owner"]]
        drafts.append((moment, _activity(rng, moment, "awareness", owner, acct, contact, None, {})))
    drafts.sort(key=lambda d: (d[0], d[1]["deal_source_id"] or "", d[1]["contact_source_id"] or ""))
    rows = []
    for i, (_, row) in enumerate(drafts, 1):
        row["source_id"] = f"act-{i:06d}"
        row["source_data"]["id"] = row["source_id"]
        rows.append(row)
    return rows


def _activity(rng: random.Random, moment: datetime, stage: str, owner: Person, acct: Row, contact: Row,
              deal_sid: str | None, custom: dict) -> Row:
    kind = pick(rng, _TYPES, _TYPE_WEIGHTS[stage])
    first = contact["first_name"]
    fmt = {"first": first, "account": acct["name"], "seats": custom.get("seats", 50),
           "competitor": custom.get("competitor") or "a spreadsheet", "industry": acct["industry"]}
    direction = duration = body = None
    if kind == "email":
        direction = "outbound" if rng.random() < 0.7 else "inbound"
        subject = pick(rng, EMAIL_SUBJECTS[stage]).format(**fmt)
        if direction == "inbound" and not subject.startswith("Re:"):
            subject = f"Re: {subject}"
        body = f"Hi {first if direction == 'outbound' else owner.first}, following up on {subject.removeprefix('Re: ').lower()}."
    elif kind == "call":
        direction = "outbound" if rng.random() < 0.85 else "inbound"
        subject = pick(rng, CALL_SUBJECTS).format(**fmt)
        duration = 25 if subject.startswith("Left voicemail") else rng.randrange(120, 1800, 15)
    elif kind == "meeting":
        subject = f"{acct['name']} / Demo Co — {pick(rng, ('Sync', 'Working session', 'Follow-up', 'Review'))}"
        duration = pick(rng, (1800, 2700, 3600))
    else:
        subject = pick(rng, NOTE_SUBJECTS).format(**fmt)
        body = subject.removeprefix("Note: ").capitalize() + "."
    participants = [{"name": owner.name, "email": owner.email, "affiliation": "internal"}]
    if kind != "note":
        participants.append({"name": f"{first} {contact['last_name']}", "email": contact["email"],
                             "affiliation": "external"})
    return {
        "source": SOURCE, "source_id": "", "activity_type": kind, "subject": subject, "body": body,
        "direction": direction, "occurred_at": moment, "duration_seconds": duration,
        "owner": owner.name, "owner_email": owner.email, "participants": participants,
        "contact_source_id": contact["source_id"], "account_source_id": acct["source_id"],
        "deal_source_id": deal_sid,
        "source_data": {
            "id": "", "type": kind.upper(), "timestamp": moment.isoformat(), "ownerId": owner.email,
            "associations": {"dealIds": [deal_sid] if deal_sid else [], "contactIds": [contact["source_id"]],
                             "companyIds": [acct["source_id"]]},
        },
        "custom_fields": {}, "source_created_at": moment, "source_updated_at": moment,
    }

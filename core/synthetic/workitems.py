"""Tasks (a Monday-like board) and documents (a Drive-like folder per customer) around the deals.

Tasks follow a deal's current stage; on open deals some are overdue (due before today, still open), on
closed deals they are done or deferred. Documents appear at the stage that produces them (a deck in
evaluation, a proposal in decision, contracts in negotiation). The `documents` table has no source-id
reference columns, so the deal and account they belong to travel as `crm_context` in `source_data`.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from core.synthetic.deals import DealPlan
from core.synthetic.model import Clock, Person, Row, between, pick
from core.synthetic.vocab import COMPANY_NAME, SOURCE, TASK_PROJECTS, TASK_TITLES


def tasks(rng: random.Random, target: int, plans: list[DealPlan], people: list[Person], clock: Clock) -> list[Row]:
    today = clock.today
    drafts: list[Row] = []
    for plan in plans:
        if plan.is_open:
            count = 1 + (rng.random() < 0.45)
        elif (clock.now - plan.end).days < 150:
            count = 1
        else:
            continue
        for _ in range(count):
            stage = plan.stage
            contact = pick(rng, plan.contacts)
            title = pick(rng, TASK_TITLES[stage]).format(account=plan.account["name"], first=contact["first_name"])
            created = between(rng, plan.entered[-1], plan.end) if plan.is_open else \
                between(rng, plan.end - timedelta(days=10), plan.end)
            due = created.date() + timedelta(days=rng.randint(2, 14))
            if plan.is_open:
                r = rng.random()
                status = ("completed" if r < 0.35 else "open") if due < today else \
                    ("open" if r < 0.55 else "in_progress" if r < 0.85 else "completed")
            else:
                status = "deferred" if plan.stage == "closed_lost" and rng.random() < 0.3 else "completed"
            completed_at = between(rng, created, min(clock.now, created + timedelta(days=10))) \
                if status == "completed" else None
            priority = "high" if stage in ("decision", "negotiation") else pick(rng, ("medium", "medium", "low"))
            drafts.append(_task(created, title, status, priority, due, completed_at, plan.owner, plan, contact))
    drafts = rng.sample(drafts, min(target, len(drafts)))
    # A few board chores that belong to no deal.
    chores = ("Update territory plan", "Clean up stale opportunities", "Refresh Q{q} account list",
              "Review lost deals from last quarter")
    owners = [p for p in people if p.role in ("account_executive", "revops")]
    for _ in range(max(0, target - len(drafts))):
        created = clock.days_ago(rng.uniform(1, 60))
        due = created.date() + timedelta(days=rng.randint(3, 21))
        status = pick(rng, ("open", "completed", "in_progress"))
        done = between(rng, created, clock.now) if status == "completed" else None
        title = pick(rng, chores).format(q=(today.month - 1) // 3 + 1)
        drafts.append(_task(created, title, status, "low", due, done, pick(rng, owners), None, None))
    drafts.sort(key=lambda r: (r["source_created_at"], r["title"]))
    for i, row in enumerate(drafts, 1):
        row["source_id"] = f"task-{i:05d}"
        row["url"] = f"https://democo.monday.com/boards/4410/pulses/{90_000_000 + i}"
        row["source_data"]["id"] = str(90_000_000 + i)
    return drafts


def _task(created: datetime, title: str, status: str, priority: str, due, completed_at, owner: Person,
          plan: DealPlan | None, contact: Row | None) -> Row:
    project = TASK_PROJECTS[0] if plan is None or plan.is_open else \
        TASK_PROJECTS[2] if plan.stage == "closed_won" else TASK_PROJECTS[1]
    return {
        "source": SOURCE, "source_id": "", "title": title,
        "description": f"{title}. Owner: {owner.first}." if plan else None,
        "status": status, "priority": priority, "due_date": due, "completed_at": completed_at,
        "assignee": owner.name, "assignee_email": owner.email, "project": project, "url": None,
        "contact_source_id": contact["source_id"] if contact else None,
        "account_source_id": plan.account["source_id"] if plan else None,
        "deal_source_id": plan.row["source_id"] if plan else None,
        "source_data": {
            "id": "", "name": title, "board": {"name": project},
            "column_values": {"status": status, "priority": priority, "date": due.isoformat(),
                              "person": owner.email},
        },
        "custom_fields": {}, "source_created_at": created, "source_updated_at": completed_at or created,
    }


_DOCS = {
    "evaluation": (("deck", "{account} — {company} Overview.pptx"), ("deck", "{account} Pilot Plan.pptx")),
    "decision": (("proposal", "{account} — {company} Proposal.pdf"), ("proposal", "{company} Proposal for {account} v2.pdf"),
                 ("notes", "{account} Business Case.docx")),
    "negotiation": (("contract", "{account} — Order Form.pdf"), ("contract", "{account} MSA (redlined).docx")),
    "closed_won": (("contract", "{account} — Signed Order Form.pdf"), ("notes", "{account} Mutual Success Plan.docx")),
}
_MIME = {"pdf": "application/pdf",
         "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
         "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}


def documents(rng: random.Random, target: int, plans: list[DealPlan], clock: Clock) -> list[Row]:
    drafts: list[Row] = []
    for plan in plans:
        for n, (stage, entered) in enumerate(zip(plan.path, plan.entered)):
            if stage not in _DOCS or (n + 1 < len(plan.path) and plan.path[n + 1] == stage):
                continue
            until = plan.entered[n + 1] if n + 1 < len(plan.path) else \
                plan.end if plan.is_open else min(plan.end + timedelta(days=3), clock.now)
            doc_type, pattern = pick(rng, _DOCS[stage])
            created = between(rng, entered, max(entered, until))
            title = pattern.format(account=plan.account["name"], company=COMPANY_NAME)
            drafts.append(_document(rng, created, title, doc_type, plan, clock))
    drafts = rng.sample(drafts, min(target, len(drafts)))
    drafts.sort(key=lambda r: (r["source_created_at"], r["title"]))
    for i, row in enumerate(drafts, 1):
        file_id = f"1DemoCo{i:06d}x"
        row["source_id"] = f"doc-{i:05d}"
        row["url"] = f"https://drive.google.com/file/d/{file_id}/view"
        row["source_data"].update(id=file_id, webViewLink=row["url"])
    return drafts


def _document(rng: random.Random, created: datetime, title: str, doc_type: str, plan: DealPlan, clock: Clock) -> Row:
    ext = title.rsplit(".", 1)[1]
    modified = min(clock.now, created + timedelta(days=rng.randint(0, 6), minutes=rng.randrange(600)))
    folder = f"/Sales/Customers/{plan.account['name']}"
    return {
        "source": SOURCE, "source_id": "", "title": title, "mime_type": _MIME[ext], "doc_type": doc_type,
        "url": None, "folder_path": folder, "size_bytes": rng.randrange(80_000, 6_000_000, 512),
        "owner": plan.owner.name, "owner_email": plan.owner.email,
        "source_data": {
            "id": "", "name": title, "mimeType": _MIME[ext], "createdTime": created.isoformat(),
            "modifiedTime": modified.isoformat(), "owners": [{"emailAddress": plan.owner.email}],
            "parents": [folder],
            "crm_context": {"account_source_id": plan.account["source_id"], "deal_source_id": plan.row["source_id"]},
        },
        "custom_fields": {}, "source_created_at": created, "source_updated_at": modified,
    }

"""Recorded meetings (the `conversations` table), as a call recorder would hand them over.

About 80 % are external: deal meetings at the stages the deal went through ("Acme <> Demo Co — Demo"), plus
account-level calls with no deal (intros at accounts with no opportunity: the conversations-without-deals
case, and customer check-ins, some titled like internal meetings, e.g. "Weekly sync"). The rest are internal
meetings with only democo.io people. The generator never decides `is_internal`, `link_method`, `account_id`
or `deal_id`: post-sync steps do, from the participants and the `crm_context` hints left in `source_data`.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from core.synthetic.deals import DealPlan
from core.synthetic.model import Clock, Person, Row, between, pick
from core.synthetic.vocab import COMPANY_NAME, INTERNAL_MEETINGS, MEETING_KINDS, SOURCE

INTERNAL_SHARE = 0.2
DEAL_SHARE_OF_EXTERNAL = 0.8
_GUESTS = ("iPhone", "Call-in User 1", "Guest", "Conference Room B")


def generate(rng: random.Random, target: int, plans: list[DealPlan], accounts: list[Row],
             contacts_by_account: dict[str, list[Row]], people: list[Person], clock: Clock) -> list[Row]:
    n_internal = round(target * INTERNAL_SHARE)
    n_deal = round((target - n_internal) * DEAL_SHARE_OF_EXTERNAL)
    n_account = target - n_internal - n_deal
    by_name = {p.name: p for p in people}
    ses = {p.team: p for p in people if p.role == "sales_engineer"}

    deal_calls = _deal_candidates(rng, plans, clock)
    deal_calls = rng.sample(deal_calls, min(n_deal, len(deal_calls)))
    drafts = [_external(rng, t, kind, plan.account, plan.owner, plan.contacts, plan, ses, by_name)
              for t, kind, plan in deal_calls]

    with_open = {p.account["source_id"] for p in plans if p.is_open}
    with_won = {p.account["source_id"] for p in plans if p.stage == "closed_won"}
    no_deals = [a for a in accounts if a["source_id"] not in {p.account["source_id"] for p in plans}]
    customers = [a for a in accounts if a["source_id"] in with_won and a["source_id"] not in with_open]
    for _ in range(n_account):
        if no_deals and (rng.random() < 0.55 or not customers):
            acct, kind = pick(rng, no_deals), pick(rng, ("Intro call", "Discovery", "Product overview"))
        else:
            acct = pick(rng, customers or accounts)
            kind = pick(rng, ("Check-in", "QBR", "Weekly sync", "Renewal planning"))
        owner = by_name[acct["owner"]]
        contacts = [c for c in contacts_by_account[acct["source_id"]] if c["email"]] or contacts_by_account[acct["source_id"]]
        chosen = rng.sample(contacts, min(len(contacts), rng.randint(1, 3)))
        moment = between(rng, clock.days_ago(90), clock.now)
        drafts.append(_external(rng, moment, kind, acct, owner, chosen, None, ses, by_name))

    internal = _internal_candidates(rng, plans, people, clock)
    drafts.extend(rng.sample(internal, min(n_internal, len(internal))))

    drafts.sort(key=lambda r: (r["started_at"], r["title"]))
    for i, row in enumerate(drafts, 1):
        row["source_id"] = f"conv-{i:05d}"
        row["source_data"]["metaData"]["id"] = row["source_id"]
        row["call_url"] = f"https://app.gong.io/call?id={7_000_000_000 + i}"
    return drafts


def _deal_candidates(rng: random.Random, plans: list[DealPlan], clock: Clock) -> list[tuple[datetime, str, DealPlan]]:
    """One or two meetings per stage a deal passed through, each inside that stage's time in the deal."""
    out = []
    for plan in plans:
        for n, (stage, entered) in enumerate(zip(plan.path, plan.entered)):
            if stage == "closed_won":
                moment = entered + timedelta(days=rng.randint(2, 12))
                if moment < clock.now:
                    out.append((moment, pick(rng, MEETING_KINDS[stage]), plan))
                continue
            if stage == "closed_lost":
                if rng.random() < 0.1:
                    out.append((entered + timedelta(days=rng.randint(1, 7)), "Debrief", plan))
                continue
            until = plan.entered[n + 1] if n + 1 < len(plan.path) else plan.end
            until = min(until, entered + timedelta(days=14))
            for _ in range(2 if stage in ("evaluation", "decision") and rng.random() < 0.5 else 1):
                out.append((between(rng, entered, until), pick(rng, MEETING_KINDS[stage]), plan))
    out = [c for c in out if c[0] <= clock.now]
    out.sort(key=lambda c: (c[0], c[2].row["source_id"]))
    return out


def _external(rng: random.Random, moment: datetime, kind: str, acct: Row, owner: Person, contacts: list[Row],
              plan: DealPlan | None, ses: dict, by_name: dict[str, Person]) -> Row:
    internal = [owner]
    if kind in ("Demo", "Technical deep dive", "Pilot check-in", "Business case review") and rng.random() < 0.6:
        internal.append(ses.get(owner.team) or owner)
    if kind in ("Contract review", "Pricing discussion", "QBR") and owner.manager and rng.random() < 0.4:
        internal.append(by_name[owner.manager])
    externals = contacts[: rng.randint(1, min(3, len(contacts)))]
    parties = [{"name": p.name, "email": p.email, "affiliation": "internal"} for p in dict.fromkeys(internal)]
    parties += [{"name": f"{c['first_name']} {c['last_name']}", "email": c["email"], "affiliation": "external"}
                for c in externals]
    if rng.random() < 0.08:
        parties.append({"name": pick(rng, _GUESTS), "email": None, "affiliation": "external"})
    hint: dict = {}
    r = rng.random()
    if plan is not None and r < 0.6:
        hint = {"crm_context": {"account_source_id": acct["source_id"], "deal_source_id": plan.row["source_id"]}}
    elif r < 0.75:
        hint = {"crm_context": {"account_source_id": acct["source_id"]}}
    duration = rng.randrange(600, 1200, 30) if rng.random() < 0.2 else rng.randrange(1500, 3700, 30)
    title = f"{acct['name']} <> {COMPANY_NAME} — {kind}"
    names = ", ".join(p["name"] for p in parties if p["affiliation"] == "external" and p["email"])
    summary = f"{kind} with {names}. Covered {acct['name']}'s forecasting process and next steps." \
        if rng.random() < 0.7 else None
    return _row(moment, title, owner, parties, duration, summary, "External", hint)


def _internal_candidates(rng: random.Random, plans: list[DealPlan], people: list[Person], clock: Clock) -> list[Row]:
    """Sixteen weeks of recurring internal meetings, plus deal reviews, to sample from."""
    managers = [p for p in people if p.role == "sales_manager"]
    sales = [p for p in people if p.role in ("account_executive", "sales_engineer", "sales_manager")]
    revops = [p for p in people if p.role == "revops"]
    engineers = [p for p in people if p.role == "engineering"]
    open_plans = [p for p in plans if p.is_open]
    out = []
    monday = clock.today - timedelta(days=clock.today.weekday())
    for week in range(16):
        start = clock.at(monday - timedelta(weeks=week), rng)
        for m in managers:
            team = [p for p in people if p.manager == m.name]
            for team_name in sorted({p.team for p in team}):
                members = [m, *[p for p in team if p.team == team_name]]
                out.append(_row(start, f"{INTERNAL_MEETINGS[0]} — {team_name}", m, _parties(members), 3600))
            if week % 2 == 0:
                for rep in (p for p in team if p.role == "account_executive"):
                    out.append(_row(start + timedelta(days=rng.randint(1, 4)), f"1:1 {m.first} / {rep.first}",
                                    m, _parties([m, rep]), 1800))
            if open_plans:
                plan = pick(rng, [p for p in open_plans if p.owner.manager == m.name] or open_plans)
                title = INTERNAL_MEETINGS[6].format(account=plan.account["name"])
                out.append(_row(start + timedelta(days=2), title, m, _parties([m, plan.owner]), 1800))
        out.append(_row(start + timedelta(days=3), INTERNAL_MEETINGS[1], managers[0],
                        _parties(managers + revops), 2700))
        if revops:
            out.append(_row(start + timedelta(days=1), INTERNAL_MEETINGS[4], revops[0], _parties(revops + managers), 1800))
        if week % 2 == 1 and engineers:
            out.append(_row(start + timedelta(days=4), INTERNAL_MEETINGS[2], engineers[0], _parties(engineers + revops), 3600))
        if week % 4 == 0:
            out.append(_row(start + timedelta(days=4), INTERNAL_MEETINGS[3], managers[0], _parties(sales), 3600))
    return [r for r in out if r["started_at"] <= clock.now]


def _parties(people: list[Person]) -> list[dict]:
    return [{"name": p.name, "email": p.email, "affiliation": "internal"} for p in dict.fromkeys(people)]


def _row(moment: datetime, title: str, organizer: Person, parties: list[dict], duration: int,
         summary: str | None = None, scope: str = "Internal", hint: dict | None = None) -> Row:
    return {
        "source": SOURCE, "source_id": "", "title": title, "started_at": moment, "duration_seconds": duration,
        "organizer_email": organizer.email, "owner": organizer.name, "participants": parties, "call_url": None,
        "summary": summary,
        "source_data": {
            "metaData": {"id": "", "title": title, "started": moment.isoformat(), "duration": duration,
                         "primaryUserId": organizer.email, "system": "Zoom", "scope": scope},
            "parties": parties, **(hint or {}),
        },
        "custom_fields": {}, "source_created_at": moment, "source_updated_at": moment,
    }

"""Deals and their stage history.

Each deal gets a timeline first (created → stages → close or today), and every column is derived from it, so
the row, its `deal_stage_history` and the activities generated later all agree: the history starts at
`source_created_at`, ends at the current stage entered at `stage_entered_at` (= `closed_at` for closed
deals), closed deals close on or before today, and open deals carry a `last_touch` the engagement generator
honours (stale deals have no activity after it).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core.quotas import fiscal_quarter
from core.synthetic.model import Clock, Person, Row, lognormal, pick, spread
from core.synthetic.vocab import (
    COMPETITORS, LEAD_SOURCES, LOSS_REASONS, NEXT_STEPS, OPEN_STAGES, PIPELINE, PRODUCTS, SOURCE, STAGES,
    USE_CASES,
)

OPEN_SHARE = 0.38
OPEN_STAGE_WEIGHTS = (14, 24, 26, 20, 16)
LOST_FROM_WEIGHTS = (15, 30, 30, 18, 7)
STALE_SHARE = 0.22
PRICE_PER_SEAT = 1_200


@dataclass
class DealPlan:
    """A deal's row plus what the other generators need to stay consistent with it."""
    row: Row
    account: Row
    owner: Person
    contacts: list[Row]
    path: list[str]
    entered: list[datetime]
    end: datetime             # last moment anything happened on the deal (last activity; closed_at if closed)
    stale: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return self.path[-1]

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_STAGES

    def stage_at(self, moment: datetime) -> str:
        stage = self.path[0]
        for s, t in zip(self.path, self.entered):
            if t <= moment:
                stage = s
        return stage


def generate(rng: random.Random, n: int, accounts: list[Row], contacts_by_account: dict[str, list[Row]],
             reps: list[Person], clock: Clock) -> list[DealPlan]:
    by_name = {r.name: r for r in reps}
    team_of: dict[str, list[Person]] = {}
    for r in reps:
        team_of.setdefault(r.team or "", []).append(r)

    # 80 % of accounts ever had a deal; each gets one, the rest land on them with uneven weights.
    active = accounts[:]
    rng.shuffle(active)
    active = active[: max(1, min(n, round(len(accounts) * 0.8)))]
    weights = [rng.gammavariate(1.2, 1.0) for _ in active]
    owners_accounts = active + rng.choices(active, weights=weights, k=n - len(active))

    plans = [_timeline(rng, acct, _owner(rng, acct, by_name, team_of), contacts_by_account[acct["source_id"]], clock)
             for acct in owners_accounts]
    plans.sort(key=lambda p: (p.entered[0], p.account["source_id"]))
    _deal_types(plans)
    for i, plan in enumerate(plans, 1):
        _fill_row(rng, plan, f"deal-{i:05d}", clock)
    return plans


def history_rows(plans: list[DealPlan]) -> list[Row]:
    rows = []
    for plan in plans:
        sid = plan.row["source_id"]
        for n, (stage, entered) in enumerate(zip(plan.path, plan.entered), 1):
            exited = plan.entered[n] if n < len(plan.path) else None
            label, internal, _ = STAGES[stage]
            rows.append({
                "source": SOURCE, "source_id": f"{sid}:{n}", "deal_source_id": sid, "stage": label,
                "stage_normalized": stage, "entered_at": entered, "exited_at": exited,
                "source_data": {"dealId": sid, "propertyName": "dealstage", "value": internal,
                                "timestamp": entered.isoformat(), "sourceType": "CRM_UI"},
                "custom_fields": {}, "source_created_at": entered, "source_updated_at": exited or entered,
            })
    return rows


def _owner(rng, acct: Row, by_name: dict[str, Person], team_of: dict[str, list[Person]]) -> Person:
    owner = by_name[acct["owner"]]
    if rng.random() < 0.1:
        owner = pick(rng, team_of[owner.team or ""])
    return owner


def _timeline(rng: random.Random, acct: Row, owner: Person, contacts: list[Row], clock: Clock) -> DealPlan:
    now, today = clock.now, clock.today
    start_idx = 0 if rng.random() < 0.65 else 1
    stale = False
    extra: dict = {}
    if rng.random() < OPEN_SHARE:
        stage_idx = OPEN_STAGES.index(pick(rng, OPEN_STAGES, OPEN_STAGE_WEIGHTS))
        age = lognormal(rng, (15, 30, 50, 70, 85)[stage_idx], 0.5, 3 + 4 * stage_idx, 400)
        created = clock.at(today - timedelta(days=int(age)), rng) - timedelta(hours=1)
        path = list(OPEN_STAGES[min(start_idx, stage_idx): stage_idx + 1])
        extra["close_date"] = _open_close_date(rng, stage_idx, clock)
        if extra["close_date"] is not None and extra["close_date"] <= created.date():
            created = clock.at(extra["close_date"] - timedelta(days=rng.randint(20, 60)), rng)
        stale = rng.random() < STALE_SHARE and (now - created).days > 20
        last_touch = clock.days_ago(rng.uniform(15, min(60, (now - created).days - 2))) if stale \
            else clock.days_ago(rng.uniform(0, 10))
        if len(path) == 1:
            entered_last = created
        else:
            in_stage = lognormal(rng, 12, 0.8, 1, 120)
            entered_last = max(created + timedelta(days=len(path) - 1), now - timedelta(days=in_stage))
            if stale:
                entered_last = min(entered_last, last_touch - timedelta(hours=2))
        if entered_last <= created:
            entered_last = created + timedelta(minutes=len(path) * 10)
        last_touch = max(last_touch, entered_last, created)
        end = last_touch
    else:
        won = rng.random() < min(0.7, 0.39 * owner.win_skill)
        days_back = max(1, int(450 * rng.random() ** 1.08))
        close_date = today - timedelta(days=days_back)
        cycle = lognormal(rng, 75, 0.45, 21, 300) if won else lognormal(rng, 55, 0.55, 7, 300)
        closed_at = clock.at(close_date, rng)
        created = clock.at(close_date - timedelta(days=int(cycle)), rng)
        if won:
            path = list(OPEN_STAGES[start_idx:])
            if rng.random() < 0.1:
                path.remove("decision")
            path.append("closed_won")
        else:
            lost_idx = OPEN_STAGES.index(pick(rng, OPEN_STAGES, LOST_FROM_WEIGHTS))
            path = list(OPEN_STAGES[min(start_idx, lost_idx): lost_idx + 1]) + ["closed_lost"]
        extra["close_date"] = close_date
        entered_last = end = closed_at
    _maybe_skip_and_regress(rng, path)
    entered = [created, *spread(rng, created, entered_last, len(path) - 2), entered_last][: len(path)]
    if len(path) == 1:
        entered = [created]
    return DealPlan({}, acct, owner, _deal_contacts(rng, contacts), path, entered, end, stale, extra)


def _open_close_date(rng: random.Random, stage_idx: int, clock: Clock) -> date | None:
    today = clock.today
    r = rng.random()
    if r < 0.07:
        return today - timedelta(days=rng.randint(1, 45))   # past due: a hygiene finding
    if r < 0.11:
        return None                                         # missing: a data-quality finding
    quarter = fiscal_quarter(today)
    if rng.random() < (0.25, 0.35, 0.5, 0.65, 0.8)[stage_idx] and quarter.end_date > today:
        return today + timedelta(days=rng.randint(1, (quarter.end_date - today).days))
    target = fiscal_quarter(quarter.end_date + timedelta(days=1))
    if rng.random() < 0.2:
        target = fiscal_quarter(target.end_date + timedelta(days=1))
    return target.start_date + timedelta(days=rng.randint(0, (target.end_date - target.start_date).days))


def _maybe_skip_and_regress(rng: random.Random, path: list[str]) -> None:
    open_part = [s for s in path if s in OPEN_STAGES]
    if len(open_part) >= 4 and rng.random() < 0.1:
        path.remove(open_part[rng.randrange(1, len(open_part) - 1)])
    # A stage regression: e.g. decision → evaluation → decision, then on as before.
    candidates = [i for i, s in enumerate(path) if i >= 1 and s in OPEN_STAGES[2:] and path[i - 1] in OPEN_STAGES]
    if candidates and rng.random() < 0.08:
        i = pick(rng, candidates)
        path[i + 1: i + 1] = [path[i - 1], path[i]]


def _deal_contacts(rng: random.Random, contacts: list[Row]) -> list[Row]:
    with_email = [c for c in contacts if c["email"]] or contacts
    k = min(len(with_email), pick(rng, (1, 2, 3, 4), (30, 30, 25, 15)))
    return [with_email[0], *rng.sample(with_email[1:], k - 1)] if k > 1 else with_email[:1]


def _deal_types(plans: list[DealPlan]) -> None:
    """new_business unless the account already won a deal that closed before this one was created."""
    wins: dict[str, list[datetime]] = {}
    for plan in plans:
        acct, created = plan.account["source_id"], plan.entered[0]
        prior = [t for t in wins.get(acct, []) if t < created]
        if not prior:
            plan.extra["deal_type"] = "new_business"
        else:
            plan.extra["deal_type"] = "renewal" if (created - min(prior)).days >= 300 else "expansion"
        if plan.stage == "closed_won":
            wins.setdefault(acct, []).append(plan.entered[-1])


def _forecast_category(rng: random.Random, stage: str) -> str:
    options = {
        "closed_won": (("closed",), (1,)),
        "closed_lost": (("not_forecasted",), (1,)),
        "negotiation": (("commit", "best_case"), (75, 25)),
        "decision": (("best_case", "commit", "pipeline"), (60, 15, 25)),
        "evaluation": (("pipeline", "best_case"), (65, 35)),
        "qualification": (("pipeline", "not_forecasted"), (85, 15)),
        "awareness": (("pipeline", "not_forecasted"), (50, 50)),
    }[stage]
    return pick(rng, *options)


def _fill_row(rng: random.Random, plan: DealPlan, sid: str, clock: Clock) -> None:
    acct, owner, stage = plan.account, plan.owner, plan.stage
    deal_type = plan.extra["deal_type"]
    amount = lognormal(rng, 50_000, 0.5, 8_000, 400_000) * {"new_business": 1, "expansion": 0.45, "renewal": 0.9}[deal_type]
    amount = int(round(amount / 500) * 500)
    seats = max(5, round(amount / PRICE_PER_SEAT))
    product = pick(rng, PRODUCTS)
    created, entered_last = plan.entered[0], plan.entered[-1]
    closed_at = entered_last if not plan.is_open else None
    close_date = plan.extra["close_date"]
    suffix = {"new_business": "", "expansion": " Expansion", "renewal": f" Renewal {created.year + 1}"}[deal_type]
    name = f"{acct['name']} — {product}{suffix} ({seats} seats)"
    label, internal, probability = STAGES[stage]
    missing_amount = (plan.is_open and rng.random() < 0.04) or (stage == "closed_lost" and rng.random() < 0.02)
    next_step = None
    if plan.is_open and rng.random() < 0.72:
        when = (plan.end if plan.stale else clock.now) + timedelta(days=rng.randint(2, 10))
        next_step = pick(rng, NEXT_STEPS[stage]).format(first=plan.contacts[0]["first_name"], seats=seats,
                                                         date=f"{when:%b} {when.day}")
    forecast = _forecast_category(rng, stage)
    custom = {"competitor": pick(rng, COMPETITORS), "use_case": pick(rng, USE_CASES), "seats": seats}
    if stage == "closed_lost":
        custom["closed_lost_reason"] = pick(rng, LOSS_REASONS)
    lead_source = pick(rng, [s for s, _ in LEAD_SOURCES], [w for _, w in LEAD_SOURCES])
    updated = max(plan.end, entered_last)
    plan.row.update({
        "source": SOURCE, "source_id": sid, "name": name, "amount": None if missing_amount else amount,
        "currency": "USD", "stage": label, "stage_normalized": stage, "pipeline": PIPELINE,
        "probability": probability, "forecast_category": forecast, "close_date": close_date,
        "closed_at": closed_at, "owner": owner.name, "owner_email": owner.email,
        "account_source_id": acct["source_id"], "account_name": acct["name"], "next_step": next_step,
        "deal_type": deal_type, "lead_source": lead_source, "stage_entered_at": entered_last,
        "source_data": {
            "id": sid,
            "properties": {
                "dealname": name, "amount": None if missing_amount else str(amount), "dealstage": internal,
                "pipeline": "default", "closedate": close_date.isoformat() if close_date else None,
                "createdate": created.isoformat(), "hs_lastmodifieddate": updated.isoformat(),
                "hubspot_owner_id": owner.email, "hs_deal_stage_probability": str(probability / 100),
                "hs_forecast_category": forecast.upper(), "hs_next_step": next_step,
                "dealtype": "newbusiness" if deal_type == "new_business" else "existingbusiness",
            },
            "associations": {"companies": [acct["source_id"]], "contacts": [c["source_id"] for c in plan.contacts]},
        },
        "custom_fields": custom,
        "source_created_at": created, "source_updated_at": updated,
    })


"""Demo Co's own people and quotas, and the companies and people it sells to (accounts, contacts)."""
from __future__ import annotations

import random
from datetime import date, timedelta

from core.quotas import fiscal_quarter, previous_quarter
from core.synthetic.model import Clock, Person, QuotaPlan, Row, lognormal, pick, slug
from core.synthetic.vocab import (
    COMPANY_DOMAIN, CONTACT_TITLES, CRMS, FIRST_NAMES, GEOGRAPHY, INDUSTRIES, INDUSTRY_WEIGHTS, LAST_NAMES,
    NAME_PREFIXES, SOURCE, TEAM_NAMES, TLDS_BY_COUNTRY,
)


class NamePool:
    """Unique full names; first names stay unique while the pool lasts (titles like "1:1 Dana / Sam")."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.firsts = list(FIRST_NAMES)
        rng.shuffle(self.firsts)
        self.used: set[str] = set()

    def take(self) -> tuple[str, str]:
        while True:
            first = self.firsts.pop() if self.firsts else pick(self.rng, FIRST_NAMES)
            last = pick(self.rng, LAST_NAMES)
            if f"{first} {last}" not in self.used:
                self.used.add(f"{first} {last}")
                return first, last


def people(rng: random.Random, scale: int) -> list[Person]:
    """Per unit of scale: one sales manager over two teams of four account executives, a sales engineer per
    team, one RevOps analyst and three engineers (who only show up in internal meetings)."""
    names = NamePool(rng)
    emails: set[str] = set()

    def person(role: str, team: str | None = None, manager: str | None = None, skill: float = 1.0) -> Person:
        first, last = names.take()
        local = f"{first}.{last}".lower().replace("'", "")
        email, n = f"{local}@{COMPANY_DOMAIN}", 1
        while email in emails:
            n += 1
            email = f"{local}{n}@{COMPANY_DOMAIN}"
        emails.add(email)
        return Person(f"{first} {last}", email, role, team, manager, skill)

    staff: list[Person] = []
    for unit in range(scale):
        manager = person("sales_manager")
        staff.append(manager)
        for t in range(2):
            i = unit * 2 + t
            team = TEAM_NAMES[i % len(TEAM_NAMES)] + ("" if i < len(TEAM_NAMES) else f" {i // len(TEAM_NAMES) + 1}")
            staff.extend(person("account_executive", team, manager.name, round(rng.uniform(0.7, 1.3), 2))
                         for _ in range(4))
            staff.append(person("sales_engineer", team, manager.name))
        staff.append(person("revops"))
        staff.extend(person("engineering") for _ in range(3))
    return staff


def quotas(rng: random.Random, reps: list[Person], today: date, scale: int = 1) -> list[QuotaPlan]:
    """Quarterly quotas for the current and the previous fiscal quarter. One rep in eight was ramping last
    quarter (a lower number); the team quota is the sum of the reps'."""
    current, previous = fiscal_quarter(today), previous_quarter(today)
    # Sized so the team's base forecast lands near 100 % of quota with reps spread across the bands; the
    # quota scales with the dataset (more deals per rep at a larger scale).
    base = {r.name: scale * pick(rng, (260_000, 280_000, 300_000, 300_000, 320_000, 340_000)) for r in reps}
    ramping = {r.name for r in reps if rng.random() < 0.125}
    plans = []
    for period, is_previous in ((previous, True), (current, False)):
        reps_q = [(r.name, r.email, int(base[r.name] * (0.6 if is_previous and r.name in ramping else 1)))
                  for r in reps]
        plans.append(QuotaPlan(period.name, period.period_type, period.start_date, period.end_date,
                               sum(q for _, _, q in reps_q), reps_q))
    return plans


def company_names(rng: random.Random, n: int, taken: set[str]) -> list[tuple[str, str, str]]:
    """n unique (name, industry, domain stem) triples; `taken` (names and domain stems) is extended."""
    industries = list(INDUSTRIES)
    out = []
    while len(out) < n:
        industry = pick(rng, industries, INDUSTRY_WEIGHTS)
        for attempt in range(60):
            prefix, noun = pick(rng, NAME_PREFIXES), pick(rng, INDUSTRIES[industry])
            name = f"{prefix} {noun}" if attempt < 40 else f"{prefix} {noun} {pick(rng, ('Group', 'Co', 'Inc', 'Partners'))}"
            stem = slug(name)
            if name not in taken and stem not in taken:
                break
        else:
            name = f"{name} {len(out) + 1}"
            stem = slug(name)
        taken.update((name, stem))
        out.append((name, industry, stem))
    return out


def accounts(rng: random.Random, n: int, reps: list[Person], clock: Clock, taken: set[str]) -> list[Row]:
    owners = [reps[i % len(reps)] for i in range(n)]
    rng.shuffle(owners)
    countries = [g[0] for g in GEOGRAPHY]
    rows = []
    for i, ((name, industry, stem), owner) in enumerate(zip(company_names(rng, n, taken), owners), 1):
        country = pick(rng, countries, [g[1] for g in GEOGRAPHY])
        city, state = pick(rng, next(g[2] for g in GEOGRAPHY if g[0] == country))
        tld = TLDS_BY_COUNTRY.get(country) or ("io" if industry == "Software" and rng.random() < 0.4 else "com")
        employees = int(lognormal(rng, 420, 0.6, 60, 5000))
        revenue = round(employees * lognormal(rng, 180_000, 0.35, 60_000, 600_000), -5)
        segment = "Commercial" if employees < 200 else "Mid-Market" if employees < 2000 else "Enterprise"
        rows.append({
            "source": SOURCE, "source_id": f"acct-{i:05d}", "name": name, "domain": f"{stem}.{tld}",
            "website": f"https://www.{stem}.{tld}", "industry": industry, "employee_count": employees,
            "annual_revenue": int(revenue), "country": country, "state": state, "city": city,
            "account_type": "Prospect", "owner": owner.name, "owner_email": owner.email,
            "parent_source_id": None, "source_data": {},
            "custom_fields": {"segment": segment, "current_crm": pick(rng, CRMS),
                              "tier": pick(rng, ("Tier 1", "Tier 2", "Tier 2", "Tier 3"))},
            "source_created_at": clock.at(clock.today - timedelta(days=rng.randint(60, 900)), rng),
            "source_updated_at": None,
        })
    return rows


_TITLE_WEIGHTS = [t[3] for t in CONTACT_TITLES]
_BUYERS = [t for t in CONTACT_TITLES if t[1] in ("c_level", "vp", "director") and t[2] in ("Sales", "Operations")]


def contacts(rng: random.Random, accounts_: list[Row], target: int, clock: Clock) -> list[Row]:
    """About target/len(accounts) people per account (at least two), the first of them a sales or RevOps
    leader. Emails follow one pattern per company; about 1 % lack an email and 3 % a title (data quality)."""
    per = target / len(accounts_)
    rows: list[Row] = []
    names = NamePool(rng)
    for acct in accounts_:
        pattern = pick(rng, ("first.last", "first.last", "flast", "first"))
        used: set[str] = set()
        for k in range(max(2, round(rng.gauss(per, 1.3)))):
            first, last = names.take()
            title, seniority, dept, _ = pick(rng, _BUYERS) if k == 0 else pick(rng, CONTACT_TITLES, _TITLE_WEIGHTS)
            local = {"first.last": f"{first}.{last}", "flast": f"{first[0]}{last}", "first": first}[pattern].lower()
            while local in used:
                local = f"{first}.{last}{len(used)}".lower()
            used.add(local)
            created = acct["source_created_at"] + timedelta(days=rng.randint(0, 60), minutes=rng.randrange(600))
            rows.append({
                "source": SOURCE, "source_id": f"ct-{len(rows) + 1:06d}",
                "email": None if rng.random() < 0.01 else f"{local}@{acct['domain']}",
                "first_name": first, "last_name": last,
                "title": None if rng.random() < 0.03 else title,
                "phone": _phone(rng, acct["country"]), "department": dept, "seniority": seniority,
                "lifecycle_stage": "lead", "lead_status": None, "company_name": acct["name"],
                "owner": acct["owner"], "owner_email": acct["owner_email"], "account_source_id": acct["source_id"],
                "source_data": {}, "custom_fields": {},
                "source_created_at": min(created, clock.now), "source_updated_at": None,
            })
    return rows


def _phone(rng: random.Random, country: str) -> str | None:
    if rng.random() < 0.15:
        return None
    if country in ("United States", "Canada"):
        return f"+1 ({rng.choice((212, 303, 312, 415, 416, 512, 617, 206, 404, 604))}) 555-01{rng.randrange(100):02d}"
    if country == "United Kingdom":
        return f"+44 20 7946 0{rng.randrange(1000):03d}"
    return None

"""Keyword intent routing for plain-language questions: "which deals over 50k slipped this month?" → an `Intent`
(what to look up, and with which filters) that `bot.conversation` hands to the tools in `bot.conversation_tools`.

Pure functions over the question text, today's date and (for names) the workspace's rep directory: no database,
no model. It must never guess silently: a figure the question did not ask for is not filtered on, and a name that
fits two reps is reported as ambiguous rather than picked. Words understood:
- amounts: over / above / more than / at least / > 50k, $100,000, 1.2m; under / below / less than / < …;
  between 10k and 50k;
- status: open, pipeline (open), won, lost, closed; stages by name (discovery reads awareness, proposal decision);
- time: today, this / last / next week, month, quarter (fiscal, from the context layer's start month), year,
  next / last N days; applied to the close date, or to the creation date when the question says created / new;
- "slipped" / "overdue" / "past due": open deals whose close date has passed (see conversation_tools.slipped);
- calls: "what did Acme say about pricing?" (an account and a topic, searched in call transcripts) and
  "transcript of the Acme discovery call" (one call's transcript), see bot.transcript_tools.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from core.quotas import fiscal_quarter

STAGE_WORDS = {"awareness": "awareness", "discovery": "awareness", "prospecting": "awareness",
               "qualification": "qualification", "qualifying": "qualification", "qualified": "qualification",
               "evaluation": "evaluation", "evaluating": "evaluation", "decision": "decision",
               "proposal": "decision", "negotiation": "negotiation", "negotiating": "negotiation"}
PERIODS = ("today", "this_week", "last_week", "next_week", "this_month", "last_month", "next_month",
           "this_quarter", "last_quarter", "next_quarter", "this_year", "last_year")
# Phrases that name a skill, most specific first (a question "run the risk review" is the skill; "which deals
# are at risk" is the risk listing).
SKILL_PHRASES = (
    ("monte carlo", "monte-carlo-forecast"), ("montecarlo", "monte-carlo-forecast"), ("simulat", "monte-carlo-forecast"),
    ("chance of making", "monte-carlo-forecast"), ("weekly digest", "weekly-digest"), ("digest", "weekly-digest"),
    ("risk review", "deal-risk-review"), ("single thread", "single-thread-alert"),
    ("single-thread", "single-thread-alert"), ("multithread", "single-thread-alert"),
    ("data quality", "data-quality-audit"), ("quality audit", "data-quality-audit"),
    ("hygiene", "pipeline-hygiene"), ("scorecard", "rep-scorecard"), ("score card", "rep-scorecard"),
    ("coverage", "pipeline-coverage"), ("icp", "icp-profile"), ("ideal customer", "icp-profile"),
    ("lead scor", "lead-scoring"), ("custom field", "custom-field-discovery"), ("forecast", "forecast-rollup"),
)
_RUN = re.compile(r"\b(run|rerun|re-run|show|give|generate|produce|pull|send|get|what'?s|whats|how'?s|hows|where'?s)\b")
_NUM = r"\$?\s*(\d[\d,]*(?:\.\d+)?)\s*(k|m|mm|thousand|million|bn|b)?\b"
_OVER = re.compile(r"(?:over|above|more than|greater than|bigger than|larger than|at least|exceeding|>=?)\s*" + _NUM)
_UNDER = re.compile(r"(?:under|below|less than|smaller than|at most|<=?)\s*" + _NUM)
_BETWEEN = re.compile(r"between\s*" + _NUM + r"\s*(?:and|-|to)\s*" + _NUM)
_SCALE = {None: 1, "k": 1_000, "thousand": 1_000, "m": 1_000_000, "mm": 1_000_000, "million": 1_000_000,
          "b": 1_000_000_000, "bn": 1_000_000_000}
_DAYS = re.compile(r"\b(next|last|past)\s+(\d{1,3})\s+days?\b")
# First names that are also everyday words: they match a rep only when written with a capital letter.
COMMON_WORDS = frozenset({"will", "mark", "may", "june", "april", "bill", "grant", "chase", "hope", "faith", "rob",
                          "pat", "sue", "art", "max", "frank", "joy", "dawn", "rich", "sky", "summer", "rose",
                          "jack", "drew", "gene", "herb", "lane", "dean", "amber", "ray", "wade", "bob", "don"})


@dataclass(frozen=True)
class Period:
    key: str
    label: str          # "this month"
    start: date
    end: date


@dataclass
class Intent:
    kind: str                       # deals | rep_quota | account | risk | stale | pipeline | cwd | skill | help |
                                    # transcript_search | transcript | unknown
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    status: str | None = None       # open | won | lost | closed
    stage: str | None = None
    period: Period | None = None
    created: bool = False           # the period is about when deals were created, not when they close
    slipped: bool = False
    skill: str | None = None
    account_term: str | None = None
    sort: str | None = None         # amount | risk | close_date
    words: list[str] = field(default_factory=list)
    topic: str | None = None        # transcript_search: what to look for in the calls
    call_term: str | None = None    # transcript: the call's id or words of its title

    def deal_filters(self) -> dict[str, Any]:
        """The arguments `conversation_tools.search_deals` takes for this intent (rep and account added later)."""
        out: dict[str, Any] = {"amount_min": self.amount_min, "amount_max": self.amount_max, "status": self.status,
                               "stage": self.stage, "slipped": self.slipped or None, "sort": self.sort}
        if self.period is not None:
            out["period"] = self.period.key
            out["date_field"] = "created" if self.created else "close_date"
        return {k: v for k, v in out.items() if v is not None}


def normalize(question: str) -> str:
    """Lowercase, curly quotes straightened, a leading bot mention or /pandora dropped, whitespace collapsed."""
    text = question.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"<@[A-Z0-9]+>", " ", text)
    text = re.sub(r"^\s*/?pandora\b[:,]?", " ", text, flags=re.IGNORECASE)
    return " ".join(text.lower().split())


def _amount(number: str, scale: str | None) -> Decimal:
    return Decimal(number.replace(",", "")) * _SCALE[scale]


def amounts(text: str) -> tuple[Decimal | None, Decimal | None]:
    """(min, max) amount bounds the question states, each None when it states none."""
    if m := _BETWEEN.search(text):
        low, high = _amount(m.group(1), m.group(2) or m.group(4)), _amount(m.group(3), m.group(4))
        return min(low, high), max(low, high)
    low = _OVER.search(text)
    high = _UNDER.search(text)
    return (_amount(*low.groups()) if low else None), (_amount(*high.groups()) if high else None)


def _month(day: date, shift: int) -> tuple[date, date]:
    y, m = divmod(day.year * 12 + day.month - 1 + shift, 12)
    start = date(y, m + 1, 1)
    y2, m2 = divmod(y * 12 + m + 1, 12)
    return start, date(y2, m2 + 1, 1) - timedelta(days=1)


def resolve_period(key: str, today: date, fy_start_month: int = 1) -> Period:
    """One of PERIODS (or next_N_days / last_N_days) as dates; quarters and years are fiscal (context
    business_model.fiscal_year_start_month)."""
    label = key.replace("_", " ")
    if m := re.fullmatch(r"(next|last)_(\d{1,3})_days", key):
        n = int(m.group(2))
        start, end = (today, today + timedelta(days=n)) if m.group(1) == "next" else (today - timedelta(days=n), today)
        return Period(key, f"in the {m.group(1)} {n} days", start, end)
    if key == "today":
        return Period(key, label, today, today)
    if key.endswith("_week"):
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks={"this": 0, "last": -1, "next": 1}[key[:4]])
        return Period(key, label, monday, monday + timedelta(days=6))
    if key.endswith("_month"):
        return Period(key, label, *_month(today, {"this": 0, "last": -1, "next": 1}[key[:4]]))
    if key.endswith("_quarter"):
        q = fiscal_quarter(today, fy_start_month)
        if key == "last_quarter":
            q = fiscal_quarter(q.start_date - timedelta(days=1), fy_start_month)
        elif key == "next_quarter":
            q = fiscal_quarter(q.end_date + timedelta(days=1), fy_start_month)
        return Period(key, f"{label} ({q.name})", q.start_date, q.end_date)
    if key.endswith("_year"):
        year = today.year if today.month >= fy_start_month else today.year - 1
        year -= 1 if key == "last_year" else 0
        start = date(year, fy_start_month, 1)
        return Period(key, label, start, date(year + 1, fy_start_month, 1) - timedelta(days=1))
    raise ValueError(f"unknown period {key!r}; one of {', '.join(PERIODS)}")


def period_in(text: str, today: date, fy_start_month: int = 1) -> Period | None:
    if m := _DAYS.search(text):
        return resolve_period(f"{'next' if m.group(1) == 'next' else 'last'}_{m.group(2)}_days", today)
    if re.search(r"\btoday\b", text):
        return resolve_period("today", today, fy_start_month)
    for m in re.finditer(r"\b(this|last|next|current|previous|coming)\s+(week|month|quarter|qtr|q|year|fy)\b", text):
        when = {"current": "this", "previous": "last", "coming": "next"}.get(m.group(1), m.group(1))
        unit = {"qtr": "quarter", "q": "quarter", "fy": "year"}.get(m.group(2), m.group(2))
        if f"{when}_{unit}" in PERIODS:
            return resolve_period(f"{when}_{unit}", today, fy_start_month)
    if re.search(r"\b(quarter|qtd)\b", text):
        return resolve_period("this_quarter", today, fy_start_month)
    return None


def status_in(text: str) -> str | None:
    won = re.search(r"\b(won|win|wins|closed[- ]won|booked|bookings)\b", text)
    lost = re.search(r"\b(lost|losses|closed[- ]lost)\b", text)
    if won and not lost:
        return "won"
    if lost and not won:
        return "lost"
    if won and lost or re.search(r"\bclosed\b", text):
        return "closed"
    if re.search(r"\b(open|active|pipeline|in flight|in-flight|live)\b", text):
        return "open"
    return None


def skill_in(text: str) -> str | None:
    for phrase, skill in SKILL_PHRASES:
        if re.search(r"\b" + re.escape(phrase), text):
            return skill
    return None


def match_reps(question: str, reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reps (dicts with `name`, optional `email`) the question names: full names first; else first or last
    name as a word (case-insensitive, except first names that are everyday words, which need a capital); else
    the email's local part. Several reps sharing a first name all come back: the caller asks which one."""
    text = normalize(question)
    raw = question.replace("\u2019", "'")
    words = set(re.findall(r"[a-z][a-z'.-]*", re.sub(r"'s\b", "", text)))
    full = [r for r in reps if r.get("name") and len(r["name"]) > 2 and re.search(
        r"\b" + re.escape(r["name"].lower()) + r"\b", text)]
    if full:
        return _dedupe(full)
    hits = []
    for rep in reps:
        parts = (rep.get("name") or "").split()
        if not parts:
            continue
        first, last = parts[0].lower(), parts[-1].lower() if len(parts) > 1 else None
        if first in words and len(first) > 1 and (first not in COMMON_WORDS or re.search(
                r"\b" + re.escape(parts[0][:1].upper() + parts[0][1:].lower()) + r"\b", raw)):
            hits.append(rep)
        elif last and last in words and len(last) > 2 and last not in COMMON_WORDS:
            hits.append(rep)
        elif rep.get("email") and (local := rep["email"].split("@")[0].lower()) in words and local not in COMMON_WORDS:
            hits.append(rep)
    return _dedupe(hits)


def _dedupe(reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for r in reps:
        if r["name"].lower() not in seen:
            seen.add(r["name"].lower())
            out.append(r)
    return out


_ACCOUNT = [
    r"(?:going on|happening|new|latest|news|update|updates|status|situation|story)\s+(?:with|on|at|for|of)\s+(.+)",
    r"(?:tell me about|what about|how about|look up|lookup|info on|details on|brief me on)\s+(.+)",
    r"\baccount\s+(?:called|named)?\s*(.+)",
    r"^how(?:'s| is| are)\s+(.+?)\s+doing\b",
]
_TRIM = re.compile(r"^(?:the|our|account|company)\s+|\s+(?:account|deals?|these days|lately|right now|today)$")


def account_term(text: str) -> str | None:
    for pattern in _ACCOUNT:
        if m := re.search(pattern, text):
            term = m.group(1).strip(" ?!.,'\"")
            term = re.sub(r"'s$", "", term)
            for _ in range(3):
                term = _TRIM.sub("", term).strip(" ?!.,'\"")
            if 1 < len(term) <= 80:
                return term
    return None


_SAID = re.compile(
    r"\bwhat\s+(?:did|does|do|has|have|had)\s+(?P<who>.+?)\s+(?:(?:got|had)\s+to\s+)?"
    r"(?:say|said|mention(?:ed)?|talk(?:ed)?|discuss(?:ed)?|raise[d]?|ask(?:ed)?|tell\s+us|told\s+us|think|thought|"
    r"bring\s+up|brought\s+up|share[d]?)\b(?P<rest>.*)$")
_DID_MENTION = re.compile(r"^(?:did|has|have)\s+(?P<who>.+?)\s+(?:mention(?:ed)?|bring\s+up|brought\s+up|raise[d]?|"
                          r"talk(?:ed)?\s+about|ask(?:ed)?\s+about|discuss(?:ed)?)\s+(?P<topic>.+)$")
_TOPIC = (re.compile(r"\b(?:about|regarding|concerning)\s+(?P<topic>.+)$"),  # "on the last call about X": X
          re.compile(r"^(?:on|around|re)\s+(?P<topic>.+)$"))
_WHO_TRIM = re.compile(r"^(?:the|our|people\s+at|folks\s+at|the\s+team\s+at)\s+|'s$|\s+(?:team|folks|people|guys|"
                       r"buyers?|prospects?|customers?|champion|on\s+(?:the|their|our)\s+(?:last\s+|recent\s+)?"
                       r"(?:calls?|meetings?))$")
_CALL = re.compile(r"\b(?:transcripts?|recording)\s+(?:of|for|from)\s+(?P<call>.+)$")


def said_about(text: str) -> tuple[str, str | None] | None:
    """(who, topic) of "what did Acme say about pricing?" / "did Acme mention security?" (normalized text);
    the topic is None when the question names none. None when the question is not of that shape."""
    text = text.strip(" ?!.")
    m = _SAID.search(text)
    if m:
        who, rest = m.group("who"), m.group("rest").strip()
        t = _TOPIC[0].search(rest) or _TOPIC[1].match(rest)
        topic = t.group("topic") if t else (rest or None)
    elif m := _DID_MENTION.match(text):
        who, topic = m.group("who"), m.group("topic")
    else:
        return None
    for _ in range(3):
        who = _WHO_TRIM.sub("", who.strip(" ,'\"")).strip(" ,'\"")
    topic = topic.strip(" ,'\"") if topic else None
    if not who or len(who) > 80 or who in ("we", "i", "you", "they", "he", "she", "it", "us"):
        return None
    return who, topic or None


def transcript_of(text: str) -> str | None:
    """The call named in "transcript of the Acme discovery call" (normalized text), or None."""
    m = _CALL.search(text.strip(" ?!."))
    if not m:
        return None
    call = re.sub(r"^(?:the|our|my|that|this)\s+", "", m.group("call").strip(" ,'\"")).strip()
    return call or None


def parse(question: str, today: date, fy_start_month: int = 1) -> Intent:
    """The intent of a question; rep names and account names are matched later, against the database."""
    text = normalize(question)
    words = re.findall(r"[a-z0-9']+", text)
    low, high = amounts(text)
    period = period_in(text, today, fy_start_month)
    intent = Intent("unknown", low, high, status_in(text), next((STAGE_WORDS[w] for w in words if w in STAGE_WORDS),
                                                                None), period, words=words)
    intent.created = bool(re.search(r"\b(created|new deals?|new opportunit|new opps?|opened|generated|sourced)\b", text))
    intent.slipped = bool(re.search(r"\b(slip|slipped|slipping|slips|overdue|past due|past[- ]close|missed)\b", text))
    if re.search(r"\b(largest|biggest|top|highest value)\b", text):
        intent.sort = "amount"
    skill = skill_in(text)
    if not text.strip(" ?!.") or re.fullmatch(r"(help|\?|hi|hello|hey|what can you do\??|examples?)", text.strip(" !.")):
        intent.kind = "help"
    elif call := transcript_of(text):
        intent.kind, intent.call_term = "transcript", call
    elif said := said_about(text):
        intent.kind, (intent.account_term, intent.topic) = "transcript_search", said
    elif re.search(r"\b(quota|attainment|tracking|on track|on pace|hitting|(her|his|their|the) number)\b", text):
        intent.kind = "rep_quota"    # needs a rep; without one, the forecast answers for the team
        intent.skill = "forecast-rollup"
    elif re.search(r"\b(without (a |any )?deals?|no deals?|not linked to (a |any )?deals?|cwd|unlinked (calls|conversations|meetings))\b", text) \
            and re.search(r"\b(calls?|conversations?|meetings?|cwd)\b", text):
        intent.kind = "cwd"
    elif skill and (_RUN.search(text) or len(words) <= 3):
        intent.kind, intent.skill = "skill", skill
    elif re.search(r"\b(at[- ]risk|risky|riskiest|risk)\b", text):
        intent.kind = "risk"
    elif re.search(r"\b(stale|stuck|stalled|quiet|gone dark|went dark|untouched|no activity|neglected|idle)\b", text):
        intent.kind = "stale"
    elif skill:
        intent.kind, intent.skill = "skill", skill
    elif (term := account_term(text)) and not (low or high or intent.slipped):
        intent.kind, intent.account_term = "account", term
    elif re.search(r"\b(pipeline|pipe)\b", text) and re.search(r"\b(total|how much|size|worth|value|what'?s|whats|our|sum)\b", text) \
            and not (low or high or intent.slipped or intent.stage):
        intent.kind = "pipeline"
    elif (low or high or intent.slipped or intent.stage or intent.status or period
          or re.search(r"\b(deals?|opportunit(y|ies)|opps?)\b", text)):
        intent.kind = "deals"
    return intent

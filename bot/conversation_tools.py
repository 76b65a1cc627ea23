"""The lookups a plain-language question is answered with — the same functions for keyword routing and for
Claude's tool use — and their tool definitions for the Messages API.

Each tool reads through the query layer (core.queries: deals.query / open_pipeline, accounts, activities,
conversations; core.pipeline.cwd) or runs a skill, and returns a `ToolResult`: the figures, the records they
rest on (a compact list for people, the rows for JSON and for the model), how many records match in all, and
notes. Extra SQL appears only where no query function fits (the rep directory, totals over a filter, the stale
rule), built on the query layer's own `where()` so filters mean the same, workspace_id first.

Definitions the answers rely on:
- slipped = still open and its close date has passed: in a period ("slipped this month"), a close date from the
  period's start up to yesterday; with no period, any past close date. Pandora keeps no close-date history, so a
  deal whose rep already moved its date out does not show as slipped (the reply says so).
- stale = open and quiet for at least thresholds.stale_deal_days (default 14): quiet since the last activity, or
  since creation for a deal never touched — pipeline-hygiene's rule.
- at risk = open with deal_risk ≥ 70, deal-risk-review's line.
- a rep's attainment = the forecast-rollup skill's figures for that rep (closed won, commit, best case, quota).
It never writes to the CRM and never calls a model: skills run here with the LLM tiers switched off (the answer
is written by Claude in bot.conversation, or by its templates).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from bot.intents import PERIODS, match_reps, resolve_period
from bot.transcript_tools import TRANSCRIPT_DEFINITIONS, TRANSCRIPT_TOOLS
from core.context import lookup
from core.errors import InputError
from core.llm import LLMConfig
from core.pipeline.cwd import conversations_without_deals as cwd_query
from core.queries import accounts, activities, conversations, deals
from core.queries.base import coerce, where
from core.settings import Settings
from core.stages import STAGES
from skills import registry
from skills.format import fmt, money
from skills.result import SkillResult, _plain as plain
from skills.runtime import run_skill as run_skill_runtime

ROW_CAP = 50          # rows kept in a result (reply.data, the model's tool_result)
AT_RISK = 70
DEAL_FIELDS = ("id", "name", "amount", "stage_normalized", "close_date", "owner", "account_name", "probability",
               "forecast_category", "deal_risk", "deal_risk_factors", "last_activity_at", "days_in_stage")


@dataclass
class Env:
    db: Any
    settings: Settings
    workspace_id: str
    today: date
    context: dict[str, Any]
    _reps: list[dict[str, Any]] | None = None

    @property
    def fy_start(self) -> int:
        return int(lookup(self.context, "business_model.fiscal_year_start_month", 1) or 1)


@dataclass
class Group:
    title: str
    lines: list[str]
    total: int


@dataclass
class ToolResult:
    tool: str
    title: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    entity: str = "deals"
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    skill_result: SkillResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "skill_result"}
        out["figures"] = [{"label": k, "value": v} for k, v in self.figures]
        if self.skill_result is not None:
            out["skill_result"] = self.skill_result.to_dict()
        return plain(out)

    def for_model(self) -> dict[str, Any]:
        """What Claude sees (inside a data block): figures, notes and up to 25 records."""
        return plain({"title": self.title, "figures": dict(self.figures), "total_records": self.total,
                      "records": self.records[:25], "notes": self.notes,
                      "lists": [{"title": g.title, "lines": g.lines[:15], "total": g.total} for g in self.groups]})


# ------------------------------------------------------------------------------------------------- helpers

_REPS = """
SELECT name, max(email) AS email FROM (
    SELECT d.owner AS name, d.owner_email AS email FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND COALESCE(d.owner, '') <> ''
    UNION ALL
    SELECT r.rep_name, r.rep_email FROM rep_quotas r WHERE r.workspace_id = %(workspace_id)s
) x GROUP BY name ORDER BY name
"""


def rep_directory(env: Env) -> list[dict[str, Any]]:
    """Every rep who owns a deal or has a quota in the workspace: [{name, email}]."""
    if env._reps is None:
        with env.db.connection() as conn:
            env._reps = conn.execute(_REPS, {"workspace_id": env.workspace_id}).fetchall()
    return env._reps


def resolve_rep(env: Env, name: str) -> str:
    """The one rep `name` means (full, first or last name, or email, any case), or InputError saying why not."""
    reps = rep_directory(env)
    hits = match_reps(name, reps)
    if len(hits) == 1:
        return hits[0]["name"]
    if hits:
        raise InputError(f"'{name}' could be {', '.join(r['name'] for r in hits)}: say the full name.", field="rep")
    known = ", ".join(r["name"] for r in reps[:12]) or "none yet"
    raise InputError(f"No rep called '{name}' owns a deal or has a quota in this workspace (reps: {known}).",
                     field="rep")


_NAMED = """
SELECT a.name FROM accounts a
 WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL AND length(a.name) >= 3
   AND strpos(%(text)s, lower(a.name)) > 0
 ORDER BY length(a.name) DESC, a.name LIMIT 5
"""


def accounts_named_in(env: Env, text: str) -> list[str]:
    """Account names that appear whole in `text` (lowercased), longest first: "deals at bright cloud" names
    Bright Cloud. No query module searches a question for names, hence this statement."""
    with env.db.connection() as conn:
        rows = conn.execute(_NAMED, {"workspace_id": env.workspace_id, "text": text.lower()}).fetchall()
    return [r["name"] for r in rows if re.search(r"\b" + re.escape(r["name"].lower()) + r"\b", text.lower())]


def _deal_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in DEAL_FIELDS if k in row}


def deal_line(d: dict[str, Any], extra: str = "") -> str:
    stage = (d.get("stage_normalized") or "no stage").replace("_", " ")
    close = f"closes {d['close_date']}" if d.get("close_date") else "no close date"
    if d.get("stage_normalized") in ("closed_won", "closed_lost"):
        close = f"closed {d['close_date']}" if d.get("close_date") else "closed"
    parts = [f"{d.get('name') or 'Unnamed deal'} — {money(d.get('amount'))}", stage, close, d.get("owner") or "no owner"]
    return " · ".join(parts) + (f" · {extra}" if extra else "")


def _totals(conn, env: Env, filters: dict[str, Any], extra: str = "", extra_params: dict | None = None) -> dict:
    conds, params = where(deals.SPEC, env.workspace_id, filters)
    params.update(extra_params or {})
    return conn.execute(
        f"SELECT count(*) AS n, COALESCE(sum(d.amount), 0) AS amount,"
        f" count(*) FILTER (WHERE d.deal_risk >= {AT_RISK}) AS at_risk,"
        f" COALESCE(sum(d.amount) FILTER (WHERE d.deal_risk >= {AT_RISK}), 0) AS at_risk_amount,"
        f" count(d.deal_risk) AS scored, avg(d.deal_risk) AS avg_risk"
        f" FROM {deals.SPEC.from_sql} WHERE {' AND '.join(conds)}{extra}", params).fetchone()


def _period(env: Env, key: str | None):
    if not key:
        return None
    try:
        return resolve_period(str(key), env.today, env.fy_start)
    except ValueError:
        raise InputError(f"period {key!r} is not one of {', '.join(PERIODS)} (or next_N_days / last_N_days)",
                         field="period") from None


def _amount_words(low, high) -> str:
    if low is not None and high is not None:
        return f" between {money(low)} and {money(high)}"
    return f" over {money(low)}" if low is not None else (f" under {money(high)}" if high is not None else "")


def quiet_llm(settings: Settings) -> LLMConfig:
    """Skills run from a conversation write with their templates: the answer's prose is Claude's, written once."""
    return LLMConfig.from_settings(settings).with_(anthropic_api_key=None, fireworks_api_key=None)


# ------------------------------------------------------------------------------------------------- tools

def search_deals(env: Env, *, amount_min=None, amount_max=None, status=None, stage=None, owner=None, account=None,
                 period=None, date_field="close_date", close_date_from=None, close_date_to=None, slipped=False,
                 sort=None, **_: Any) -> ToolResult:
    """Deals matching the filters, largest first (slipped: earliest close date first), with count and total."""
    rep = resolve_rep(env, owner) if owner else None
    p = _period(env, period)
    filters: dict[str, Any] = {"amount_min": amount_min, "amount_max": amount_max, "status": status, "stage": stage,
                               "owner": rep, "search": account or None}
    notes: list[str] = []
    when = ""
    slipped = bool(slipped) and coerce("slipped", slipped, "bool")  # the model may send "true"
    if slipped:
        filters["status"] = "open"
        yesterday = env.today - timedelta(days=1)
        close_date_from = p.start if p else close_date_from
        close_date_to = min(p.end if p else coerce("close_date_to", close_date_to or yesterday, "date"), yesterday)
        when = f" that slipped {p.label}" if p else " past their close date"
        notes.append("Slipped = still open after its close date. Pandora keeps no close-date history, so deals "
                     "whose date was already pushed out are not counted.")
    elif p and date_field == "created":
        filters.update(created_from=p.start, created_to=p.end)
        when = f" created {p.label}"
    elif p:
        close_date_from, close_date_to = p.start, p.end
        when = f" closing {p.label}" if status in (None, "open") else f" {p.label}"
    filters.update(close_date_from=close_date_from, close_date_to=close_date_to)
    if stage and stage not in STAGES:
        raise InputError(f"stage {stage!r} is not one of {', '.join(STAGES)}", field="stage")
    sort = sort or ("close_date" if slipped else "amount")
    direction = "asc" if sort in ("close_date", "name", "owner", "stage") else "desc"
    with env.db.connection() as conn:
        page = deals.query(conn, env.workspace_id, filters=filters, sort=sort, direction=direction, limit=ROW_CAP)
        totals = _totals(conn, env, filters)
    label = {"open": "Open deals", "won": "Won deals", "lost": "Lost deals", "closed": "Closed deals"}.get(
        filters["status"] or "", "Deals")
    who = f" owned by {rep}" if rep else ""
    where_ = f" matching '{account}'" if account else ""
    stage_words = f" in {stage}" if stage else ""
    title = f"{label}{stage_words}{_amount_words(amount_min, amount_max)}{who}{where_}{when}"
    if close_date_from or close_date_to:
        title += f" (close date {close_date_from or '…'} to {close_date_to or '…'})"
    rows = [_deal_row(r) for r in page.items]
    return ToolResult("search_deals", title, [("Deals", f"{totals['n']:,}"), ("Total amount", money(totals["amount"]))],
                      [Group("Deals", [deal_line(r) for r in rows], totals["n"])], rows, totals["n"], "deals", notes,
                      {"filters": plain(filters), "amount": plain(totals["amount"])})


def rep_quota_attainment(env: Env, *, rep: str, **_: Any) -> ToolResult:
    """A rep's quota, closed won and forecast for the period, from the forecast-rollup skill, with the deals."""
    name = resolve_rep(env, rep)
    result = run_skill_runtime(env.db, env.settings, env.workspace_id, "forecast-rollup", trigger="conversation",
                               today=env.today, llm=quiet_llm(env.settings))
    c = result.data
    row = next((r for r in c["reps"] if (r["rep"] or "").lower() == name.lower()), None) or {
        "closed_won": 0, "commit": 0, "best_case": 0, "pipeline": 0, "base": 0, "quota": None, "attainment": None,
        "band": "unknown"}
    period = c["period"]
    quota = row["quota"]
    won_pct = Decimal(row["closed_won"]) / Decimal(quota) if quota else None
    filters = {"owner": name, "close_date_from": period["start"], "close_date_to": period["end"]}
    with env.db.connection() as conn:
        won_page = deals.query(conn, env.workspace_id, filters={**filters, "status": "won"}, sort="amount",
                               direction="desc", limit=ROW_CAP)
        open_page = deals.query(conn, env.workspace_id, filters={**filters, "status": "open"}, sort="amount",
                                direction="desc", limit=ROW_CAP)
        won = _totals(conn, env, {**filters, "status": "won"})
    title = (f"{name}, {period['name']}: {won_pct * 100:.0f}% of quota closed won ({money(row['closed_won'])} of "
             f"{money(quota)}); forecast {row['attainment'] * 100:.0f}% ({row['band'].replace('_', ' ')})"
             if quota else f"{name}, {period['name']}: {money(row['closed_won'])} closed won; no quota set")
    figures = [("Quota", money(quota)), ("Closed won", f"{money(row['closed_won'])} ({won['n']} deal{'' if won['n'] == 1 else 's'})"),
               ("Attainment (won ÷ quota)", f"{won_pct * 100:.0f}%" if won_pct is not None else "—"),
               ("Commit", money(row["commit"])), ("Best case", money(row["best_case"])),
               ("Forecast (won + commit + best case)", money(row["base"])),
               ("Forecast ÷ quota", f"{row['attainment'] * 100:.0f}%" if row["attainment"] is not None else "—"),
               ("Other pipeline", money(row["pipeline"]))]
    won_rows = [_deal_row(r) for r in won_page.items]
    open_rows = [_deal_row(r) for r in open_page.items]
    notes = [c["quota_hint"]] if c.get("quota_hint") and not quota else []
    return ToolResult("rep_quota_attainment", title, figures,
                      [Group(f"Won in {period['name']}", [deal_line(r) for r in won_rows], won_page.total),
                       Group(f"Open, closing in {period['name']}", [deal_line(r) for r in open_rows], open_page.total)],
                      won_rows + open_rows, won_page.total + open_page.total, "deals", notes,
                      plain({"rep": name, "period": period, "quota": quota, "closed_won": row["closed_won"],
                             "won_deals": won["n"], "attainment_won": won_pct, "commit": row["commit"],
                             "best_case": row["best_case"], "forecast": row["base"],
                             "attainment_forecast": row["attainment"], "band": row["band"],
                             "run_id": result.run_id}))


def get_account(env: Env, *, name: str, **_: Any) -> ToolResult:
    """One account (matched by name or domain): its deals, last activity and recent conversations."""
    with env.db.connection() as conn:
        found = accounts.query(conn, env.workspace_id, filters={"search": name}, limit=10).items
        exact = [a for a in found if (a["name"] or "").lower() == name.lower().strip()]
        if not found:
            raise InputError(f"No account matches '{name}'. Try part of its name or its domain.", field="name")
        if not exact and len(found) > 1:
            names = [a["name"] for a in found]
            return ToolResult("get_account", f"Several accounts match '{name}': which one?", [],
                              [Group("Accounts", names, len(names))],
                              plain([{k: a[k] for k in ("id", "name", "domain")} for a in found]), len(found), "accounts",
                              ["Ask again with the full account name."])
        acct = accounts.get(conn, env.workspace_id, (exact or found)[0]["id"])
        open_deals = deals.query(conn, env.workspace_id, filters={"account_id": acct["id"], "status": "open"},
                                 sort="amount", direction="desc", limit=ROW_CAP)
        last = activities.query(conn, env.workspace_id, filters={"account_id": acct["id"],
                                                                 "occurred_to": env.today}, limit=1).items
        calls = conversations.query(conn, env.workspace_id, filters={"account_id": acct["id"],
                                                                     "started_to": env.today}, limit=5)
    act = last[0] if last else None
    rows = [_deal_row(r) for r in open_deals.items]
    figures = [("Open deals", f"{acct['open_deals']} · {money(acct['open_amount'])}"),
               ("Won", f"{acct['won_deals']} · {money(acct['won_amount'])}"), ("Lost", str(acct["lost_deals"])),
               ("Contacts", str(acct["contact_count"])),
               ("Last activity", f"{act['occurred_at']:%Y-%m-%d} {act['activity_type'] or ''} by {act['owner'] or '—'}"
                if act else "none recorded")]
    call_lines = [f"{c['started_at']:%Y-%m-%d} · {c['title'] or 'Untitled call'}"
                  + (f" · deal: {c['deal_name']}" if c["deal_name"] else " · no deal") for c in calls.items]
    keep = ("id", "name", "domain", "industry", "employee_count", "owner", "open_deals", "open_amount", "won_deals",
            "won_amount", "lost_deals", "contact_count", "last_activity_at")
    return ToolResult(
        "get_account", f"{acct['name']}" + (f" ({acct['domain']})" if acct.get("domain") else ""), figures,
        [Group("Open deals", [deal_line(r) for r in rows], open_deals.total),
         Group("Recent conversations", call_lines, calls.total)], rows, open_deals.total, "deals",
        [] if act else ["No activity is logged on this account."],
        plain({"account": {k: acct.get(k) for k in keep},
               "last_activity": act and {k: act[k] for k in ("id", "activity_type", "subject", "occurred_at", "owner")},
               "conversations": [{k: c[k] for k in ("id", "title", "started_at", "deal_name", "owner")}
                                 for c in calls.items]}))


def at_risk_deals(env: Env, *, owner=None, amount_min=None, **_: Any) -> ToolResult:
    """Open deals by deal_risk, riskiest first, with the factors behind each score."""
    rep = resolve_rep(env, owner) if owner else None
    filters = {"status": "open", "owner": rep, "amount_min": amount_min}
    with env.db.connection() as conn:
        t = _totals(conn, env, filters)
        page = deals.query(conn, env.workspace_id, filters={**filters, "risk_min": AT_RISK if t["at_risk"] else None},
                           sort="risk", direction="desc", limit=ROW_CAP)
    rows = [_deal_row(r) for r in page.items]

    def why(d):
        factors = sorted(d.get("deal_risk_factors") or [], key=lambda f: -(f.get("points") or 0))[:2]
        score = f"risk {d['deal_risk']:.0f}" if d.get("deal_risk") is not None else "not scored"
        return score + (": " + "; ".join(str(f.get("detail") or f.get("factor")) for f in factors) if factors else "")

    who = f" owned by {rep}" if rep else ""
    notes = [] if t["at_risk"] else [f"No open deal{who} scores {AT_RISK}+; these are the riskiest."]
    return ToolResult(
        "at_risk_deals", f"Open deals at risk{who}{_amount_words(amount_min, None)} (deal risk {AT_RISK}+)",
        [("At risk", f"{t['at_risk']:,} deals · {money(t['at_risk_amount'])}"),
         ("Open deals scored", f"{t['scored']:,} of {t['n']:,}"),
         ("Average risk", f"{t['avg_risk']:.0f}" if t["avg_risk"] is not None else "—")],
        [Group("Riskiest deals", [deal_line(d, why(d)) for d in rows], page.total)], rows, page.total, "deals",
        notes, plain({"at_risk": t["at_risk"], "at_risk_amount": t["at_risk_amount"]}))


_QUIET = "COALESCE(d.last_activity_at, d.source_created_at, d.created_at)"


def stale_deals(env: Env, *, owner=None, days=None, **_: Any) -> ToolResult:
    """Open deals quiet for `days` (default thresholds.stale_deal_days), quietest first."""
    rep = resolve_rep(env, owner) if owner else None
    days = coerce("days", days or lookup(env.context, "goals_and_targets.thresholds.stale_deal_days", 14) or 14, "int")
    if days < 1:
        raise InputError("days must be 1 or more", field="days")
    # quiet for ≥ N whole days = the quiet-since date is on or before today − N (pipeline-hygiene's count)
    cutoff = datetime.combine(env.today - timedelta(days=days - 1), time(0), tzinfo=timezone.utc)
    filters = {"status": "open", "owner": rep}
    extra = f" AND {_QUIET} < %(stale_cutoff)s"
    with env.db.connection() as conn:
        t = _totals(conn, env, filters, extra, {"stale_cutoff": cutoff})
        conds, params = where(deals.SPEC, env.workspace_id, filters)
        params.update(stale_cutoff=cutoff, limit=ROW_CAP)
        found = conn.execute(
            f"SELECT {deals.SPEC.select}, {_QUIET} AS quiet_since FROM {deals.SPEC.from_sql}"
            f" WHERE {' AND '.join(conds)}{extra} ORDER BY {_QUIET}, d.id LIMIT %(limit)s", params).fetchall()
    rows = []
    for r in found:
        row = _deal_row(r)
        row["days_quiet"] = (env.today - r["quiet_since"].astimezone(timezone.utc).date()).days
        rows.append(row)
    who = f" owned by {rep}" if rep else ""
    return ToolResult(
        "stale_deals", f"Stale open deals{who}: no activity for {days}+ days",
        [("Stale deals", f"{t['n']:,}"), ("Amount", money(t["amount"]))],
        [Group("Quietest first", [deal_line(r, f"quiet {r['days_quiet']} days") for r in rows], t["n"])], rows,
        t["n"], "deals", ["A deal never touched counts as quiet since it was created."],
        plain({"days": days, "amount": t["amount"]}))


def pipeline_summary(env: Env, *, owner=None, period=None, **_: Any) -> ToolResult:
    """Open pipeline: count, amount, weighted, by stage, and the largest open deals."""
    rep = resolve_rep(env, owner) if owner else None
    p = _period(env, period)
    close = {"close_date_from": p.start if p else None, "close_date_to": p.end if p else None}
    with env.db.connection() as conn:
        pipe = deals.open_pipeline(conn, env.workspace_id, owner=rep, close_from=close["close_date_from"],
                                   close_to=close["close_date_to"])
        page = deals.query(conn, env.workspace_id, filters={"status": "open", "owner": rep, **close},
                           sort="amount", direction="desc", limit=ROW_CAP)
    rows = [_deal_row(r) for r in page.items]
    stage_lines = [f"{(s['stage'] or 'no stage').replace('_', ' ')}: {s['deal_count']} deals · {money(s['amount'])}"
                   f" (weighted {money(s['weighted'])})" for s in pipe["by_stage"]]
    who = f" for {rep}" if rep else ""
    return ToolResult(
        "pipeline_summary", f"Open pipeline{who}" + (f" closing {p.label}" if p else ""),
        [("Open deals", f"{pipe['deal_count']:,}"), ("Amount", money(pipe["amount"])),
         ("Weighted", money(pipe["weighted"]))],
        [Group("By stage", stage_lines, len(stage_lines)), Group("Largest open deals", [deal_line(r) for r in rows],
                                                                 page.total)],
        rows, page.total, "deals", [], plain({k: pipe[k] for k in ("deal_count", "amount", "weighted", "by_stage")}))


def conversations_without_deals(env: Env, *, rep=None, severity=None, days=None, **_: Any) -> ToolResult:
    """External calls with an account but no deal (the post-sync CWD flags), most severe first."""
    as_of = datetime.combine(env.today, time(23, 59, 59), tzinfo=timezone.utc)
    with env.db.connection() as conn:
        found = cwd_query(conn, env.workspace_id, rep=rep, severity=severity,
                          days=coerce("days", days, "int") if days else None,
                          limit=ROW_CAP, as_of=as_of)
    s = found["summary"]
    lines = [f"{i['conversation']['started_at']:%Y-%m-%d} · {i['conversation']['title'] or 'Untitled call'} — "
             f"{i['account']['name']} · {i['severity']} ({(i['cause'] or '').replace('_', ' ')})"
             f" · {i['rep']['name'] or i['rep']['email'] or 'no rep'}" for i in found["items"]]
    return ToolResult(
        "conversations_without_deals", "Conversations without deals" + (f" for {rep}" if rep else ""),
        [("Calls", f"{found['total']:,}"), ("Accounts", f"{s['accounts']:,}"),
         ("Severity", f"{s['high']} high · {s['medium']} medium · {s['low']} low")],
        [Group("Most severe first", lines, found["total"])], plain(found["items"]), found["total"], "conversations",
        ["External calls with an account that no deal accounts for (last 90 days by default)."], plain(s))


def run_skill(env: Env, *, name: str, params: dict | None = None, **_: Any) -> ToolResult:
    """Run a skill by name or alias (forecast, hygiene, coverage, scorecard, …) and summarise its result."""
    skill = registry.get(name)
    result = run_skill_runtime(env.db, env.settings, env.workspace_id, skill.name, params or {},
                               trigger="conversation", today=env.today, llm=quiet_llm(env.settings))
    figures = [(m.label, fmt(m.value, m.unit)) for m in result.metrics[:10]]
    groups = [Group(e.claim, list(e.labels or e.ids)[:15], len(e.ids)) for e in result.evidence[:4]]
    records = [{"claim": e.claim, "entity": e.entity, "ids": e.ids[:ROW_CAP], "labels": e.labels[:ROW_CAP]}
               for e in result.evidence]
    return ToolResult("run_skill", result.headline, figures, groups, records, sum(len(e.ids) for e in result.evidence),
                      "evidence", list(result.notes), {"skill": skill.name, "run_id": result.run_id}, result)


def list_reps(env: Env, **_: Any) -> ToolResult:
    reps = rep_directory(env)
    return ToolResult("list_reps", f"{len(reps)} reps", [("Reps", str(len(reps)))],
                      [Group("Reps", [r["name"] for r in reps], len(reps))], plain(reps), len(reps), "reps")


TOOLS = {f.__name__: f for f in (search_deals, rep_quota_attainment, get_account, at_risk_deals, stale_deals,
                                 pipeline_summary, conversations_without_deals, run_skill, list_reps)}
TOOLS.update(TRANSCRIPT_TOOLS)  # call transcripts: bot/transcript_tools.py


# ------------------------------------------------------------------------------------------------- for Claude

_REP = {"type": "string", "description": "rep name: full, first or last name, or email"}
_PERIOD = {"type": "string", "enum": list(PERIODS), "description": "fiscal quarters/years; weeks start Monday"}
DEFINITIONS = [
    {"name": "search_deals", "description": "Deals matching filters, with count and total amount. Slipped = open "
     "deals whose close date passed (within `period` when given).",
     "input_schema": {"type": "object", "properties": {
         "amount_min": {"type": "number"}, "amount_max": {"type": "number"},
         "status": {"type": "string", "enum": ["open", "won", "lost", "closed"]},
         "stage": {"type": "string", "enum": list(STAGES)}, "owner": _REP,
         "account": {"type": "string", "description": "part of the deal's or account's name"},
         "period": _PERIOD, "date_field": {"type": "string", "enum": ["close_date", "created"]},
         "close_date_from": {"type": "string", "format": "date"}, "close_date_to": {"type": "string", "format": "date"},
         "slipped": {"type": "boolean"},
         "sort": {"type": "string", "enum": ["amount", "close_date", "risk", "last_activity", "probability"]}}}},
    {"name": "rep_quota_attainment", "description": "A rep's quota, closed won, attainment and forecast for the "
     "current quota period, with the deals behind it.",
     "input_schema": {"type": "object", "properties": {"rep": _REP}, "required": ["rep"]}},
    {"name": "get_account", "description": "One account by name or domain: deal counts, open deals, last activity, "
     "recent conversations.",
     "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
    {"name": "at_risk_deals", "description": f"Open deals with deal risk {AT_RISK}+ (riskiest first) and their "
     "risk factors.",
     "input_schema": {"type": "object", "properties": {"owner": _REP, "amount_min": {"type": "number"}}}},
    {"name": "stale_deals", "description": "Open deals with no activity for N days (default: the workspace's "
     "stale threshold).",
     "input_schema": {"type": "object", "properties": {"owner": _REP, "days": {"type": "integer", "minimum": 1}}}},
    {"name": "pipeline_summary", "description": "Open pipeline totals (count, amount, weighted) by stage and the "
     "largest open deals.",
     "input_schema": {"type": "object", "properties": {"owner": _REP, "period": _PERIOD}}},
    {"name": "conversations_without_deals", "description": "External calls with an account but no deal.",
     "input_schema": {"type": "object", "properties": {
         "rep": _REP, "severity": {"type": "string", "enum": ["high", "medium", "low"]},
         "days": {"type": "integer", "minimum": 1}}}},
    {"name": "run_skill", "description": "Run an analysis skill by name: forecast, coverage, hygiene, risk, "
     "scorecard, quality, icp, monte-carlo, threading, lead-scores, digest.",
     "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
    {"name": "list_reps", "description": "The reps in this workspace (deal owners and reps with a quota).",
     "input_schema": {"type": "object", "properties": {}}},
]
DEFINITIONS += TRANSCRIPT_DEFINITIONS


def execute(env: Env, name: str, tool_input: dict[str, Any] | None) -> ToolResult:
    """Run tool `name` with the model's input (only the declared properties are passed on)."""
    if name not in TOOLS:
        raise InputError(f"no tool {name!r}; tools: {', '.join(TOOLS)}", field="tool")
    schema = next(d["input_schema"] for d in DEFINITIONS if d["name"] == name)
    args = {k: v for k, v in (tool_input or {}).items() if k in schema["properties"] and v not in (None, "")}
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        raise InputError(f"{name} needs {', '.join(missing)}", field=missing[0])
    return TOOLS[name](env, **args)

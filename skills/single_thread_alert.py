"""single-thread-alert: open deals of real size that hang on one person (or on nobody).

COMPUTE (one SQL statement; open = stage_normalized NULL or not closed_won / closed_lost; deleted rows never count):
- engaged contacts of a deal = the distinct, not deleted contacts on it through deal_contacts, the contact of its
  activities and calls, and its external conversations (is_internal not true: the conversation's contact and the
  participants whose email is a contact's, internal participants excepted), dated on or before today. The
  original took deal_contacts, else the primary and activity contacts (max 5); here every source counts at once.
- threading against thresholds.min_contacts_per_deal (M, default 2): single < M, double = M, multi > M (the
  original's classes), over every open deal.
- alerted = single-threaded open deals with amount ≥ `min_amount` (a missing amount counts 0, so it is alerted
  only when min_amount is 0). Default min_amount = 20 % of business_model.acv_range.avg (10,000 at the 50,000
  default): below a fifth of a typical deal a second contact is rarely worth chasing, while the original's
  "above average" test still marks the big ones critical. A deal under the floor is counted, not listed.
- critical = alerted and (stage evaluation / decision / negotiation, or amount > acv_range.avg) — the original's
  rule; warning = the other alerted deals. Lists: the 15 largest of each (the original's caps), each with its
  one contact (name, email, title, how it is linked) or none, stage, amount, owner; evidence = every alerted
  deal's id (largest first, at most 500) and the contacts shown.
SYNTHESIZE: Claude writes the summary when a key is set; else a template.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.context import lookup
from core.pipeline.participants import email_key, marked_internal
from skills.format import money
from skills.registry import Param, Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

LATE_STAGES = ("evaluation", "decision", "negotiation")
LIST_CAP = 15
EVIDENCE_CAP = 500
FLOOR_SHARE = Decimal("0.2")

_OPEN = "(d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))"
_ON_OR_BEFORE = "({col} AT TIME ZONE 'UTC')::date <= %(today)s"

_THREADS = f"""
WITH o AS (
    SELECT d.id, d.name, d.amount, d.stage_normalized AS stage, d.owner, d.close_date,
           COALESCE(a.name, d.account_name) AS account
      FROM deals d
      LEFT JOIN accounts a ON a.workspace_id = d.workspace_id AND a.id = d.account_id AND a.deleted_at IS NULL
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN}
), links AS (   -- (deal, contact, how); `rank` orders the ways a contact is known, strongest first
    SELECT dc.deal_id, dc.contact_id, 1 AS rank, 'deal contact' AS via FROM deal_contacts dc
     WHERE dc.workspace_id = %(workspace_id)s AND dc.deal_id IN (SELECT id FROM o)
    UNION ALL
    SELECT x.deal_id, x.contact_id, 2, 'activity' FROM activities x
     WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL AND x.deal_id IN (SELECT id FROM o)
       AND x.contact_id IS NOT NULL AND {_ON_OR_BEFORE.format(col="x.occurred_at")}
    UNION ALL
    SELECT x.deal_id, x.contact_id, 3, 'call' FROM calls x
     WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL AND x.deal_id IN (SELECT id FROM o)
       AND x.contact_id IS NOT NULL AND {_ON_OR_BEFORE.format(col="x.occurred_at")}
    UNION ALL
    SELECT x.deal_id, x.contact_id, 4, 'conversation' FROM conversations x
     WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL AND x.deal_id IN (SELECT id FROM o)
       AND x.is_internal IS NOT TRUE AND x.contact_id IS NOT NULL AND {_ON_OR_BEFORE.format(col="x.started_at")}
    UNION ALL
    SELECT x.deal_id, ct.id, 4, 'conversation' FROM conversations x
     CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(x.participants) WHEN 'array'
                                             THEN x.participants ELSE '[]'::jsonb END) p(v)
      JOIN contacts ct ON ct.workspace_id = x.workspace_id AND lower(ct.email) = {email_key("p.v ->> 'email'")}
     WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL AND x.deal_id IN (SELECT id FROM o)
       AND x.is_internal IS NOT TRUE AND {_ON_OR_BEFORE.format(col="x.started_at")}
       AND {marked_internal("p.v ->> 'affiliation'")} IS NOT TRUE
), people AS (
    SELECT l.deal_id, l.contact_id, min(l.rank) AS rank,
           (array_agg(l.via ORDER BY l.rank))[1] AS via
      FROM links l
      JOIN contacts ct ON ct.workspace_id = %(workspace_id)s AND ct.id = l.contact_id AND ct.deleted_at IS NULL
     GROUP BY l.deal_id, l.contact_id
), t AS (
    SELECT o.*, count(p.contact_id) AS contacts,
           (array_agg(p.contact_id ORDER BY p.rank, p.contact_id) FILTER (WHERE p.contact_id IS NOT NULL))[1] AS contact_id,
           (array_agg(p.via ORDER BY p.rank, p.contact_id) FILTER (WHERE p.contact_id IS NOT NULL))[1] AS via
      FROM o LEFT JOIN people p ON p.deal_id = o.id
     GROUP BY o.id, o.name, o.amount, o.stage, o.owner, o.close_date, o.account
), k AS (
    SELECT t.*, ct.email, NULLIF(btrim(concat_ws(' ', ct.first_name, ct.last_name)), '') AS contact_name, ct.title,
           CASE WHEN t.contacts < %(min_contacts)s THEN 'single'
                WHEN t.contacts = %(min_contacts)s THEN 'double' ELSE 'multi' END AS threading,
           t.contacts < %(min_contacts)s AND COALESCE(t.amount, 0) >= %(min_amount)s AS alerted,
           t.stage = ANY(%(late_stages)s::text[]) OR COALESCE(t.amount, 0) > %(average)s AS critical_shape
      FROM t LEFT JOIN contacts ct ON ct.workspace_id = %(workspace_id)s AND ct.id = t.contact_id
), f AS (
    SELECT 'open' AS class, k.* FROM k
    UNION ALL SELECT 'threading:' || threading, k.* FROM k
    UNION ALL SELECT CASE WHEN critical_shape THEN 'critical' ELSE 'warning' END, k.* FROM k WHERE alerted
    UNION ALL SELECT 'alerted', k.* FROM k WHERE alerted
    UNION ALL SELECT 'below_floor', k.* FROM k WHERE threading = 'single' AND NOT alerted
)
SELECT class, count(*) AS deals, COALESCE(sum(amount), 0) AS amount,
       (array_agg(id::text ORDER BY amount DESC NULLS LAST, id))[1:%(evidence_cap)s] AS ids,
       (array_agg(COALESCE(name, '') ORDER BY amount DESC NULLS LAST, id))[1:%(evidence_cap)s] AS names,
       (array_agg(jsonb_build_object(
            'id', id::text, 'name', name, 'amount', amount, 'stage', stage, 'owner', owner, 'account', account,
            'close_date', close_date, 'contacts', contacts, 'contact_id', contact_id::text, 'contact_name', contact_name,
            'contact_email', email, 'contact_title', title, 'contact_via', via)
        ORDER BY amount DESC NULLS LAST, id))[1:%(list_cap)s] AS top
  FROM f
 GROUP BY class
"""


def settings_for(context: dict[str, Any], min_amount: Any) -> dict[str, Any]:
    """min_contacts (M), the average deal and the size floor from the context layer and the parameter."""
    average = lookup(context, "business_model.acv_range.avg", 50000)
    average = Decimal(str(average)) if _positive(average) else Decimal(50000)
    m = lookup(context, "goals_and_targets.thresholds.min_contacts_per_deal", 2)
    m = int(m) if _positive(m) else 2
    floor = Decimal(str(min_amount)) if min_amount is not None else (average * FLOOR_SHARE).quantize(Decimal("0.01"))
    return {"min_contacts": m, "average": average, "min_amount": max(floor, Decimal(0)),
            "min_amount_source": "parameter" if min_amount is not None else "20% of the average deal"}


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) and v > 0


@register
class SingleThreadAlert(Skill):
    name = "single-thread-alert"
    description = "Open deals above a size with fewer than the minimum engaged contacts, critical ones first"
    aliases = ("threading", "single-thread")
    params = (Param("min_amount", float, None, "smallest deal amount to alert on (default: 20% of the average deal)"),)
    schedule = "weekly mon 09:00"

    def compute(self, ctx) -> dict[str, Any]:
        s = settings_for(ctx.context, ctx.params.get("min_amount"))
        params = {"workspace_id": ctx.workspace_id, "today": ctx.today, "late_stages": list(LATE_STAGES),
                  "list_cap": LIST_CAP, "evidence_cap": EVIDENCE_CAP, "min_contacts": s["min_contacts"],
                  "min_amount": s["min_amount"], "average": s["average"]}
        with ctx.conn() as conn:
            rows = {r["class"]: r for r in conn.execute(_THREADS, params).fetchall()}

        def group(key: str) -> dict[str, Any]:
            r = rows.get(key)
            if r is None:
                return {"deals": 0, "amount": Decimal(0), "ids": [], "names": [], "top": []}
            return {"deals": r["deals"], "amount": r["amount"], "ids": r["ids"], "names": r["names"], "top": r["top"]}

        opened, alerted = group("open"), group("alerted")
        return {
            "today": ctx.today, **s,
            "open_deals": opened["deals"], "open_amount": opened["amount"],
            "threading": {k: group(f"threading:{k}")["deals"] for k in ("single", "double", "multi")},
            "alerted": alerted, "critical": group("critical"), "warning": group("warning"),
            "below_floor": {k: v for k, v in group("below_floor").items() if k in ("deals", "amount")},
            "alerted_share_pct": (alerted["amount"] * 100 / opened["amount"]).quantize(Decimal("0.1"))
                                 if opened["amount"] else None,
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        crit, warn, alerted = c["critical"], c["warning"], c["alerted"]
        headline = (f"Single-threaded: {alerted['deals']} open deals ({money(alerted['amount'])}) rest on fewer than "
                    f"{c['min_contacts']} contacts; {crit['deals']} critical ({money(crit['amount'])})"
                    if alerted["deals"] else
                    f"Single-threaded: no open deal of {money(c['min_amount'])}+ rests on fewer than "
                    f"{c['min_contacts']} contacts")
        metrics = [  # the headline figures first: a digest shows the first four
            Metric("single_threaded_deals", f"Single-threaded, {money(c['min_amount'])}+", alerted["deals"], "deals"),
            Metric("single_threaded_amount", "Single-threaded ($)", alerted["amount"], "$"),
            Metric("critical_deals", "Critical (late stage or above average)", crit["deals"], "deals"),
            Metric("critical_amount", "Critical ($)", crit["amount"], "$"),
            Metric("single_threaded_share", "Share of open pipeline $", c["alerted_share_pct"], "%"),
            Metric("open_deals", "Open deals", c["open_deals"], "deals"),
            Metric("min_amount", f"Size floor ({c['min_amount_source']})", c["min_amount"], "$"),
            Metric("warning_deals", "Warning", warn["deals"], "deals"),
            Metric("warning_amount", "Warning ($)", warn["amount"], "$"),
            Metric("below_floor_deals", "Single-threaded under the floor", c["below_floor"]["deals"], "deals"),
            Metric("threading_single", f"Open deals with < {c['min_contacts']} contacts", c["threading"]["single"], "deals"),
            Metric("threading_double", f"Open deals with {c['min_contacts']} contacts", c["threading"]["double"], "deals"),
            Metric("threading_multi", f"Open deals with > {c['min_contacts']} contacts", c["threading"]["multi"], "deals"),
        ]
        columns = ["Deal", "Amount", "Stage", "Owner", "Contact", "Linked by"]
        tables = [Table(title, columns, [
            [d["name"], money(d["amount"]), d["stage"] or "—", d["owner"] or "—", _contact(d),
             d["contact_via"] or "—"] for d in g["top"]],
            note=f"{g['deals'] - LIST_CAP} more in the evidence" if g["deals"] > LIST_CAP else None)
            for title, g in (("Critical: late stage or above the average deal", crit), ("Warning", warn)) if g["top"]]
        evidence = []
        for level, g in (("critical", crit), ("warning", warn)):
            if g["ids"]:
                evidence.append(Evidence(f"{g['deals']} {level} single-threaded deals ({money(g['amount'])})",
                                         "deals", g["ids"], g["names"]))
        shown = [(d["contact_id"], _contact(d)) for g in (crit, warn) for d in g["top"] if d["contact_id"]]
        if shown:
            evidence.append(Evidence("the one contact on each listed deal", "contacts", [i for i, _ in shown],
                                     [n for _, n in shown]))
        text = ctx.synthesize(task="single-thread alert",
                          instructions="Write a short alert for a sales manager about open deals that depend on one "
                                       "contact: how much money is exposed, the critical deals first (who the one "
                                       "contact is), and which additional people each rep should bring in "
                                       "(roles, not invented names). Use only the data given.",
                          data={"threading": _prompt_data(c)}, template=lambda: _template(c))
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, tables, [], evidence,
                           ai_written=text.ai_written, data=c)


def _contact(d: dict[str, Any]) -> str:
    if not d.get("contact_id"):
        return "no contact"
    name = d.get("contact_name") or d.get("contact_email") or "unnamed contact"
    return name + (f", {d['contact_title']}" if d.get("contact_title") else "")


def _prompt_data(c: dict[str, Any]) -> dict[str, Any]:
    slim = lambda g: {"deals": g["deals"], "amount": g["amount"], "top": g["top"]}  # noqa: E731
    return {**{k: v for k, v in c.items() if k not in ("alerted", "critical", "warning")},
            "alerted": {"deals": c["alerted"]["deals"], "amount": c["alerted"]["amount"]},
            "critical": slim(c["critical"]), "warning": slim(c["warning"])}


def _template(c: dict[str, Any]) -> str:
    crit, warn, alerted = c["critical"], c["warning"], c["alerted"]
    if not c["open_deals"]:
        return "There are no open deals."
    t = c["threading"]
    lines = [f"Of {c['open_deals']} open deals, {t['single']} have fewer than {c['min_contacts']} engaged contacts, "
             f"{t['double']} have {c['min_contacts']} and {t['multi']} more."]
    if not alerted["deals"]:
        lines.append(f"None of the single-threaded deals is worth {money(c['min_amount'])} or more.")
        return " ".join(lines)
    lines.append(f"{alerted['deals']} of them ({money(alerted['amount'])}) are worth {money(c['min_amount'])} or "
                 f"more: {crit['deals']} critical ({money(crit['amount'])}, late stage or above the "
                 f"{money(c['average'])} average deal) and {warn['deals']} to watch.")
    if crit["top"]:
        lines.append("Multi-thread first: " + "; ".join(
            f"{d['name']} ({money(d['amount'])}, {d['stage'] or 'no stage'}, {d['owner'] or 'no owner'}) — "
            f"{_contact(d)}" for d in crit["top"][:3]) + ".")
    return " ".join(lines)


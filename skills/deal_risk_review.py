"""deal-risk-review (alias `risk`): the riskiest open deals, why each is at risk, and what the pipeline's risk
factors add up to.

COMPUTE (reads the computed fields the post-sync pipeline fills; open = stage_normalized NULL or not closed_won /
closed_lost; deleted rows never count):
- reviewed = the `limit` (default 10, at most 30) open deals with the highest `deal_risk`, then the largest
  amount. The original reviewed the 10 largest open deals whatever their risk; a risk review starts from risk.
  Open deals the pipeline has not scored yet (deal_risk NULL) are counted and left out.
- for each: its `deal_risk_factors` ({factor, points, detail}) and its last 3 external conversations
  (is_internal not true) started in the 30 days up to today: title, date, summary (first 600 characters).
  30 days rather than the original's 14, so a deal that went quiet two weeks ago still shows its last call.
- at risk = open deals with deal_risk ≥ 70 (the original's at_risk filter): count, $ (missing amounts count 0)
  and ids; average risk over scored open deals; how often each factor occurs across scored open deals (deals, $).
CLASSIFY: DeepSeek (core.llm.classify) gives every reviewed deal a risk level (high / medium / low) and a
one-sentence reason, answering a fixed JSON schema; the deals enter the prompt only as a data block, reduced with
`fit_records` (riskiest first). Without a key, or whenever the model fails, the rules decide: level high at
deal_risk ≥ 70, medium ≥ 40, else low; reason = the details of the deal's two heaviest factors. A deal the model
leaves out (or that did not fit the prompt) gets the rules' answer; answers for deals not asked about are ignored.
SYNTHESIZE: Claude writes the summary when a key is set; else a template. `ai_written` is about that summary;
`data.reasons_by` says whether the reasons came from the model ("llm") or the rules ("rules").
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from core.llm import fit_records
from skills.format import money
from skills.registry import Param, Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

AT_RISK = 70
MEDIUM = 40
MAX_REVIEW = 30            # the CLASSIFY tier's array cap
CONVERSATION_DAYS = 30
LEVELS = ("high", "medium", "low")

_OPEN = "(d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))"
_OPEN_DEALS = f"deals d WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN}"

_REVIEW = f"""
SELECT d.id::text AS id, d.name, d.amount, d.stage_normalized AS stage, d.owner, d.close_date, d.days_in_stage,
       d.last_activity_at, d.deal_risk, d.deal_risk_factors AS factors, d.health_score,
       COALESCE(a.name, d.account_name) AS account, COALESCE(cv.items, '[]'::jsonb) AS conversations
  FROM deals d
  LEFT JOIN accounts a ON a.workspace_id = d.workspace_id AND a.id = d.account_id AND a.deleted_at IS NULL
  LEFT JOIN LATERAL (
      SELECT jsonb_agg(jsonb_build_object('id', c.id::text, 'title', c.title,
                                          'date', (c.started_at AT TIME ZONE 'UTC')::date,
                                          'summary', left(c.summary, 600)) ORDER BY c.started_at DESC) AS items
        FROM (SELECT * FROM conversations c
               WHERE c.workspace_id = %(workspace_id)s AND c.deal_id = d.id AND c.deleted_at IS NULL
                 AND c.is_internal IS NOT TRUE
                 AND (c.started_at AT TIME ZONE 'UTC')::date BETWEEN %(today)s - %(conversation_days)s::int AND %(today)s
               ORDER BY c.started_at DESC LIMIT 3) c
  ) cv ON true
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN} AND d.deal_risk IS NOT NULL
 ORDER BY d.deal_risk DESC, d.amount DESC NULLS LAST, d.id
 LIMIT %(limit)s
"""

_TOTALS = f"""
SELECT count(*) AS open_deals, count(d.deal_risk) AS scored, COALESCE(sum(d.amount), 0) AS open_amount,
       count(*) FILTER (WHERE d.deal_risk >= %(at_risk)s) AS at_risk,
       COALESCE(sum(d.amount) FILTER (WHERE d.deal_risk >= %(at_risk)s), 0) AS at_risk_amount,
       round(avg(d.deal_risk), 1) AS average_risk,
       COALESCE((array_agg(d.id::text ORDER BY d.deal_risk DESC, d.amount DESC NULLS LAST, d.id)
                 FILTER (WHERE d.deal_risk >= %(at_risk)s))[1:500], '{{}}') AS at_risk_ids,
       COALESCE((array_agg(COALESCE(d.name, '') ORDER BY d.deal_risk DESC, d.amount DESC NULLS LAST, d.id)
                 FILTER (WHERE d.deal_risk >= %(at_risk)s))[1:500], '{{}}') AS at_risk_names
  FROM {_OPEN_DEALS}
"""

_FACTORS = f"""
SELECT f.value ->> 'factor' AS factor, count(DISTINCT d.id) AS deals, COALESCE(sum(d.amount), 0) AS amount
  FROM deals d
 CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(d.deal_risk_factors) WHEN 'array'
                                         THEN d.deal_risk_factors ELSE '[]'::jsonb END) f
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN} AND d.deal_risk IS NOT NULL
 GROUP BY 1
 ORDER BY deals DESC, amount DESC, factor
"""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["deals"],
    "additionalProperties": False,
    "properties": {"deals": {"type": "array", "maxItems": MAX_REVIEW, "items": {
        "type": "object",
        "required": ["deal_id", "risk_level", "reason"],
        "additionalProperties": False,
        "properties": {
            "deal_id": {"type": "string"},
            "risk_level": {"type": "string", "enum": list(LEVELS)},
            "reason": {"type": "string", "minLength": 1, "maxLength": 300},
        },
    }}},
}

INSTRUCTIONS = (
    "For every deal in the deals data, judge how likely it is to slip or be lost and answer with its deal_id "
    "(exactly as given), a risk_level (high, medium or low) and a reason: one sentence of at most 30 words that "
    "names the concrete evidence — its risk factors and, when there are any, what its recent conversations say. "
    "deal_risk is a 0-100 score from rules; you may disagree with it when the conversations say otherwise. "
    "Answer {\"deals\": [...]} with one entry per deal and nothing else."
)


def rule_level(risk: Any) -> str:
    risk = Decimal(str(risk or 0))
    return "high" if risk >= AT_RISK else "medium" if risk >= MEDIUM else "low"


def rule_reason(factors: list[dict[str, Any]]) -> str:
    """The details of the two heaviest factors, as one sentence."""
    ranked = sorted((f for f in factors or [] if isinstance(f, dict)), key=lambda f: -(f.get("points") or 0))
    details = [str(f.get("detail") or f.get("factor")).strip() for f in ranked[:2]]
    details = [d for d in details if d]
    if not details:
        return "No risk factors recorded."
    text = "; ".join(details)
    return text[0].upper() + text[1:] + "."


@register
class DealRiskReview(Skill):
    name = "deal-risk-review"
    description = "The riskiest open deals with their risk factors and a reason for each"
    aliases = ("risk",)
    params = (Param("limit", int, 10, "how many of the riskiest open deals to review (1-30)"),)
    schedule = "weekly mon 08:45"

    def compute(self, ctx) -> dict[str, Any]:
        limit = max(1, min(MAX_REVIEW, int(ctx.params.get("limit") or 10)))
        params = {"workspace_id": ctx.workspace_id, "today": ctx.today, "limit": limit, "at_risk": AT_RISK,
                  "conversation_days": CONVERSATION_DAYS}
        with ctx.conn() as conn:
            deals = conn.execute(_REVIEW, params).fetchall()
            totals = conn.execute(_TOTALS, params).fetchone()
            factors = conn.execute(_FACTORS, params).fetchall()
        reviewed = [{
            "id": d["id"], "name": d["name"], "account": d["account"], "amount": d["amount"], "stage": d["stage"],
            "owner": d["owner"], "close_date": d["close_date"], "days_in_stage": d["days_in_stage"],
            "days_since_activity": _days_since(d["last_activity_at"], ctx.today), "deal_risk": d["deal_risk"],
            "health_score": d["health_score"], "factors": d["factors"] or [], "conversations": d["conversations"],
        } for d in deals]
        return {
            "today": ctx.today, "limit": limit,
            "open_deals": totals["open_deals"], "scored_deals": totals["scored"], "open_amount": totals["open_amount"],
            "unscored_deals": totals["open_deals"] - totals["scored"],
            "at_risk_deals": totals["at_risk"], "at_risk_amount": totals["at_risk_amount"],
            "average_risk": totals["average_risk"],
            "at_risk_evidence": {"ids": list(totals["at_risk_ids"]), "names": list(totals["at_risk_names"])},
            "factors": [dict(f) for f in factors],
            "deals": reviewed,
        }

    def classify(self, ctx, c: dict[str, Any]) -> dict[str, Any]:
        rules = {d["id"]: {"risk_level": rule_level(d["deal_risk"]), "reason": rule_reason(d["factors"])}
                 for d in c["deals"]}
        if not c["deals"]:
            return {"by": "rules", "reasons": {}, "notes": []}
        budget = max(1000, min(ctx.llm.warn_input_tokens, ctx.llm.max_input_tokens) - 1500)
        fitted = fit_records([_prompt_record(d) for d in c["deals"]], budget,
                             key_fields=("deal_id", "name", "deal_risk", "factors"),
                             drop_fields=("account", "owner", "health_score", "days_in_stage"),
                             sort_by="deal_risk", label="deals")
        result = ctx.classify(task="deal risk review", instructions=INSTRUCTIONS,
                          data={"deals": fitted.records}, schema=SCHEMA,
                          fallback=lambda: {"deals": [{"deal_id": k, **v} for k, v in rules.items()]})
        answered = {a["deal_id"]: a for a in result.value["deals"] if a["deal_id"] in rules}
        by = "llm" if result.ai_used else "rules"
        reasons = {}
        for deal_id, rule in rules.items():
            a = answered.get(deal_id)
            reasons[deal_id] = ({"risk_level": a["risk_level"], "reason": a["reason"].strip(), "by": by} if a
                                else {**rule, "by": "rules"})
        notes = [f"Risk reasons: {'DeepSeek' if by == 'llm' else 'rules from the risk factors'}"
                 + (f" ({result.reason})" if result.reason else "") + "."]
        if fitted.note and result.ai_used:
            notes.append(f"Deals sent to the classifier: {fitted.note}.")
        return {"by": by, "reasons": reasons, "notes": notes}

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        reasons = classified.get("reasons") or {}
        deals = [{**d, **reasons.get(d["id"], {"risk_level": rule_level(d["deal_risk"]),
                                               "reason": rule_reason(d["factors"]), "by": "rules"})}
                 for d in c["deals"]]
        levels = {lvl: [d for d in deals if d["risk_level"] == lvl] for lvl in LEVELS}
        data = {**c, "deals": deals, "reasons_by": classified.get("by", "rules")}
        top = deals[0] if deals else None
        headline = (f"Deal risk: {c['at_risk_deals']} open deals at risk ({money(c['at_risk_amount'])}); riskiest "
                    f"{top['name']} (risk {_num(top['deal_risk'])})" if top
                    else "Deal risk: no scored open deals")
        metrics = [  # the headline figures first: a digest shows the first four
            Metric("at_risk_deals", f"At risk (risk ≥ {AT_RISK})", c["at_risk_deals"], "deals"),
            Metric("at_risk_amount", "At risk ($)", c["at_risk_amount"], "$"),
            Metric("average_risk", "Average risk (scored open deals)", c["average_risk"]),
            Metric("open_deals", "Open deals", c["open_deals"], "deals"),
            Metric("scored_deals", "Open deals with a risk score", c["scored_deals"], "deals"),
            Metric("reviewed_deals", "Deals reviewed", len(deals), "deals"),
            *[Metric(f"reviewed_{lvl}", f"Reviewed: {lvl} risk", len(levels[lvl]), "deals") for lvl in LEVELS],
        ]
        tables = [Table("Riskiest open deals", ["Deal", "Amount", "Stage", "Owner", "Risk", "Level", "Reason"], [
            [d["name"], money(d["amount"]), d["stage"] or "—", d["owner"] or "—", _num(d["deal_risk"]),
             d["risk_level"], d["reason"]] for d in deals])]
        if c["factors"]:
            tables.append(Table("Risk factors across open deals", ["Factor", "Deals", "Amount"], [
                [f["factor"].replace("_", " "), f["deals"], money(f["amount"])] for f in c["factors"]]))
        evidence = []
        if deals:
            evidence.append(Evidence(f"the {len(deals)} riskiest open deals", "deals", [d["id"] for d in deals],
                                     [d["name"] or "" for d in deals]))
        if c["at_risk_evidence"]["ids"]:
            evidence.append(Evidence(f"{c['at_risk_deals']} open deals at risk (≥ {AT_RISK})", "deals",
                                     c["at_risk_evidence"]["ids"], c["at_risk_evidence"]["names"]))
        calls = [(v["id"], v["title"] or "") for d in deals for v in d["conversations"]]
        if calls:
            evidence.append(Evidence("recent conversations read for the reasons", "conversations",
                                     [i for i, _ in calls], [t for _, t in calls]))
        text = ctx.synthesize(task="deal risk review",
                          instructions="Write a short deal-risk briefing for a sales manager: how much of the open "
                                       "pipeline is at risk, the riskiest deals with the reason for each, the most "
                                       "common risk factors, and what to do this week. Use only the data given.",
                          data={"risk": _prompt_data(data)}, template=lambda: _template(data))
        notes = list(classified.get("notes") or [])
        if c["unscored_deals"]:
            notes.append(f"{c['unscored_deals']} open deals have no risk score yet (the post-sync pipeline has not "
                         "scored them).")
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, tables, [], evidence,
                           ai_written=text.ai_written, notes=notes, data=data)


def _prompt_record(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "deal_id": d["id"], "name": d["name"], "account": d["account"], "amount": _float(d["amount"]),
        "stage": d["stage"], "owner": d["owner"], "close_date": d["close_date"].isoformat() if d["close_date"] else None,
        "days_in_stage": d["days_in_stage"], "days_since_activity": d["days_since_activity"],
        "deal_risk": _float(d["deal_risk"]), "health_score": _float(d["health_score"]),
        "factors": [{"factor": f.get("factor"), "points": f.get("points"), "detail": f.get("detail")}
                    for f in d["factors"] if isinstance(f, dict)],
        "recent_conversations": [{"date": v["date"], "title": v["title"], "summary": v["summary"]}
                                 for v in d["conversations"]],
    }


def _prompt_data(data: dict[str, Any]) -> dict[str, Any]:
    keep = ("today", "open_deals", "scored_deals", "open_amount", "at_risk_deals", "at_risk_amount",
            "average_risk", "factors", "reasons_by")
    return {**{k: data[k] for k in keep},
            "deals": [{k: d[k] for k in ("name", "amount", "stage", "owner", "close_date", "deal_risk",
                                         "risk_level", "reason")} for d in data["deals"]]}


def _template(data: dict[str, Any]) -> str:
    if not data["deals"]:
        return (f"None of the {data['open_deals']} open deals has a risk score yet." if data["open_deals"]
                else "There are no open deals to review.")
    lines = [f"{data['at_risk_deals']} of {data['scored_deals']} scored open deals "
             f"({money(data['at_risk_amount'])}) are at risk (risk {AT_RISK}+); the average risk is "
             f"{_num(data['average_risk'])}."]
    lines.append("Riskiest: " + " ".join(
        f"{d['name']} ({money(d['amount']) if d['amount'] is not None else 'no amount'}, risk "
        f"{_num(d['deal_risk'])}, {d['risk_level']}): {d['reason'].rstrip('.')}." for d in data["deals"][:3]))
    if data["factors"]:
        f = data["factors"][0]
        lines.append(f"Most common factor: {f['factor'].replace('_', ' ')} ({f['deals']} deals, {money(f['amount'])}).")
    return " ".join(lines)


def _days_since(at: datetime | None, today: date) -> int | None:
    """Whole days from the UTC date of `at` to today (never negative); None when there was no activity."""
    if at is None:
        return None
    day = at.astimezone(timezone.utc).date() if at.tzinfo else at.date()
    return max(0, (today - day).days)


def _float(v) -> float | None:
    return None if v is None else float(v)


def _num(v) -> str:
    if v is None:
        return "—"
    v = float(v)
    return f"{v:.0f}" if v.is_integer() else f"{v:.1f}"


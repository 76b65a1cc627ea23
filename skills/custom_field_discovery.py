"""custom-field-discovery (compute only, on demand): which `custom_fields` keys could segment an ICP.

COMPUTE (one set-based statement over deals, accounts, contacts and leads, `jsonb_each_text` over each row's
custom_fields; deleted rows never count; values are trimmed text, and arrays, objects, JSON null, '' and
'null' count as empty):
- fill rate = records with a value for the key / all records of that entity (the original divided by the
  records that merely had the key, so a key present-but-empty everywhere looked fully filled);
- cardinality = distinct values;
- outcomes, per value: the closed deals behind the records — a deal itself; an account's deals; a contact's
  deals (deal_contacts); a lead's converted deal (the original scored leads on conversion instead; one scale
  for every entity reads easier). A deal counts once per value.
- lift of a value = won share / lost share, where won share = won deals with that value / won deals with any
  value for the key (lost alike); no lost deal with the value → lift unbounded (reported as null, "won only").
- win rate of a value = won / closed, for values with ≥ 3 closed deals; spread = max − min of those.
Candidates (the original's filter): fill ≥ 40 %, 2-30 distinct values (2-50 when the entity has > 1,000
records), and not a system key (ids, created/updated/modified timestamps, *_at, *_date except renewal, start
and end dates). Relevance score (the original's), capped at 100:
  min(20, fill × 25) + min(40, spread × 150) + cardinality (3-8: 15, 2-15: 10, else 5)
  + sample size of the values with ≥ 3 closed deals (≥ 100: 15, ≥ 50: 10, ≥ 20: 5)
  + min(10, CV × 20), CV = population std / mean of those values' average closed-deal amounts.
Top fields = score ≥ 50, best 10. Compute only: no model writes anything; the summary is a template.
"""
from __future__ import annotations

import re
from statistics import fmean, pstdev
from typing import Any

from core.llm import template_footer
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

ENTITIES = ("deals", "accounts", "contacts", "leads")
MIN_FILL, MIN_CARDINALITY, MAX_CARDINALITY, MAX_CARDINALITY_LARGE, LARGE = 0.40, 2, 30, 50, 1000
MIN_VALUE_DEALS = 3
TOP_SCORE, TOP_N = 50, 10
EVIDENCE_CAP = 50
_SYSTEM = re.compile(r"(^|_)(id|uuid|guid)$|^(id|uuid)_|created|updated|modified|timestamp|_at$")
_BUSINESS_DATE = re.compile(r"renewal|start|end")

_CELLS = """
    SELECT '{entity}' AS entity, t.id AS record_id, kv.key, btrim(kv.value) AS value
      FROM {entity} t CROSS JOIN LATERAL jsonb_each_text(t.custom_fields) AS kv(key, value)
     WHERE t.workspace_id = %(workspace_id)s AND t.deleted_at IS NULL
       AND jsonb_typeof(t.custom_fields -> kv.key) IN ('string', 'number', 'boolean')
       AND btrim(kv.value) NOT IN ('', 'null')"""
_CLOSED = ("d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL"
           " AND d.stage_normalized IN ('closed_won', 'closed_lost')")
_TOTAL = "SELECT '{entity}' AS entity, count(*) AS records FROM {entity}" \
         " WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL"

_DISCOVER = f"""
WITH totals AS (
    {" UNION ALL ".join(_TOTAL.format(entity=e) for e in ENTITIES)}
), cells AS (
    {" UNION ALL ".join(_CELLS.format(entity=e) for e in ENTITIES)}
), outcomes AS (
    SELECT 'deals' AS entity, d.id AS record_id, d.id AS deal_id, d.stage_normalized = 'closed_won' AS won, d.amount
      FROM deals d WHERE {_CLOSED}
    UNION ALL
    SELECT 'accounts', d.account_id, d.id, d.stage_normalized = 'closed_won', d.amount
      FROM deals d WHERE {_CLOSED} AND d.account_id IS NOT NULL
    UNION ALL
    SELECT DISTINCT 'contacts', dc.contact_id, d.id, d.stage_normalized = 'closed_won', d.amount
      FROM deal_contacts dc JOIN deals d ON d.workspace_id = dc.workspace_id AND d.id = dc.deal_id
     WHERE dc.workspace_id = %(workspace_id)s AND {_CLOSED}
    UNION ALL
    SELECT 'leads', l.id, d.id, d.stage_normalized = 'closed_won', d.amount
      FROM leads l JOIN deals d ON d.workspace_id = l.workspace_id AND d.id = l.converted_deal_id
     WHERE l.workspace_id = %(workspace_id)s AND l.deleted_at IS NULL AND {_CLOSED}
), fields AS (
    SELECT entity, key, count(DISTINCT record_id) AS filled, count(DISTINCT value) AS cardinality
      FROM cells GROUP BY entity, key
), value_deals AS (
    SELECT DISTINCT c.entity, c.key, c.value, o.deal_id, o.won, o.amount
      FROM cells c
      JOIN fields f ON f.entity = c.entity AND f.key = c.key AND f.cardinality <= {MAX_CARDINALITY_LARGE}
      JOIN outcomes o ON o.entity = c.entity AND o.record_id = c.record_id
), by_value AS (
    SELECT entity, key, value, count(*) FILTER (WHERE won) AS won, count(*) FILTER (WHERE NOT won) AS lost,
           avg(amount) AS avg_amount,
           (array_agg(deal_id::text ORDER BY amount DESC NULLS LAST, deal_id) FILTER (WHERE won))[1:%(cap)s] AS won_ids
      FROM value_deals GROUP BY entity, key, value
), key_outcomes AS (
    SELECT entity, key, count(DISTINCT deal_id) FILTER (WHERE won) AS won,
           count(DISTINCT deal_id) FILTER (WHERE NOT won) AS lost
      FROM value_deals GROUP BY entity, key
)
SELECT f.entity, f.key, t.records, f.filled, f.cardinality,
       COALESCE(k.won, 0) AS won, COALESCE(k.lost, 0) AS lost,
       COALESCE(jsonb_agg(jsonb_build_object('value', v.value, 'won', v.won, 'lost', v.lost,
                                             'avg_amount', v.avg_amount, 'won_ids', v.won_ids)
                          ORDER BY v.value) FILTER (WHERE v.value IS NOT NULL), '[]') AS "values"
  FROM fields f
  JOIN totals t ON t.entity = f.entity
  LEFT JOIN key_outcomes k ON k.entity = f.entity AND k.key = f.key
  LEFT JOIN by_value v ON v.entity = f.entity AND v.key = f.key
 GROUP BY f.entity, f.key, t.records, f.filled, f.cardinality, k.won, k.lost
 ORDER BY f.entity, f.key
"""


def is_system_key(key: str) -> bool:
    k = key.lower()
    if k.endswith("_date"):
        return not _BUSINESS_DATE.search(k)
    return bool(_SYSTEM.search(k))


def analyse(row: dict[str, Any]) -> dict[str, Any]:
    """Fill, cardinality, per-value lift and win rate, the candidate filter and the relevance score of a key."""
    fill = row["filled"] / row["records"] if row["records"] else 0.0
    values = []
    for v in row["values"]:
        won_share = v["won"] / row["won"] if row["won"] else 0.0
        lost_share = v["lost"] / row["lost"] if row["lost"] else 0.0
        closed = v["won"] + v["lost"]
        values.append({**v, "closed": closed, "won_share": won_share, "lost_share": lost_share,
                       "lift": won_share / lost_share if lost_share else None,
                       "win_rate": v["won"] / closed if closed >= MIN_VALUE_DEALS else None})
    sampled = [v for v in values if v["win_rate"] is not None]
    rates = [v["win_rate"] for v in sampled]
    spread = max(rates) - min(rates) if rates else 0.0
    amounts = [float(v["avg_amount"]) for v in sampled if v["avg_amount"] is not None]
    cv = pstdev(amounts) / fmean(amounts) if len(amounts) > 1 and fmean(amounts) > 0 else 0.0
    sample = sum(v["closed"] for v in sampled)
    max_card = MAX_CARDINALITY_LARGE if row["records"] > LARGE else MAX_CARDINALITY
    reason = None
    if fill < MIN_FILL:
        reason = f"fill rate {fill * 100:.0f}% < {MIN_FILL * 100:.0f}%"
    elif row["cardinality"] < MIN_CARDINALITY:
        reason = "a single value"
    elif row["cardinality"] > max_card:
        reason = f"{row['cardinality']} distinct values > {max_card}"
    elif is_system_key(row["key"]):
        reason = "system field (id or timestamp)"
    score = None
    if reason is None:
        card = row["cardinality"]
        score = min(100.0, min(20.0, fill * 25) + min(40.0, spread * 150)
                    + (15 if 3 <= card <= 8 else 10 if card <= 15 else 5)
                    + (15 if sample >= 100 else 10 if sample >= 50 else 5 if sample >= 20 else 0)
                    + min(10.0, cv * 20))
    best = max(values, key=lambda v: (v["lift"] is None and v["won"] > 0, v["lift"] or 0, v["won"]), default=None)
    return {"entity": row["entity"], "key": row["key"], "records": row["records"], "filled": row["filled"],
            "fill_rate": fill, "cardinality": row["cardinality"], "won": row["won"], "lost": row["lost"],
            "values": values, "win_rate_spread": spread, "amount_cv": cv, "sample_size": sample,
            "candidate": reason is None, "filtered_reason": reason, "score": score,
            "best_value": best if best and best["won"] else None}


@register
class CustomFieldDiscovery(Skill):
    name = "custom-field-discovery"
    description = "Which custom CRM fields segment won from lost deals (fill, values, lift, ICP relevance)"
    aliases = ("custom-fields",)
    compute_only = True

    def compute(self, ctx) -> dict[str, Any]:
        with ctx.conn() as conn:
            rows = conn.execute(_DISCOVER, {"workspace_id": ctx.workspace_id, "cap": EVIDENCE_CAP}).fetchall()
        fields = [analyse(r) for r in rows]
        ranked = sorted((f for f in fields if f["candidate"]), key=lambda f: (-f["score"], f["entity"], f["key"]))
        return {"fields": fields, "ranked": ranked,
                "top": [f for f in ranked if f["score"] >= TOP_SCORE][:TOP_N],
                "by_entity": {e: {"keys": sum(1 for f in fields if f["entity"] == e),
                                  "candidates": sum(1 for f in ranked if f["entity"] == e)} for e in ENTITIES}}

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        fields, ranked, top = c["fields"], c["ranked"], c["top"]
        headline = (f"Custom fields: {len(top)} of {len(fields)} look ICP-relevant" +
                    (f"; best {_name(top[0])} (score {top[0]['score']:.0f})" if top else ""))
        metrics = [Metric("fields_scanned", "Custom fields scanned", len(fields), "fields"),
                   Metric("candidates", "Segmentation candidates", len(ranked), "fields"),
                   Metric("relevant", f"ICP-relevant (score ≥ {TOP_SCORE})", len(top), "fields")]
        tables = [Table("ICP relevance ranking", ["Field", "Score", "Fill", "Values", "Win-rate spread",
                                                  "Best value (lift)"], [
            [_name(f), f"{f['score']:.0f}", f"{f['fill_rate'] * 100:.0f}%", f["cardinality"],
             f"{f['win_rate_spread'] * 100:.0f} pts", _best(f)] for f in ranked[:25]])]
        dropped = [f for f in fields if not f["candidate"]]
        if dropped:
            tables.append(Table("Not candidates", ["Field", "Why"],
                                [[_name(f), f["filtered_reason"]] for f in dropped[:25]]))
        evidence = [Evidence(f"{_name(f)} = {f['best_value']['value']}: won deals", "deals",
                             f["best_value"]["won_ids"] or []) for f in top if f["best_value"]]
        text = f"{_template(c)}\n\n{template_footer('a compute-only skill; no model is used')}"
        return SkillResult(self.name, headline, [Section("Summary", text)], metrics, tables, [], evidence,
                           ai_written=False, data=c)


def _name(f: dict[str, Any]) -> str:
    return f"{f['entity']}.{f['key']}"


def _lift(v: dict[str, Any]) -> str:
    return "won only" if v["lift"] is None else f"{v['lift']:.2f}x lift"


def _best(f: dict[str, Any]) -> str:
    b = f["best_value"]
    return f"{b['value']} ({_lift(b)})" if b else "—"


def _template(c: dict[str, Any]) -> str:
    if not c["fields"]:
        return "No custom fields found on deals, accounts, contacts or leads."
    lines = [f"Scanned {len(c['fields'])} custom fields; {len(c['ranked'])} pass the fill and value filters."]
    for f in c["top"][:5]:
        b = f["best_value"]
        lines.append(f"{_name(f)} scores {f['score']:.0f}: {f['fill_rate'] * 100:.0f}% filled, "
                     f"{f['cardinality']} values, {f['win_rate_spread'] * 100:.0f}-point win-rate spread"
                     + (f", best value {b['value']} ({_lift(b)})" if b else "") + ".")
    if not c["top"]:
        lines.append(f"None scores {TOP_SCORE} or more yet: more closed deals sharpen the win-rate figures.")
    return " ".join(lines)

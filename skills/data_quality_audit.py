"""data-quality-audit (alias `quality`): how complete, unique and connected the workspace's CRM data is.

COMPUTE (set-based SQL; deleted rows never count; open = stage_normalized NULL or not closed_won / closed_lost):
- completeness of the critical fields, over every row of the entity (open and closed deals alike):
    deals     amount (not NULL; a $0 amount is a value — open $0 deals are counted separately), stage (normalized
              or raw), close date, owner (a name or an email), account (account_id: linked, not just a name);
    contacts  email, first name, last name, account (account_id);
    accounts  name, domain.
  Text counts as present when it is not blank. Field % = filled / rows; entity score = the mean of its field %;
  overall = the mean of the entity scores of entities that have rows. The original scored an empty entity 0
  (a workspace without accounts would read 67 % "complete"); here it is left out and named in a note. Every
  percentage is filled / rows, so none can go negative (the original's owner completeness could: BUG).
- open deals: close date before today (overdue: count, $, ids) and amount exactly 0. The original's zero-amount
  count included closed deals (BUG): open only here.
- duplicate accounts: groups of two or more accounts with the same `pandora_normalize_company(name)` or the same
  domain (lower-case, scheme, "www." and trailing "/" removed); a group found both ways is listed once
  ("name+domain"). Duplicate contacts: two or more contacts with the same lower(trim(email)). Counts: groups and
  records in them.
- linkage: % of activities linked to a deal and to an account; the same for conversations that are not internal
  (is_internal not true: internal meetings have no deal to link to). The original flagged < 50 % of activities
  linked to a deal; so do we.
- CWD: `core.pipeline.cwd.conversations_without_deals` as of the end of today (flags from the last pipeline run):
  total, by severity, accounts, and the top 5.
SYNTHESIZE: Claude writes the summary when a key is set; else a template.
"""
from __future__ import annotations

from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any

from core.pipeline.cwd import conversations_without_deals
from skills.format import money
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table

EVIDENCE_CAP = 500
GROUP_CAP = 50
LINKAGE_FLAG = Decimal(50)
FIELDS: dict[str, tuple[str, ...]] = {
    "deals": ("amount", "stage", "close_date", "owner", "account"),
    "contacts": ("email", "first_name", "last_name", "account"),
    "accounts": ("name", "domain"),
}

_OPEN = "(d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))"


def _present(col: str) -> str:
    return f"NULLIF(btrim({col}), '') IS NOT NULL"


_COMPLETENESS = f"""
SELECT 'deals' AS entity, count(*) AS total,
       count(*) FILTER (WHERE d.amount IS NOT NULL) AS amount,
       count(*) FILTER (WHERE d.stage_normalized IS NOT NULL OR {_present('d.stage')}) AS stage,
       count(*) FILTER (WHERE d.close_date IS NOT NULL) AS close_date,
       count(*) FILTER (WHERE {_present('d.owner')} OR {_present('d.owner_email')}) AS owner,
       count(*) FILTER (WHERE d.account_id IS NOT NULL) AS account,
       NULL::bigint AS email, NULL::bigint AS first_name, NULL::bigint AS last_name, NULL::bigint AS name,
       NULL::bigint AS domain
  FROM deals d WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
UNION ALL
SELECT 'contacts', count(*), NULL, NULL, NULL, NULL, count(*) FILTER (WHERE c.account_id IS NOT NULL),
       count(*) FILTER (WHERE {_present('c.email')}), count(*) FILTER (WHERE {_present('c.first_name')}),
       count(*) FILTER (WHERE {_present('c.last_name')}), NULL, NULL
  FROM contacts c WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL
UNION ALL
SELECT 'accounts', count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       count(*) FILTER (WHERE {_present('a.name')}), count(*) FILTER (WHERE {_present('a.domain')})
  FROM accounts a WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL
"""

_OPEN_DEALS = f"""
SELECT count(*) AS open_deals,
       count(*) FILTER (WHERE d.close_date < %(today)s) AS overdue,
       COALESCE(sum(d.amount) FILTER (WHERE d.close_date < %(today)s), 0) AS overdue_amount,
       COALESCE((array_agg(d.id::text ORDER BY d.amount DESC NULLS LAST, d.close_date, d.id)
                 FILTER (WHERE d.close_date < %(today)s))[1:%(cap)s], '{{}}') AS overdue_ids,
       COALESCE((array_agg(COALESCE(d.name, '') ORDER BY d.amount DESC NULLS LAST, d.close_date, d.id)
                 FILTER (WHERE d.close_date < %(today)s))[1:%(cap)s], '{{}}') AS overdue_names,
       count(*) FILTER (WHERE d.amount = 0) AS zero_amount,
       COALESCE((array_agg(d.id::text ORDER BY d.id) FILTER (WHERE d.amount = 0))[1:%(cap)s], '{{}}') AS zero_amount_ids,
       COALESCE((array_agg(COALESCE(d.name, '') ORDER BY d.id) FILTER (WHERE d.amount = 0))[1:%(cap)s], '{{}}')
           AS zero_amount_names
  FROM deals d WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN}
"""

_DOMAIN = r"rtrim(regexp_replace(lower(btrim(a.domain)), '^(https?://)?(www\.)?', ''), '/')"
_DUPLICATE_ACCOUNTS = f"""
WITH keys AS (
    SELECT a.id, a.name, 'name' AS kind, pandora_normalize_company(a.name) AS key
      FROM accounts a WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL
       AND pandora_normalize_company(a.name) IS NOT NULL
    UNION ALL
    SELECT a.id, a.name, 'domain', {_DOMAIN}
      FROM accounts a WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL
       AND NULLIF({_DOMAIN}, '') IS NOT NULL
), groups AS (
    SELECT kind, key, array_agg(id::text ORDER BY id) AS ids, array_agg(COALESCE(name, '') ORDER BY id) AS names
      FROM keys GROUP BY kind, key HAVING count(*) > 1
)
SELECT string_agg(kind, '+' ORDER BY kind DESC) AS kind, min(key) AS key, ids, names, cardinality(ids) AS records
  FROM groups GROUP BY ids, names
 ORDER BY records DESC, key
"""

_DUPLICATE_CONTACTS = """
SELECT 'email' AS kind, lower(btrim(c.email)) AS key, array_agg(c.id::text ORDER BY c.id) AS ids,
       array_agg(COALESCE(NULLIF(btrim(concat_ws(' ', c.first_name, c.last_name)), ''), c.email) ORDER BY c.id) AS names,
       count(*) AS records
  FROM contacts c
 WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL AND NULLIF(btrim(c.email), '') IS NOT NULL
 GROUP BY lower(btrim(c.email)) HAVING count(*) > 1
 ORDER BY records DESC, key
"""

_LINKAGE = """
SELECT 'activities' AS entity, count(*) AS total, count(*) FILTER (WHERE x.deal_id IS NOT NULL) AS deal,
       count(*) FILTER (WHERE x.account_id IS NOT NULL) AS account
  FROM activities x WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL
UNION ALL
SELECT 'conversations', count(*), count(*) FILTER (WHERE x.deal_id IS NOT NULL),
       count(*) FILTER (WHERE x.account_id IS NOT NULL)
  FROM conversations x
 WHERE x.workspace_id = %(workspace_id)s AND x.deleted_at IS NULL AND x.is_internal IS NOT TRUE
"""

_GAPS = f"""
SELECT d.id::text AS id, d.name, d.amount, d.stage_normalized AS stage, d.owner,
       array_remove(ARRAY[
           CASE WHEN d.amount IS NULL THEN 'amount' END,
           CASE WHEN d.stage_normalized IS NULL AND NOT {_present('d.stage')} THEN 'stage' END,
           CASE WHEN d.close_date IS NULL THEN 'close_date' END,
           CASE WHEN NOT ({_present('d.owner')} OR {_present('d.owner_email')}) THEN 'owner' END,
           CASE WHEN d.account_id IS NULL THEN 'account' END], NULL) AS missing,
       count(*) OVER () AS total
  FROM deals d
 WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL AND {_OPEN}
   AND (d.amount IS NULL OR (d.stage_normalized IS NULL AND NOT {_present('d.stage')}) OR d.close_date IS NULL
        OR NOT ({_present('d.owner')} OR {_present('d.owner_email')}) OR d.account_id IS NULL)
 ORDER BY d.amount DESC NULLS LAST, d.id
 LIMIT 10
"""


def pct(part: int, whole: int) -> Decimal | None:
    """part / whole as a percentage with one decimal; None when there is nothing to measure."""
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1")) if whole else None


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values) / len(values) if values else None


def _one_decimal(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.1"))


@register
class DataQualityAudit(Skill):
    name = "data-quality-audit"
    description = "Critical-field completeness, overdue close dates, duplicates, activity/call linkage, CWD"
    aliases = ("quality", "data-quality")
    schedule = "weekly mon 09:15"

    def compute(self, ctx) -> dict[str, Any]:
        params = {"workspace_id": ctx.workspace_id, "today": ctx.today, "cap": EVIDENCE_CAP}
        as_of = datetime.combine(ctx.today, time.max, tzinfo=timezone.utc)
        with ctx.conn() as conn:
            counts = {r["entity"]: r for r in conn.execute(_COMPLETENESS, params).fetchall()}
            open_deals = conn.execute(_OPEN_DEALS, params).fetchone()
            dup_accounts = conn.execute(_DUPLICATE_ACCOUNTS, params).fetchall()
            dup_contacts = conn.execute(_DUPLICATE_CONTACTS, params).fetchall()
            linkage = {r["entity"]: r for r in conn.execute(_LINKAGE, params).fetchall()}
            gaps = conn.execute(_GAPS, params).fetchall()
            cwd = conversations_without_deals(conn, ctx.workspace_id, limit=5, as_of=as_of)
            ran = conn.execute("SELECT pipeline_ran_at FROM workspaces WHERE id = %(workspace_id)s",
                               params).fetchone()
        completeness, scores = {}, []
        for entity, fields in FIELDS.items():
            row = counts[entity]
            per_field = {f: {"filled": row[f], "total": row["total"], "pct": pct(row[f], row["total"])}
                         for f in fields}
            # Means of the exact ratios, rounded once at the end (not means of rounded percentages).
            exact = _mean([Decimal(row[f]) * 100 / row["total"] for f in fields]) if row["total"] else None
            if exact is not None:
                scores.append(exact)
            completeness[entity] = {"rows": row["total"], "score": _one_decimal(exact), "fields": per_field}
        link = {e: {"total": r["total"], "deal": r["deal"], "account": r["account"],
                    "deal_pct": pct(r["deal"], r["total"]), "account_pct": pct(r["account"], r["total"])}
                for e, r in linkage.items()}
        return {
            "today": ctx.today,
            "completeness": completeness,
            "overall_pct": _one_decimal(_mean(scores)),
            "empty_entities": [e for e, c in completeness.items() if not c["rows"]],
            "open_deals": open_deals["open_deals"],
            "overdue": {"deals": open_deals["overdue"], "amount": open_deals["overdue_amount"],
                        "ids": list(open_deals["overdue_ids"]), "names": list(open_deals["overdue_names"])},
            "zero_amount": {"deals": open_deals["zero_amount"], "ids": list(open_deals["zero_amount_ids"]),
                            "names": list(open_deals["zero_amount_names"])},
            "duplicate_accounts": _duplicates(dup_accounts),
            "duplicate_contacts": _duplicates(dup_contacts),
            "linkage": link,
            "linkage_flag": link["activities"]["deal_pct"] is not None and link["activities"]["deal_pct"] < LINKAGE_FLAG,
            "gaps": {"deals": gaps[0]["total"] if gaps else 0,
                     "top": [{k: g[k] for k in ("id", "name", "amount", "stage", "owner", "missing")} for g in gaps]},
            "cwd": {"total": cwd["total"], **cwd["summary"], "pipeline_ran": bool(ran and ran["pipeline_ran_at"]),
                    "top": [_cwd_item(i) for i in cwd["items"]]},
        }

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        comp, link, da, dc = c["completeness"], c["linkage"], c["duplicate_accounts"], c["duplicate_contacts"]
        headline = "Data quality: " + ", ".join([
            f"{_p(c['overall_pct'])} of critical fields filled",
            f"{da['groups']} duplicate account groups, {dc['groups']} duplicate contact emails",
            f"{_p(link['activities']['deal_pct'])} of activities linked to a deal",
        ])
        metrics = [  # the headline figures first: a digest shows the first four
            Metric("overall_completeness", "Critical fields filled (overall)", c["overall_pct"], "%"),
            Metric("duplicate_account_groups", "Duplicate account groups", da["groups"]),
            Metric("activities_deal_linked", "Activities linked to a deal", link["activities"]["deal_pct"], "%",
                   status="flag" if c["linkage_flag"] else None),
            Metric("overdue_deals", "Open deals past close date", c["overdue"]["deals"], "deals"),
        ]
        for entity, e in comp.items():
            metrics.append(Metric(f"{entity}_completeness", f"{entity.capitalize()}: critical fields filled",
                                  e["score"], "%"))
        metrics += [
            Metric("overdue_amount", "Past close date ($)", c["overdue"]["amount"], "$"),
            Metric("zero_amount_deals", "Open deals with a $0 amount", c["zero_amount"]["deals"], "deals"),
            Metric("duplicate_accounts", "Accounts in duplicate groups", da["records"]),
            Metric("duplicate_contact_groups", "Duplicate contact emails", dc["groups"]),
            Metric("duplicate_contacts", "Contacts sharing an email", dc["records"]),
            Metric("activities_account_linked", "Activities linked to an account", link["activities"]["account_pct"], "%"),
            Metric("conversations_deal_linked", "Conversations linked to a deal", link["conversations"]["deal_pct"], "%"),
            Metric("conversations_account_linked", "Conversations linked to an account",
                   link["conversations"]["account_pct"], "%"),
            Metric("cwd_conversations", "Conversations without deals", c["cwd"]["total"]),
            Metric("cwd_high", "Conversations without deals: high", c["cwd"]["high"]),
        ]
        tables = [
            Table("Completeness of critical fields", ["Entity", "Field", "Filled", "Rows", "%"], [
                [entity, field.replace("_", " "), v["filled"], v["total"], _p(v["pct"])]
                for entity, e in comp.items() for field, v in e["fields"].items()]),
            Table("Linkage", ["Records", "Total", "To a deal", "To an account"], [
                [entity, v["total"], _p(v["deal_pct"]), _p(v["account_pct"])] for entity, v in link.items()],
                note="conversations: internal meetings left out"),
        ]
        dups = [["account", g["kind"], g["key"], g["records"], ", ".join(g["names"])] for g in da["top"]] + \
               [["contact", g["kind"], g["key"], g["records"], ", ".join(g["names"])] for g in dc["top"]]
        if dups:
            tables.append(Table("Duplicates", ["Entity", "Matched by", "Key", "Records", "Names"], dups))
        if c["gaps"]["top"]:
            tables.append(Table("Open deals missing critical fields", ["Deal", "Amount", "Owner", "Missing"], [
                [g["name"], money(g["amount"]), g["owner"] or "—", ", ".join(m.replace("_", " ") for m in g["missing"])]
                for g in c["gaps"]["top"]],
                note=f"{c['gaps']['deals']} open deals in all" if c["gaps"]["deals"] > len(c["gaps"]["top"]) else None))
        if c["cwd"]["top"]:
            tables.append(Table("Conversations without deals", ["Call", "Account", "Severity", "Likely cause", "Rep"], [
                [i["title"] or "—", i["account"] or "—", i["severity"], i["cause"].replace("_", " "), i["rep"] or "—"]
                for i in c["cwd"]["top"]]))
        evidence = []
        if c["overdue"]["ids"]:
            evidence.append(Evidence(f"{c['overdue']['deals']} open deals past their close date", "deals",
                                     c["overdue"]["ids"], c["overdue"]["names"]))
        if c["zero_amount"]["ids"]:
            evidence.append(Evidence(f"{c['zero_amount']['deals']} open deals with a $0 amount", "deals",
                                     c["zero_amount"]["ids"], c["zero_amount"]["names"]))
        for g in da["top"]:
            evidence.append(Evidence(f"duplicate accounts ({g['kind']}: {g['key']})", "accounts", g["ids"], g["names"]))
        for g in dc["top"]:
            evidence.append(Evidence(f"contacts sharing {g['key']}", "contacts", g["ids"], g["names"]))
        if c["gaps"]["top"]:
            evidence.append(Evidence("open deals missing critical fields", "deals", [g["id"] for g in c["gaps"]["top"]],
                                     [g["name"] or "" for g in c["gaps"]["top"]]))
        if c["cwd"]["top"]:
            evidence.append(Evidence("conversations without deals", "conversations", [i["id"] for i in c["cwd"]["top"]],
                                     [i["title"] or "" for i in c["cwd"]["top"]]))
        text = ctx.synthesize(task="data quality audit",
                          instructions="Write a short CRM data-quality report for a RevOps lead: which critical "
                                       "fields are least complete, duplicates to merge, how well activities and "
                                       "calls are linked to deals and accounts, conversations without deals, and "
                                       "the three fixes that matter most. Use only the figures given.",
                          data={"quality": _prompt_data(c)}, template=lambda: _template(c))
        notes = []
        if c["empty_entities"]:
            notes.append("No " + ", ".join(c["empty_entities"]) + " at all: left out of the overall completeness.")
        if c["linkage_flag"]:
            notes.append(f"Fewer than {LINKAGE_FLAG:.0f}% of activities are linked to a deal.")
        if not c["cwd"]["pipeline_ran"]:
            notes.append("The post-sync pipeline has not run for this workspace: conversations without deals are "
                         "not flagged yet.")
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, tables, [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _duplicates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    records = sum(r["records"] for r in rows)
    # A record can sit in a name group and a different domain group; count it once.
    distinct = len({i for r in rows for i in r["ids"]})
    return {"groups": len(rows), "records": distinct, "listed_records": records,
            "top": [{"kind": r["kind"], "key": r["key"], "records": r["records"], "ids": list(r["ids"]),
                     "names": list(r["names"])} for r in rows[:GROUP_CAP]]}


def _cwd_item(i: dict[str, Any]) -> dict[str, Any]:
    return {"id": i["conversation"]["id"], "title": i["conversation"]["title"],
            "started_at": i["conversation"]["started_at"], "account": i["account"]["name"],
            "account_id": i["account"]["id"], "severity": i["severity"], "cause": i["cause"],
            "rep": i["rep"]["name"]}


def _prompt_data(c: dict[str, Any]) -> dict[str, Any]:
    slim = lambda d: {"groups": d["groups"], "records": d["records"],  # noqa: E731
                      "top": [{k: g[k] for k in ("kind", "key", "records", "names")} for g in d["top"][:10]]}
    return {**{k: v for k, v in c.items() if k not in ("duplicate_accounts", "duplicate_contacts", "overdue",
                                                       "zero_amount")},
            "overdue": {"deals": c["overdue"]["deals"], "amount": c["overdue"]["amount"]},
            "zero_amount": {"deals": c["zero_amount"]["deals"]},
            "duplicate_accounts": slim(c["duplicate_accounts"]), "duplicate_contacts": slim(c["duplicate_contacts"])}


def _template(c: dict[str, Any]) -> str:
    comp, link = c["completeness"], c["linkage"]
    lines = []
    if c["overall_pct"] is None:
        return "There are no deals, contacts or accounts to audit yet."
    weakest = sorted(((v["pct"], f"{entity} {field.replace('_', ' ')}") for entity, e in comp.items()
                      for field, v in e["fields"].items() if v["pct"] is not None), key=lambda x: x[0])
    lines.append(f"{_p(c['overall_pct'])} of critical fields are filled (" + ", ".join(
        f"{entity} {_p(e['score'])}" for entity, e in comp.items() if e["score"] is not None) + ").")
    gaps = [f"{name} {_p(p)}" for p, name in weakest[:3] if p < 100]
    if gaps:
        lines.append("Least complete: " + ", ".join(gaps) + ".")
    if c["overdue"]["deals"]:
        lines.append(f"{c['overdue']['deals']} open deals ({money(c['overdue']['amount'])}) are past their close date.")
    if c["zero_amount"]["deals"]:
        lines.append(f"{c['zero_amount']['deals']} open deals have a $0 amount.")
    da, dc = c["duplicate_accounts"], c["duplicate_contacts"]
    if da["groups"] or dc["groups"]:
        lines.append(f"Duplicates: {da['groups']} account groups ({da['records']} accounts) and {dc['groups']} "
                     f"shared contact emails ({dc['records']} contacts).")
    a, v = link["activities"], link["conversations"]
    if a["total"]:
        lines.append(f"{_p(a['deal_pct'])} of {a['total']} activities are linked to a deal and {_p(a['account_pct'])} "
                     "to an account" + (" — too few to trust deal activity." if c["linkage_flag"] else "."))
    if v["total"]:
        lines.append(f"{_p(v['deal_pct'])} of {v['total']} external conversations are linked to a deal, "
                     f"{_p(v['account_pct'])} to an account.")
    if c["cwd"]["total"]:
        lines.append(f"{c['cwd']['total']} conversations at {c['cwd']['accounts']} accounts have no deal "
                     f"({c['cwd']['high']} high severity).")
    return " ".join(lines)


def _p(v) -> str:
    return "—" if v is None else f"{float(v):.0f}%" if float(v).is_integer() else f"{float(v):.1f}%"


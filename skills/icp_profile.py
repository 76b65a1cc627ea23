"""icp-profile (alias `icp`): who we win with — firmographics and personas of won vs lost deals, stored as a new
`icp_profiles` version that lead-scoring reads.

COMPUTE (one SQL statement over the closed deals; deleted rows never count):
- closed = deals closed won or lost (any date). Fewer than 20 → the run stops with a message saying how many
  there are (the original aborted under 30 but offered a descriptive mode from 20; one threshold, 20, here).
  method = point_based from 100 closed deals, else descriptive; both store the same kinds of weights, the
  method says how much data stands behind them. (The original's regression mode needs enrichment we don't
  store; it is not offered.)
- firmographics, from each deal's account: industry, employee band (1-50, 51-200, 201-1000, 1001-5000,
  5001+), country, revenue band (<1M, 1M-10M, 10M-100M, 100M-1B, 1B+); a missing account value falls back to
  the account's latest `firmographic` account_signal; `signal` = the signal types the account has. Values
  compare case-insensitively.
- personas, from each closed deal's contacts (deal_contacts → contacts): key `seniority:department`, from the
  enrichment columns, else the contact's columns, else its title (keyword rules, `seniority_sql` /
  `department_sql`); unknown:unknown is left out. Seniority, department and persona × title lifts too.
- per value: deals, won, lost, win rate = won / deals, won share = won / won deals where the dimension is known
  (lost alike), lift = won share / lost share (null when no lost deal has it: "won only").
- sweet spots = firmographic values with win rate > 1.2 × the baseline win rate and ≥ 5 deals.
- weights (0-10) for values and personas with ≥ 3 deals: min(10, 3 × lift), a won-only value getting 10.
  Personas are keyed `seniority:department` in `personas`, in `weights.personas` and in lead-scoring's lookup
  (the original keyed them by seniority_department but looked them up by buying role — BUG).
The new row gets version = last + 1 and status active; earlier active versions become superseded, in the
same transaction. SYNTHESIZE: Claude writes the summary when a key is set; else a template.
"""
from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from core.errors import SkillError
from skills.format import money
from skills.registry import Skill, register
from skills.result import Evidence, Metric, Section, SkillResult, Table, _plain

MIN_CLOSED, POINT_BASED = 20, 100
SWEET_SPOT_RATIO, SWEET_SPOT_MIN_DEALS = 1.2, 5
MIN_WEIGHT_DEALS, MAX_WEIGHT, LIFT_FACTOR = 3, 10.0, 3.0
FIRMOGRAPHIC = ("industry", "employee_band", "country", "revenue_band", "signal")
PEOPLE = ("persona", "seniority", "department", "persona_title")
EVIDENCE_CAP = 50

SENIORITY = (
    ("vp", r"\m(vp|svp|evp|avp|vice[ _-]?president)\M"),
    ("c_level", r"\m(c[ _-]?level|c[ _-]?suite|chief|ceo|cfo|cto|coo|cio|cro|cmo|founder|co[ _-]?founder|"
                r"president|owner)\M"),
    ("director", r"\m(director|head)\M"),
    ("manager", r"\m(manager|mgr|lead)\M"),
    ("individual_contributor", r"\m(individual[ _-]?contributor|ic|analyst|engineer|specialist|associate|"
                               r"coordinator|representative|rep|executive|consultant|administrator|developer)\M"),
)
DEPARTMENT = (
    ("operations", r"\m(operations|ops|revops)\M"),
    ("sales", r"\m(sales|revenue|account executive|business development|bdr|sdr|commercial)\M"),
    ("marketing", r"\m(marketing|growth|demand gen|brand|content)\M"),
    ("finance", r"\m(finance|financial|cfo|controller|accounting|fp&a)"),
    ("procurement", r"\m(procurement|purchasing|sourcing)\M"),
    ("it", r"\m(it|security|engineering|engineer|technology|cto|cio|developer|devops|architect|infrastructure)\M"),
    ("customer_success", r"\m(customer success|support|customer experience)\M"),
    ("hr", r"\m(hr|human resources|people|talent|recruiting)\M"),
    ("legal", r"\m(legal|compliance|counsel)\M"),
    ("product", r"\mproduct\M"),
    ("data", r"\m(data|analytics)\M"),
    ("executive", r"\m(ceo|chief executive|president|founder|general manager|managing director|owner)\M"),
)


def _classify(expr: str, rules) -> str:
    return "CASE " + " ".join(f"WHEN {expr} ~* '{rx}' THEN '{label}'" for label, rx in rules) + " END"


def _slug(expr: str) -> str:
    return f"NULLIF(btrim(regexp_replace(lower({expr}), '[^a-z0-9]+', '_', 'g'), '_'), '')"


def seniority_sql(level: str, title: str) -> str:
    """A seniority from a CRM/enrichment value (keyword rules, else the value itself), else from the title."""
    return f"COALESCE({_classify(level, SENIORITY)}, {_slug(level)}, {_classify(title, SENIORITY)}, 'unknown')"


def department_sql(department: str, title: str) -> str:
    return (f"COALESCE({_classify(department, DEPARTMENT)}, {_slug(department)}, {_classify(title, DEPARTMENT)},"
            " 'unknown')")


def persona_sql(level: str, department: str, title: str) -> str:
    """The one persona key, `seniority:department`, shared by icp-profile and lead-scoring."""
    return f"({seniority_sql(level, title)}) || ':' || ({department_sql(department, title)})"


def employee_band_sql(expr: str) -> str:
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN {expr} <= 50 THEN '1-50' WHEN {expr} <= 200 THEN '51-200'"
            f" WHEN {expr} <= 1000 THEN '201-1000' WHEN {expr} <= 5000 THEN '1001-5000' ELSE '5001+' END")


def revenue_band_sql(expr: str) -> str:
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN {expr} < 1e6 THEN '<1M' WHEN {expr} < 1e7 THEN '1M-10M'"
            f" WHEN {expr} < 1e8 THEN '10M-100M' WHEN {expr} < 1e9 THEN '100M-1B' ELSE '1B+' END")


# Each live account's firmographics: its own columns, else its latest firmographic signal.
ACCOUNT_FIRMOGRAPHICS = r"""
    SELECT a.id AS account_id,
           btrim(COALESCE(NULLIF(btrim(a.industry), ''), s.value->>'industry')) AS industry,
           COALESCE(a.employee_count, CASE WHEN s.value->>'employee_count' ~ '^\d{1,9}$'
                                           THEN (s.value->>'employee_count')::int END) AS employees,
           btrim(COALESCE(NULLIF(btrim(a.country), ''), s.value->>'country')) AS country,
           COALESCE(a.annual_revenue, CASE WHEN s.value->>'annual_revenue' ~ '^\d{1,15}(\.\d+)?$'
                                           THEN (s.value->>'annual_revenue')::numeric END) AS revenue
      FROM accounts a
      LEFT JOIN LATERAL (
           SELECT value FROM account_signals s
            WHERE s.workspace_id = a.workspace_id AND s.account_id = a.id AND s.signal_type = 'firmographic'
            ORDER BY s.observed_at DESC, s.confidence DESC NULLS LAST LIMIT 1) s ON true
     WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL"""

_PROFILE = f"""
WITH closed AS (
    SELECT d.id, d.amount, d.stage_normalized = 'closed_won' AS won, d.account_id
      FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
       AND d.stage_normalized IN ('closed_won', 'closed_lost')
), firmo AS ({ACCOUNT_FIRMOGRAPHICS}
), people AS (
    SELECT DISTINCT c.id AS deal_id, btrim(ct.title) AS title,
           {seniority_sql("COALESCE(dc.seniority, ct.seniority)", "ct.title")} AS seniority,
           {department_sql("COALESCE(dc.department, ct.department)", "ct.title")} AS department
      FROM closed c
      JOIN deal_contacts dc ON dc.workspace_id = %(workspace_id)s AND dc.deal_id = c.id
      JOIN contacts ct ON ct.workspace_id = dc.workspace_id AND ct.id = dc.contact_id AND ct.deleted_at IS NULL
), dims AS (
    SELECT id AS deal_id, won, amount, 'all' AS dimension, 'all' AS label FROM closed
    UNION ALL
    SELECT c.id, c.won, c.amount, v.dimension, v.label
      FROM closed c JOIN firmo f ON f.account_id = c.account_id
     CROSS JOIN LATERAL (VALUES ('industry', NULLIF(f.industry, '')),
                                ('employee_band', {employee_band_sql("f.employees")}),
                                ('country', NULLIF(f.country, '')),
                                ('revenue_band', {revenue_band_sql("f.revenue")})) AS v(dimension, label)
     WHERE v.label IS NOT NULL
    UNION ALL
    SELECT DISTINCT c.id, c.won, c.amount, 'signal', s.signal_type
      FROM closed c JOIN account_signals s ON s.workspace_id = %(workspace_id)s AND s.account_id = c.account_id
    UNION ALL
    SELECT DISTINCT c.id, c.won, c.amount, v.dimension, v.label
      FROM closed c JOIN people p ON p.deal_id = c.id
     CROSS JOIN LATERAL (VALUES ('persona', p.seniority || ':' || p.department), ('seniority', p.seniority),
                                ('department', p.department),
                                ('persona_title', p.seniority || ':' || p.department || ' | ' || p.title)
                        ) AS v(dimension, label)
     WHERE p.seniority || ':' || p.department <> 'unknown:unknown' AND v.label IS NOT NULL
       AND NOT (v.dimension IN ('seniority', 'department') AND v.label = 'unknown')
)
SELECT dimension, lower(label) AS value, GROUPING(lower(label)) = 1 AS is_total, min(label) AS label,
       count(DISTINCT deal_id) FILTER (WHERE won) AS won, count(DISTINCT deal_id) FILTER (WHERE NOT won) AS lost,
       avg(amount) FILTER (WHERE won) AS avg_won_amount,
       (array_agg(DISTINCT deal_id::text) FILTER (WHERE won))[1:{EVIDENCE_CAP}] AS won_ids
  FROM dims
 GROUP BY GROUPING SETS ((dimension, lower(label)), (dimension))
"""

# Two runs at once must not pick the same version number.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('icp_profiles:' || %(workspace_id)s::text))"
_STORE = """
WITH old AS (
    UPDATE icp_profiles SET status = 'superseded', updated_at = now()
     WHERE workspace_id = %(workspace_id)s AND status = 'active'
    RETURNING id
)
INSERT INTO icp_profiles (workspace_id, version, status, method, firmographics, personas, weights, metrics,
                          sample_size, skill_run_id)
SELECT %(workspace_id)s, COALESCE(max(version), 0) + 1, 'active', %(method)s, %(firmographics)s, %(personas)s,
       %(weights)s, %(metrics)s, %(sample_size)s, %(run_id)s
  FROM icp_profiles WHERE workspace_id = %(workspace_id)s
RETURNING id, version, (SELECT count(*) FROM old) AS superseded
"""


def weight(lift: float | None) -> float:
    return MAX_WEIGHT if lift is None else min(MAX_WEIGHT, LIFT_FACTOR * lift)


def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Lifts, win rates, sweet spots, personas and weights from the per-(dimension, value) counts."""
    totals = {r["dimension"]: r for r in rows if r["is_total"]}
    base = totals.get("all") or {"won": 0, "lost": 0}
    closed = base["won"] + base["lost"]
    if closed < MIN_CLOSED:
        raise SkillError(f"icp-profile needs at least {MIN_CLOSED} closed deals (won + lost) to build a profile; "
                         f"this workspace has {closed} ({base['won']} won, {base['lost']} lost). Import or sync more "
                         "closed deals, then run it again.")
    baseline = base["won"] / closed
    values: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["is_total"] or r["dimension"] == "all":
            continue
        t = totals[r["dimension"]]
        deals = r["won"] + r["lost"]
        won_share = r["won"] / t["won"] if t["won"] else 0.0
        lost_share = r["lost"] / t["lost"] if t["lost"] else 0.0
        lift = won_share / lost_share if lost_share else None
        values.setdefault(r["dimension"], []).append({
            "value": r["value"], "label": r["label"], "deals": deals, "won": r["won"], "lost": r["lost"],
            "win_rate": r["won"] / deals, "won_share": won_share, "lost_share": lost_share, "lift": lift,
            "weight": weight(lift) if deals >= MIN_WEIGHT_DEALS else None,
            "avg_won_amount": r["avg_won_amount"], "won_ids": r["won_ids"] or []})
    for vs in values.values():
        vs.sort(key=lambda v: (v["lift"] is not None, -(v["lift"] or 0), -v["deals"], v["value"]))
    sweet = [{"dimension": d, **v, "ratio": v["win_rate"] / baseline if baseline else None}
             for d in FIRMOGRAPHIC for v in values.get(d, [])
             if v["deals"] >= SWEET_SPOT_MIN_DEALS and v["win_rate"] > SWEET_SPOT_RATIO * baseline]
    sweet.sort(key=lambda s: (-s["win_rate"], -s["deals"]))
    titles: dict[str, list[tuple[int, str]]] = {}
    for v in values.get("persona_title", []):
        key, title = v["label"].split(" | ", 1)
        if v["won"]:
            titles.setdefault(key, []).append((v["won"], title))
    personas = [{"key": v["value"], "seniority": v["value"].split(":")[0], "department": v["value"].split(":")[1],
                 **{k: v[k] for k in ("deals", "won", "lost", "win_rate", "won_share", "lost_share", "lift", "weight",
                                      "won_ids")},
                 "top_titles": [t for _, t in sorted(titles.get(v["value"], []), key=lambda x: (-x[0], x[1]))[:3]]}
                for v in values.get("persona", []) if v["deals"] >= MIN_WEIGHT_DEALS]
    return {
        "closed": closed, "won": base["won"], "lost": base["lost"], "baseline_win_rate": baseline,
        "method": "point_based" if closed >= POINT_BASED else "descriptive",
        "firmographics": {d: values.get(d, []) for d in FIRMOGRAPHIC},
        "people": {d: values.get(d, []) for d in ("seniority", "department")},
        "sweet_spots": sweet, "personas": personas,
        "weights": {"firmographics": {d: {v["value"]: v["weight"] for v in values.get(d, []) if v["weight"] is not None}
                                      for d in FIRMOGRAPHIC if d != "signal"},
                    "personas": {p["key"]: p["weight"] for p in personas}, "max": MAX_WEIGHT,
                    "rule": f"min({MAX_WEIGHT:g}, {LIFT_FACTOR:g} × lift), values with ≥ {MIN_WEIGHT_DEALS} deals"},
    }


@register
class IcpProfile(Skill):
    name = "icp-profile"
    description = "Ideal customer profile from won vs lost deals: firmographics, personas, weights (versioned)"
    aliases = ("icp", "icp-discovery")

    def compute(self, ctx) -> dict[str, Any]:
        with ctx.conn() as conn:
            rows = conn.execute(_PROFILE, {"workspace_id": ctx.workspace_id}).fetchall()
            p = build(rows)
            strip = lambda vs: [{k: v for k, v in x.items() if k != "won_ids"} for x in vs]  # noqa: E731
            with conn.transaction():
                conn.execute(_LOCK, {"workspace_id": ctx.workspace_id})
                stored = conn.execute(_STORE, {
                    "workspace_id": ctx.workspace_id, "method": p["method"], "run_id": ctx.run_id,
                    "firmographics": Jsonb(_plain({"baseline_win_rate": p["baseline_win_rate"],
                                                   "dimensions": {d: strip(vs) for d, vs in p["firmographics"].items()},
                                                   "people": {d: strip(vs) for d, vs in p["people"].items()},
                                                   "sweet_spots": strip(p["sweet_spots"])})),
                    "personas": Jsonb(_plain(strip(p["personas"]))), "weights": Jsonb(_plain(p["weights"])),
                    "metrics": Jsonb({"closed": p["closed"], "won": p["won"], "lost": p["lost"],
                                      "baseline_win_rate": p["baseline_win_rate"]}),
                    "sample_size": p["closed"]}).fetchone()
        return {**p, "profile_id": str(stored["id"]), "version": stored["version"],
                "superseded": stored["superseded"]}

    def synthesize(self, ctx, c: dict[str, Any], classified: dict[str, Any]) -> SkillResult:
        spots = c["sweet_spots"]
        headline = (f"ICP profile v{c['version']} ({c['method'].replace('_', ' ')}, {c['closed']} closed deals): "
                    + (", ".join(_spot(s) for s in spots[:3]) if spots else "no sweet spot above 1.2× the baseline"))
        metrics = [Metric("version", "Profile version", c["version"]),
                   Metric("closed_deals", "Closed deals analysed", c["closed"], "deals"),
                   Metric("baseline_win_rate", "Baseline win rate", c["baseline_win_rate"] * 100, "%"),
                   Metric("sweet_spots", "Sweet spots", len(spots)),
                   Metric("personas", "Personas", len(c["personas"]))]
        tables = [
            Table("Firmographics", ["Dimension", "Value", "Deals", "Win rate", "Lift", "Weight"], [
                [d.replace("_", " "), v["label"], v["deals"], f"{v['win_rate'] * 100:.0f}%", _lift(v["lift"]),
                 "—" if v["weight"] is None else f"{v['weight']:.1f}"]
                for d, vs in c["firmographics"].items() for v in vs[:10]]),
            Table("Personas", ["Persona", "Deals", "Won share", "Lost share", "Lift", "Weight", "Top titles"], [
                [p["key"], p["deals"], f"{p['won_share'] * 100:.0f}%", f"{p['lost_share'] * 100:.0f}%",
                 _lift(p["lift"]), f"{p['weight']:.1f}", ", ".join(p["top_titles"])] for p in c["personas"][:15]]),
        ]
        evidence = [Evidence(f"sweet spot {_spot(s)}: won deals", "deals", s["won_ids"]) for s in spots[:10]]
        evidence += [Evidence(f"persona {p['key']} (lift {_lift(p['lift'])}): won deals", "deals", p["won_ids"])
                     for p in c["personas"][:5] if p["won_ids"]]
        text = ctx.synthesize(task="icp profile",
                          instructions="Describe the ideal customer profile for a sales leader: which firmographic "
                                       "segments and buyer personas win more than average, by how much, and what "
                                       "to prioritise. Use only the figures given.",
                          data={"profile": _prompt(c)}, template=lambda: _template(c))
        notes = [f"Superseded {c['superseded']} earlier profile version."] if c["superseded"] else []
        return SkillResult(self.name, headline, [Section("Summary", text.text)], metrics, tables, [], evidence,
                           ai_written=text.ai_written, notes=notes, data=c)


def _lift(lift: float | None) -> str:
    return "won only" if lift is None else f"{lift:.2f}x"


def _spot(s: dict[str, Any]) -> str:
    return f"{s['dimension'].replace('_', ' ')} {s['label']} ({s['win_rate'] * 100:.0f}% win rate)"


def _prompt(c: dict[str, Any]) -> dict[str, Any]:
    keep = ("label", "deals", "win_rate", "lift")
    return {"closed": c["closed"], "baseline_win_rate": c["baseline_win_rate"], "method": c["method"],
            "sweet_spots": [{"dimension": s["dimension"], **{k: s[k] for k in keep}} for s in c["sweet_spots"]],
            "personas": [{k: p[k] for k in ("key", "deals", "lift", "top_titles")} for p in c["personas"][:10]]}


def _template(c: dict[str, Any]) -> str:
    lines = [f"Built from {c['closed']} closed deals ({c['won']} won, {c['lost']} lost; baseline win rate "
             f"{c['baseline_win_rate'] * 100:.0f}%), method {c['method'].replace('_', ' ')}."]
    if c["sweet_spots"]:
        lines.append("Sweet spots: " + "; ".join(
            f"{_spot(s)}, {s['ratio']:.1f}× baseline over {s['deals']} deals"
            + (f", average win {money(s['avg_won_amount'])}" if s["avg_won_amount"] else "")
            for s in c["sweet_spots"][:3]) + ".")
    else:
        lines.append("No firmographic segment wins above 1.2× the baseline with 5 or more deals yet.")
    if c["personas"]:
        top = c["personas"][0]
        lines.append(f"Strongest persona: {top['key']} (lift {_lift(top['lift'])}, {top['deals']} deals"
                     + (f"; titles such as {', '.join(top['top_titles'])}" if top["top_titles"] else "") + ").")
    return " ".join(lines)

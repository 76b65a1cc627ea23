"""Association inference: link imported records to each other by what people write in spreadsheets.

Exports rarely carry our ids, so after every import (and on `pandora relink`) this step links ALL still
unlinked rows of the workspace — not only the new ones, so importing accounts after contacts links the
contacts too. Every statement is set-based and idempotent; ambiguous matches are skipped, never guessed.

Account matching tiers (the original's account-linker, the sound one of its three variants):
  source ids (done by resolve_references) 1.0 → email/website domain 0.95 → exact name 0.90 →
  unique normalized name 0.80 (`pandora_normalize_company`: case, punctuation, legal suffixes).
Contact → deal: the `associated_deals` names of a contact (explicit_deal_name, 0.9), else the only deal of the
contact's account (inferred_single_deal, 0.6; withdrawn again when the account gains a second deal). Two steps:
`associations` (account links, activities' and contacts' deal names), then `single_deal_inference`, which
only writes deal_contacts and so runs beside the linker.
"""
from __future__ import annotations

from core.pipeline import changed_since, deal_links_changed, deleted_ids, register_step
from core.pipeline.domains import FREE_MAIL


# Candidate accounts for each unlinked row of {table}: by domain (tier 1), exact name (2), normalized name (3).
# A row links only when its best tier has exactly one candidate account.
_LINK_ACCOUNT = """
WITH cand AS (
    SELECT r.id AS row_id, a.id AS account_id, 1 AS tier
      FROM {table} r
      JOIN accounts a ON a.workspace_id = r.workspace_id AND lower(a.domain) = {domain_expr}
     WHERE r.workspace_id = %(workspace_id)s AND r.account_id IS NULL AND r.deleted_at IS NULL {rows_scope}
       AND a.deleted_at IS NULL AND {domain_expr} <> ALL(%(free_mail)s)
    UNION ALL
    -- Names only for rows no domain names an account (a domain match is the best tier, one account or several;
    -- normalizing every company name costs ~20 µs a row)
    SELECT r.id, a.id, CASE WHEN lower(a.name) = lower({name_col}) THEN 2 ELSE 3 END
      FROM {table} r
      JOIN accounts a ON a.workspace_id = r.workspace_id
       AND pandora_normalize_company(a.name) = pandora_normalize_company({name_col})
     WHERE r.workspace_id = %(workspace_id)s AND r.account_id IS NULL AND r.deleted_at IS NULL {rows_scope}
       AND a.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM accounts d WHERE d.workspace_id = r.workspace_id AND d.deleted_at IS NULL
                          AND lower(d.domain) = {domain_expr} AND {domain_expr} <> ALL(%(free_mail)s))
), best AS (
    SELECT row_id, min(tier) AS tier FROM cand GROUP BY row_id
), pick AS (
    SELECT c.row_id, min(c.account_id::text)::uuid AS account_id, count(DISTINCT c.account_id) AS n
      FROM cand c JOIN best b ON b.row_id = c.row_id AND b.tier = c.tier
     GROUP BY c.row_id
)
UPDATE {table} r SET account_id = p.account_id
  FROM pick p
 WHERE r.workspace_id = %(workspace_id)s AND r.id = p.row_id AND p.n = 1
"""

_LINK_TARGETS = {
    "deals": ("NULL::text", "r.account_name"),
    "contacts": ("lower(split_part(r.email, '@', 2))", "r.company_name"),
}

# Activities imported from files name their deal and account; the linker (post-sync issue) handles emails.
_ACTIVITY_DEAL = """
WITH cand AS (
    SELECT r.id AS row_id, min(d.id::text)::uuid AS deal_id, count(*) AS n
      FROM activities r
      JOIN deals d ON d.workspace_id = r.workspace_id AND lower(d.name) = lower(r.custom_fields->>'deal_name')
     WHERE r.workspace_id = %(workspace_id)s AND r.deal_id IS NULL AND r.custom_fields ? 'deal_name'
     GROUP BY r.id
)
UPDATE activities r SET deal_id = c.deal_id, link_method = COALESCE(r.link_method, 'deal_name'), linked_at = now()
  FROM cand c WHERE r.workspace_id = %(workspace_id)s AND r.id = c.row_id AND c.n = 1
"""

_EXPLICIT_DEALS = """
WITH named AS (
    SELECT c.id AS contact_id, c.account_id, btrim(n.name) AS deal_name
      FROM contacts c
     CROSS JOIN LATERAL jsonb_array_elements_text(
           CASE jsonb_typeof(c.custom_fields->'associated_deals') WHEN 'array' THEN c.custom_fields->'associated_deals'
                ELSE '[]'::jsonb END) AS n(name)
     WHERE c.workspace_id = %(workspace_id)s AND c.custom_fields ? 'associated_deals' /*contacts*/
       AND btrim(n.name) <> ''
), cand AS (
    -- Several deals share the name: prefer the one at the contact's own account.
    SELECT n.contact_id, d.id AS deal_id,
           rank() OVER (PARTITION BY n.contact_id, n.deal_name ORDER BY (d.account_id = n.account_id) DESC NULLS LAST) AS r,
           count(*) OVER (PARTITION BY n.contact_id, n.deal_name, (d.account_id = n.account_id)) AS same_rank
      FROM named n
      JOIN deals d ON d.workspace_id = %(workspace_id)s AND lower(d.name) = lower(n.deal_name) AND d.deleted_at IS NULL
)
INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role_source, confidence)
SELECT %(workspace_id)s, deal_id, contact_id, 'csv_import', 'explicit_deal_name', 0.9
  FROM cand WHERE r = 1 AND same_rank = 1
ON CONFLICT (workspace_id, deal_id, contact_id, source) DO NOTHING
"""

_ONLY_DEAL = """
    SELECT account_id, min(id::text)::uuid AS deal_id
      FROM deals WHERE workspace_id = %(workspace_id)s AND account_id IS NOT NULL AND deleted_at IS NULL /*accounts*/
     GROUP BY account_id HAVING count(*) = 1
"""
_OTHER_LINK = """EXISTS (SELECT 1 FROM deal_contacts x WHERE x.workspace_id = %(workspace_id)s AND x.contact_id = {contact}
                          AND x.role_source IS DISTINCT FROM 'inferred_single_deal')"""

# An inferred link is withdrawn when it no longer holds (the account gained a deal, the deal or the contact was
# deleted, the contact moved, or a stronger link exists), then re-inferred: the two statements together are
# idempotent.
_WITHDRAW_SINGLE_DEAL = f"""
WITH only_deal AS MATERIALIZED ({_ONLY_DEAL}),
cand AS MATERIALIZED (/*withdraw*/)
DELETE FROM deal_contacts dc USING cand x
 WHERE dc.workspace_id = %(workspace_id)s AND dc.role_source = 'inferred_single_deal'
   AND dc.deal_id = x.deal_id AND dc.contact_id = x.contact_id
   AND (NOT EXISTS (SELECT 1 FROM contacts c JOIN only_deal o ON o.account_id = c.account_id
                     WHERE c.workspace_id = dc.workspace_id AND c.id = dc.contact_id AND o.deal_id = dc.deal_id)
        OR dc.contact_id IN ({deleted_ids("contacts")})
        OR {_OTHER_LINK.format(contact="dc.contact_id")})
"""
# The inferred links to look at: all of them on a full run; on an incremental one, those to the deals of the
# scoped accounts, of changed contacts and of changed deals, each branch an index lookup (an OR of the three
# would make the planner test every link against a subquery that no longer fits in memory at 1M contacts).
# A link was inferred to a deal of the contact's account, so the links of a scoped account's contacts are
# those to its deals, but for contacts that moved account since: those are changed contacts (`_SCOPE`).
# Through the deals (a few per account) rather than the contacts (twenty per account), and never a pass
# over every link.
_INFERRED = """SELECT deal_id, contact_id FROM deal_contacts
     WHERE workspace_id = %(workspace_id)s AND role_source = 'inferred_single_deal'"""
_INFERRED_SCOPED = f"""{_INFERRED} AND deal_id IN (SELECT id FROM deals WHERE workspace_id = %(workspace_id)s
                                                  AND account_id = ANY(%(accounts)s::uuid[]))
    UNION {_INFERRED} AND contact_id = ANY(%(contacts)s::uuid[])
    UNION {_INFERRED} AND deal_id = ANY(%(deals)s::uuid[])"""
_INFER_SINGLE_DEAL = f"""
WITH only_deal AS ({_ONLY_DEAL})
INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role_source, confidence)
SELECT %(workspace_id)s, o.deal_id, c.id, 'inference', 'inferred_single_deal', 0.6
  FROM contacts c JOIN only_deal o ON o.account_id = c.account_id
 WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL /*infer*/
   -- another link, or this very one already (the same index probe: a full run over settled data then hands
   -- the insert nothing, instead of 270k rows to test for conflicts one by one)
   AND NOT EXISTS (SELECT 1 FROM deal_contacts x WHERE x.workspace_id = %(workspace_id)s AND x.contact_id = c.id
                      AND (x.role_source IS DISTINCT FROM 'inferred_single_deal'
                           OR (x.deal_id = o.deal_id AND x.source = 'inference')))
ON CONFLICT (workspace_id, deal_id, contact_id, source) DO NOTHING
"""


# What an incremental run must look at: contacts a sync wrote since the last run, and deals it created, opened,
# closed, deleted or moved (core.pipeline.deal_links_changed: the deal count per account); `accounts`, whose
# every contact is looked at again: accounts a sync wrote, the accounts of those deals (their deal count may
# have moved) and of contacts inferred onto a changed deal; `deal_accounts`, whose deals are counted: those
# and the accounts of the changed contacts (a changed contact is looked at alone, not its whole account).
_SCOPE = f"""
WITH d AS (SELECT id, account_id, left_account_id FROM deals
            WHERE workspace_id = %(workspace_id)s AND {deal_links_changed()}),
     c AS (SELECT id, account_id FROM contacts WHERE workspace_id = %(workspace_id)s AND {changed_since("contacts")}
           UNION  -- and those whose account the reference step just resolved (no write of theirs moved)
           SELECT id, account_id FROM contacts WHERE workspace_id = %(workspace_id)s
                                                 AND id = ANY(%(noted_contacts)s::uuid[])),
     a AS (SELECT account_id FROM d WHERE account_id IS NOT NULL
           UNION SELECT left_account_id FROM d WHERE left_account_id IS NOT NULL  -- one deal fewer there
           UNION SELECT id FROM accounts WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s
           UNION SELECT ct.account_id FROM deal_contacts dc
                   JOIN contacts ct ON ct.workspace_id = dc.workspace_id AND ct.id = dc.contact_id
                  WHERE dc.workspace_id = %(workspace_id)s AND dc.role_source = 'inferred_single_deal'
                    AND dc.deal_id IN (SELECT id FROM d) AND ct.account_id IS NOT NULL)
SELECT EXISTS (SELECT 1 FROM accounts WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s)
           AS accounts_changed,
       -- any deal written (a new name changes which contacts name it), not only those in d
       EXISTS (SELECT 1 FROM deals WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s) AS deals_changed,
       ARRAY(SELECT id FROM d) AS deals, ARRAY(SELECT id FROM c) AS contacts,
       ARRAY(SELECT account_id FROM a) AS accounts,
       ARRAY(SELECT account_id FROM a UNION SELECT account_id FROM c WHERE account_id IS NOT NULL) AS deal_accounts
"""
_MARKS = {
    "/*contacts*/": "AND " + changed_since("contacts", "c"),
    "/*accounts*/": "AND account_id = ANY(%(deal_accounts)s::uuid[])",
    "/*infer*/": "AND (c.account_id = ANY(%(accounts)s::uuid[]) OR c.id = ANY(%(contacts)s::uuid[]))",
    "/*withdraw*/": _INFERRED_SCOPED,
}


SCOPED_ACCOUNTS_MAX = 2000
SCOPED_CONTACTS_MAX = 50_000


def _scoped(statement: str, scope: dict | None, *skip: str) -> str:
    """Fill the /*…*/ markers: nothing on a full run; the incremental restrictions otherwise."""
    for mark, condition in _MARKS.items():
        unscoped = _INFERRED if mark == "/*withdraw*/" else ""
        statement = statement.replace(mark, unscoped if scope is None or mark in skip else condition)
    return statement


def _run(conn, run, key: str, stmt, params, returning: str) -> int:
    """Execute; in an incremental run also record what changed (run.note) for the steps after this one, as the
    pipeline's own writes do not move updated_at. Withdrawn deal_contacts record their deals and contacts."""
    from psycopg import sql

    if run.since is None:
        return conn.execute(stmt, params).rowcount
    rows = conn.execute(stmt + sql.SQL(f" RETURNING {returning}"), params).fetchall()
    if key == "deal_contacts":
        run.note("deal_contacts.deal_id", [r["deal_id"] for r in rows])
        run.note("deal_contacts.contact_id", [r["contact_id"] for r in rows])
    else:
        run.note(key, [r["id"] for r in rows])
    return len(rows)


def _parameters(conn, run, **extra) -> tuple[dict, dict | None]:
    """A step's statement parameters and, in an incremental run, what `_SCOPE` finds changed (also merged into
    the parameters; None on a full run). Raises work_mem for the step's transaction."""
    params = {"workspace_id": run.workspace_id, "since": run.since,
              "noted_contacts": run.noted("contacts.account_id"), **extra}
    conn.execute("SET LOCAL work_mem = '64MB'")  # per-account and per-contact hash tables stay in memory
    scope = None
    if run.since is not None:
        scope = conn.execute(_SCOPE, params).fetchone()
        params.update(scope)
    return params, scope


@register_step("associations", order=20, cost=4)
def infer_associations(conn, run) -> dict[str, int]:
    """Account links, activities' deal names and contacts' explicit deal names. Full run: every unlinked row of
    the workspace. Incremental run: unlinked rows a sync wrote since (all unlinked rows, few and indexed, when
    accounts changed), contacts naming deals when they or any deal changed."""
    from psycopg import sql

    params, scope = _parameters(conn, run, free_mail=FREE_MAIL)
    changed: dict[str, int] = {}
    scoped_rows = scope is not None and not scope["accounts_changed"]
    for table, (domain_expr, name_col) in _LINK_TARGETS.items():
        rows_scope = "AND " + changed_since(table, "r") if scoped_rows else ""
        stmt = sql.SQL(_LINK_ACCOUNT.replace("{domain_expr}", domain_expr).replace("{name_col}", name_col)
                       .replace("{rows_scope}", rows_scope))
        changed[f"{table}.account_id"] = _run(conn, run, f"{table}.account_id", stmt.format(table=sql.Identifier(table)),
                                              params, "r.id")
    changed["activities.deal_id"] = _run(conn, run, "activities.deal_id", sql.SQL(_ACTIVITY_DEAL), params, "r.id")
    explicit = _scoped(_EXPLICIT_DEALS, scope, *(["/*contacts*/"] if scope and scope["deals_changed"] else []))
    changed["deal_contacts.explicit_deal_name"] = conn.execute(explicit, params).rowcount
    return {k: v for k, v in changed.items() if v}


# Its own step, after the account links above (a contact's account decides its only deal) and the explicit
# links (which outrank an inferred one). It writes deal_contacts alone, which neither linker step, the internal
# filter, the stage step nor CWD reads, so it runs beside the linker (a first sync: 270k inserts, without key
# checks since migration 0025); the computed fields, which read deal_contacts, wait for it. It also waits for the
# stage step, which it does not need: otherwise, ready before the linker's steps, it would take a slot from them.
@register_step("single_deal_inference", order=32, independent_of=("internal_filter", "linker", "linker_activities"),
               cost=4.8)
def infer_single_deals(conn, run) -> dict[str, int]:
    """Contacts of an account with exactly one deal are linked to it (inferred_single_deal); links that no
    longer hold are withdrawn first. Incremental run: the accounts, contacts and deals of `_SCOPE`."""
    from psycopg import sql

    params, scope = _parameters(conn, run)
    if scope is not None:
        if not params["accounts"] and not params["contacts"] and not params["deals"]:
            return {}
        if len(params["accounts"]) > SCOPED_ACCOUNTS_MAX or len(params["contacts"]) > SCOPED_CONTACTS_MAX:
            scope = None  # index lookups by the ten thousand: a hash join over the workspace is faster
    changed = {
        "deal_contacts.withdrawn": _run(conn, run, "deal_contacts", sql.SQL(_scoped(_WITHDRAW_SINGLE_DEAL, scope)),
                                        params, "dc.deal_id, dc.contact_id"),
        "deal_contacts.inferred_single_deal": conn.execute(_scoped(_INFER_SINGLE_DEAL, scope), params).rowcount,
    }
    return {k: v for k, v in changed.items() if v}

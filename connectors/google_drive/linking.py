"""Post-sync step `google_drive_links`: link Drive documents to the account and deal their title or folder names.

Matching is on normalized words: lower case, every run of non-alphanumerics a single space, so "ACME Corp.",
"acme-corp" and "Acme  Corp" read alike, and a name only matches whole words ("Acme" never matches "Acmeville").
- account: its name (also without a legal suffix: "Acme Corp" → "acme") or its domain ("acme.com" → "acme com")
  occurs in the title or in one folder name of the path; the name must be distinctive (≥ 4 letters/digits).
- deal: its name occurs there; the longest matching name wins ("Acme Expansion 2026" over "Acme"), then a deal
  of the matched account. A chosen deal brings its own account, so the two never disagree.
- the most specific match wins (the longest key); two different accounts or deals tied at the top link nothing.
Ownership (`link_details` per field, like the conversation linker): the step sets a field that is empty or that
it set itself ("name_match", "domain_match", "deal_name"), follows renames and moves (a link whose words are
gone is cleared), and never touches a row whose `link_method` is 'manual' or a link another path made (a deal
that contradicts such an account is not linked). It is set-based and idempotent: it writes only rows whose links
change, and never moves `updated_at`. Incremental runs look at documents changed since the last run, documents
linked to accounts/deals changed since, and documents whose words contain the names of accounts/deals changed
since (above `FULL_AFTER` changed names the run looks at every document).
"""
from __future__ import annotations

from core.pipeline import register_step

OURS = ("name_match", "domain_match", "deal_name")
FULL_AFTER = 500
MAX_WORDS = 8

_NORM = "trim(regexp_replace(lower(coalesce({x}, '')), '[^[:alnum:]]+', ' ', 'g'))"
_LEGAL = ("( (inc|incorporated|llc|ltd|limited|corp|corporation|co|company|gmbh|ag|sa|nv|bv|plc|oy|ab|pty|srl|sas"
          "|holdings|group))+$")
_DOMAIN = "regexp_replace(lower(coalesce({x}, '')), '^([a-z]+://)?(www\\.)?|[/?#:].*$', '', 'g')"

_KEYS = f"""
acc AS (
    SELECT a.id, {_NORM.format(x='a.name')} AS name, {_NORM.format(x=_DOMAIN.format(x='a.domain'))} AS domain,
           a.updated_at
      FROM accounts a WHERE a.workspace_id = %(workspace_id)s AND a.deleted_at IS NULL
),
raw_keys AS (
    SELECT id AS account_id, NULL::uuid AS deal_id, name AS key, 'name_match' AS method, updated_at FROM acc
    UNION ALL
    SELECT id, NULL, regexp_replace(name, '{_LEGAL}', ''), 'name_match', updated_at FROM acc
    UNION ALL
    SELECT id, NULL, domain, 'domain_match', updated_at FROM acc
    UNION ALL
    SELECT d.account_id, d.id, {_NORM.format(x='d.name')}, 'deal_name', d.updated_at
      FROM deals d WHERE d.workspace_id = %(workspace_id)s AND d.deleted_at IS NULL
),
keys AS (
    SELECT DISTINCT account_id, deal_id, key, method, updated_at FROM raw_keys
     WHERE length(replace(key, ' ', '')) >= 4 AND cardinality(string_to_array(key, ' ')) <= {MAX_WORDS}
)"""

_TEXT = (f"' ' || {_NORM.format(x='d.title')} || ' ' || {_NORM.format(x='d.folder_path')} || ' '")
_SCOPE = f"""(d.updated_at > %(since)s
    OR d.account_id IN (SELECT id FROM accounts WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s)
    OR d.deal_id IN (SELECT id FROM deals WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s)
    OR EXISTS (SELECT 1 FROM keys k WHERE k.updated_at > %(since)s AND position(' ' || k.key || ' ' IN {_TEXT}) > 0))"""

_LINK = f"""
WITH {_KEYS},
docs AS (
    SELECT d.id, d.account_id, d.deal_id, d.link_details, d.link_method, d.title, d.folder_path
      FROM documents d
     WHERE d.workspace_id = %(workspace_id)s AND d.source = 'google_drive' AND d.deleted_at IS NULL
       AND d.link_method IS DISTINCT FROM 'manual' AND {{scope}}
),
texts AS (   -- the title and each folder name apart, so no match spans two of them
    SELECT x.id, string_to_array({_NORM.format(x='t.raw')}, ' ') AS w
      FROM docs x
     CROSS JOIN LATERAL unnest(array_prepend(x.title, string_to_array(coalesce(x.folder_path, ''), '/'))) AS t(raw)
),
grams AS (
    SELECT DISTINCT t.id, array_to_string(t.w[i:i + n - 1], ' ') AS gram
      FROM texts t
     CROSS JOIN LATERAL generate_series(1, cardinality(t.w)) AS i
     CROSS JOIN LATERAL generate_series(1, least({MAX_WORDS}, cardinality(t.w) - i + 1)) AS n
),
hits AS (
    SELECT g.id, k.account_id, k.deal_id, max(length(k.key)) AS len, bool_or(k.method = 'name_match') AS by_name
      FROM grams g JOIN keys k ON k.key = g.gram
     GROUP BY g.id, k.account_id, k.deal_id
),
acc_best AS (
    SELECT id, account_id, method FROM (
        SELECT id, account_id, CASE WHEN by_name THEN 'name_match' ELSE 'domain_match' END AS method,
               rank() OVER (PARTITION BY id ORDER BY len DESC) AS r, count(*) OVER (PARTITION BY id, len) AS n
          FROM hits WHERE deal_id IS NULL) x
     WHERE r = 1 AND n = 1
),
deal_best AS (
    SELECT id, deal_id, account_id FROM (
        SELECT h.id, h.deal_id, h.account_id,
               rank() OVER (PARTITION BY h.id ORDER BY h.len DESC, (h.account_id = a.account_id) IS TRUE DESC) AS r,
               count(*) OVER (PARTITION BY h.id, h.len, (h.account_id = a.account_id) IS TRUE) AS n
          FROM hits h LEFT JOIN acc_best a ON a.id = h.id
         WHERE h.deal_id IS NOT NULL) x
     WHERE r = 1 AND n = 1
),
owned AS (
    SELECT x.*, a.account_id AS acc, a.method AS acc_method, b.deal_id AS deal, b.account_id AS deal_account,
           (x.account_id IS NULL OR coalesce(x.link_details->>'account', '') IN ('name_match', 'domain_match',
                                                                                'deal_name')) AS own_account,
           (x.deal_id IS NULL OR coalesce(x.link_details->>'deal', '') = 'deal_name') AS own_deal
      FROM docs x LEFT JOIN acc_best a ON a.id = x.id LEFT JOIN deal_best b ON b.id = x.id
),
checked AS (
    SELECT o.*, (o.deal IS NOT NULL AND o.own_deal AND (o.own_account OR o.account_id IS NULL
                 OR o.deal_account IS NULL OR o.deal_account = o.account_id)) AS deal_ok
      FROM owned o
),
decided AS (
    SELECT c.id,
           CASE WHEN NOT c.own_account THEN c.account_id
                WHEN c.deal_ok AND c.deal_account IS NOT NULL THEN c.deal_account ELSE c.acc END AS new_account,
           CASE WHEN NOT c.own_deal THEN c.deal_id WHEN c.deal_ok THEN c.deal END AS new_deal,
           CASE WHEN NOT c.own_account THEN c.link_details->>'account'
                WHEN c.deal_ok AND c.deal_account IS NOT NULL THEN 'deal_name' ELSE c.acc_method END AS account_method,
           CASE WHEN NOT c.own_deal THEN c.link_details->>'deal' WHEN c.deal_ok THEN 'deal_name' END AS deal_method,
           c.link_details, c.link_method
      FROM checked c
),
final AS (
    SELECT id, new_account, new_deal,
           jsonb_strip_nulls(link_details || jsonb_build_object('account', account_method, 'deal', deal_method))
               AS details,
           coalesce(deal_method, account_method,
                    CASE WHEN link_method IN ('name_match', 'domain_match', 'deal_name') THEN NULL ELSE link_method END)
               AS method
      FROM decided
)
UPDATE documents t
   SET account_id = f.new_account, deal_id = f.new_deal, link_details = f.details, link_method = f.method,
       linked_at = CASE WHEN (t.account_id, t.deal_id) IS DISTINCT FROM (f.new_account, f.new_deal)
                        THEN now() ELSE t.linked_at END
  FROM final f
 WHERE t.workspace_id = %(workspace_id)s AND t.id = f.id
   AND (t.account_id, t.deal_id, t.link_details, t.link_method)
       IS DISTINCT FROM (f.new_account, f.new_deal, f.details, f.method)
"""

_ANY = "SELECT 1 FROM documents WHERE workspace_id = %(workspace_id)s AND source = 'google_drive' LIMIT 1"
_CHANGED = """
SELECT (SELECT count(*) FROM accounts WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s)
     + (SELECT count(*) FROM deals WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s) AS n
"""


def link_documents(conn, workspace_id: str, since=None) -> int:
    """Relink Drive documents (all of them when `since` is None); returns how many rows changed."""
    params = {"workspace_id": workspace_id, "since": since}
    if conn.execute(_ANY, params).fetchone() is None:
        return 0
    if since is not None and conn.execute(_CHANGED, params).fetchone()["n"] > FULL_AFTER:
        since = params["since"] = None
    scope = "TRUE" if since is None else _SCOPE
    return conn.execute(_LINK.format(scope=scope), params).rowcount


# It reads accounts' and deals' names, domains, account ids and deletion (which the references, the association
# inference and the Salesforce merges write) and writes documents alone, which no core step reads: it runs beside
# every step after those. (Waiting for the linker as well, it held up contact_scope, and the contact scores behind
# it, in every incremental run.)
@register_step("google_drive_links", order=32,
               independent_of=("resolve_activity_references", "stage_normalization", "internal_filter", "linker",
                               "linker_activities", "single_deal_inference", "cwd", "contact_scope", "computed_deals",
                               "computed_contacts", "computed_accounts_of_deals", "computed_accounts",
                               "monday_task_deals", "salesforce_contact_roles", "salesforce_stage_mappings"))
def link_step(conn, run) -> dict[str, int]:
    changed = link_documents(conn, run.workspace_id, run.since)
    return {"documents.linked": changed} if changed else {}

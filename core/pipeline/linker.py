"""Cross-entity linker: fill contact_id / account_id / deal_id of conversations and activities.

Post-sync steps `linker` (conversations, order 30, after the internal filter, so internal meetings are never
linked) and `linker_activities` (order 31, run beside it). Per table, one set-based UPDATE computes every tier
for every row at once and writes only rows whose links change.

Tiers (rank in brackets; `link_details` records per field which method set it, e.g.
{"contact": "email_match", "account": "crm_native", "deal": "deal_inference"}):
- email_match [2]: participant emails (case-insensitive) against `contacts.email`, EXTERNAL participants only
  (domain not internal, affiliation not internal; a gmail prospect counts). Sets the contact and that
  contact's account. Several matches: prefer a contact at the account the CRM or the row already names, then
  one that has an account, then the account most matches share, then the lowest email (then id). A contact
  matched earlier keeps supplying the account when its account appears later (association inference).
- crm_native [3]: CRM ids the source attached: Gong `context[].objects[]` and per-party `context`
  (objectType Account/Company, Opportunity/Deal, Contact/Lead), `source_data.crm_context`
  {account,deal,contact}_source_id (the demo data), HubSpot `associations` ({companyIds,dealIds,contactIds}
  or {companies,deals,contacts}.results[].id), Salesforce AccountId/WhoId/WhatId (WhatId tried as account
  and as deal), and on activities their own *_source_id columns — the ids resolve_references already set
  from those are recorded as crm_native. An id matches `source_id` of accounts/deals/contacts in the row's
  own source first, else in any source of the workspace; only a unique match counts (two Opportunity objects
  on one call: no deal). The account is the CRM's account, else the CRM deal's, else the CRM contact's, so
  the three stay consistent.
- deal_inference [1]: a row with an account and no deal gets the account's only OPEN deal (stage_normalized
  not closed_won/closed_lost; NULL is open) among those alive at the row's date (created — source_created_at,
  else created_at — on or before started_at/occurred_at). An open deal created after the call does not count.
- manual [4]: rows with link_method 'manual' are never touched.

Precedence: a method may set a field that is empty or was set by a LOWER-ranked method, never one set by an
equal or higher one (a field whose value is exactly what the CRM says is recorded as crm_native whatever
set it: resolve_references rewrites ids without looking at link_method). Later tiers fill what earlier ones
left empty, so an email-matched call still gets its CRM deal (the original's quirk is gone). Links are
sticky: the linker never withdraws a link because the data stopped supporting it (a contact changed email,
an inferred deal closed: the meeting still happened with them) — except that an inferred deal belongs to the
account it was inferred from, so when a higher tier changes the account the inferred deal is dropped and
inferred again, and that an e-mail match holds while its participant is on the row as an external participant:
`link_details` records the participant's e-mail as the source wrote it (`contact_email`), and once a sync writes
the row without it (a re-synced invite or call the person was dropped from) or with them marked internal only,
the e-mail tier decides the contact, and the account it gave, again from the participants there now (another
match, or none: the fields are cleared and the inferred deal goes with the account); so does a match whose
e-mail's domain has become one of the internal domains (the person is one of us now: an acquired company's
domain added). A contact whose own e-mail changed keeps its calls (the recorded e-mail is still there). Rows
linked before the e-mail was recorded keep their contact as before (migration 0027 recorded it where the
contact's e-mail is on the row). Ids present without a `link_details` entry came from earlier steps
(resolve_references; associations' imported deal names, recorded as 'deal_name', rank 3). `link_method` = the
deal's method, else the account's, else the contact's; `linked_at` = when the linker last changed the ids (NULL:
never; labelling ids another path set does not move it: linked_at is indexed, the labels are not, so a relabel
can be a heap-only update). The write path inserts activities whose ids it resolved from their own references already labelled
crm_native (core.db.references.LABELLED), so after a first sync most have nothing left to relabel.
Soft-deleted targets are never linked to; deleted rows are not linked. A link to a row its source has since
deleted (a CRM deal archived, or merged into another; a contact merged away; a company deleted) is no link:
that field is decided again by the tiers as if it were empty (the calls of a deal merged away go to the account's
one remaining open deal by inference, or become conversations without deals; a merged contact's calls find the
survivor by e-mail), and cleared when none gives it, whatever method had set it; an account that is deleted is
never taken from a contact or a CRM deal either. Manual links stay as they are. (A file import's rollback
hard-deletes rows, and `clear_dangling_references` clears links to those.)

Incremental (run.since set): rows changed since, plus the rows changes elsewhere can affect — rows without a
contact whose participant emails match a contact changed since, rows whose CRM ids match an account/deal/
contact changed since, rows whose account can come from their CRM deal/contact (the pipeline sets those
accounts without moving updated_at), and every row with an account and no deal (deal stages move without
updated_at too). CRM ids are still read from every row whose links are not all at crm rank (nothing indexes
JSON paths); only the joins shrink. (A deletion is a change: the rows linked to a row deleted since are among
those on changed deals/contacts/accounts.) A change of the internal domains or of these rules (`pipeline_state`)
makes the run full. Import rollbacks (hard deletes) already run the pipeline in full.

Performance: participant emails and CRM ids (elements of JSON arrays, which the planner cannot count) are
first collected into ANALYZEd temp tables, so the joins to 1M contacts / 100k deals are planned on real
numbers; the step raises work_mem for its own transaction only. The final UPDATE joins back by ctid.
"""
from __future__ import annotations

from functools import lru_cache

from core.pipeline import changed_since, deal_links_changed, deleted_ids, register_step
from core.pipeline.domains import internal_domains, last_used, remember
from core.pipeline.internal import RULES_VERSION as FILTER_RULES
from core.pipeline.lookups import rows_naming
from core.pipeline.participants import email_key, marked_internal

# Bump when the linking rules change, so the next incremental run relinks everything.
RULES_VERSION = 3

RANKS = {"manual": 4, "crm_native": 3, "deal_name": 3, "email_match": 2, "deal_inference": 1}


def _rank(expr: str) -> str:
    whens = " ".join(f"WHEN '{m}' THEN {r}" for m, r in RANKS.items())
    return f"(CASE {expr} {whens} ELSE 0 END)"


# Per table: the row's date, extra row filter, where a deal of unknown origin came from, its own CRM references
# and which rows can have single CRM ids at all.
_TABLES = {
    "conversations": {
        "at": "started_at",
        "filter": "AND r.is_internal IS NOT TRUE",
        "deal_origin": "'crm_native'",
        "own_refs": "",
        "has_single": "r.source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId']",
    },
    "activities": {
        "at": "occurred_at",
        "filter": "",
        "deal_origin": "CASE WHEN r.link_method = 'deal_name' OR r.custom_fields ? 'deal_name' "
                       "THEN 'deal_name' ELSE 'crm_native' END",
        "own_refs": "|| ARRAY['account:' || r.account_source_id, 'contact:' || r.contact_source_id, 'deal:' || r.deal_source_id]",
        "has_single": "true",
    },
}

# The method currently behind each field (NULL when empty); see the docstring for ids of unknown origin.
_MC = "CASE WHEN r.contact_id IS NOT NULL THEN COALESCE(r.link_details->>'contact', 'crm_native') END"
_MA = "CASE WHEN r.account_id IS NOT NULL THEN COALESCE(r.link_details->>'account', 'crm_native') END"
_MD = "CASE WHEN r.deal_id IS NOT NULL THEN COALESCE(r.link_details->>'deal', {deal_origin}) END"

# An e-mail-matched contact whose participant (the e-mail recorded when it was matched) is no longer on the row
# as an external participant: gone, or marked internal now, in any case or spacing; or whose domain is now one
# of ours (see the docstring). The containment of the exact value, with nobody of that exact e-mail marked
# internal, settles nearly every row without unnesting its participants; only the rest (the person left, turned
# internal, or the source now spells them otherwise) are read element by element. Evaluated once per run into a
# temp table (`_GONE_ROWS`) that the e-mail collection and the link statement both read.
_AFFILIATION = "p.v->>'affiliation'"
_PARTICIPANT_EMAIL, _RECORDED_EMAIL = email_key("p.v->>'email'"), email_key("r.link_details->>'contact_email'")
_DEPARTED = ("(r.contact_id IS NOT NULL AND r.link_details->>'contact' = 'email_match'"
             " AND r.link_details ? 'contact_email'"
             f" AND (split_part({_RECORDED_EMAIL}, '@', 2) = ANY(%(internal_domains)s::text[])"
             " OR NOT (jsonb_typeof(r.participants) = 'array'"
             " AND r.participants @> jsonb_build_array(jsonb_build_object('email', r.link_details->'contact_email'))"
             " AND NOT jsonb_path_exists(r.participants, '$[*] ? (@.email == $e"
             " && @.affiliation.type() == \"string\" && @.affiliation like_regex \"^ *internal *$\" flag \"i\")',"
             " jsonb_build_object('e', r.link_details->'contact_email')))"
             " AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(r.participants) WHEN 'array'"
             " THEN r.participants ELSE '[]' END) AS p(v)"
             f" WHERE {_PARTICIPANT_EMAIL} = {_RECORDED_EMAIL} AND {marked_internal(_AFFILIATION)} IS NOT TRUE)))"
             " IS TRUE")

# The workspace's soft-deleted accounts, contacts and deals (few): a link to one of them is no link (see the
# docstring), and none of them is linked to.
_DEAD = "CREATE TEMP TABLE {dead} ON COMMIT DROP AS\n" + "\nUNION ALL ".join(
    f"SELECT '{kind}' AS kind, id FROM ({deleted_ids(table)}) AS {table}"
    for kind, table in (("account", "accounts"), ("contact", "contacts"), ("deal", "deals")))

# Rows with a departed e-mail match or a link to a deleted row, and which (`{gone_rows}`).
_GONE_ROWS = """
CREATE TEMP TABLE {gone_rows} ON COMMIT DROP AS
SELECT * FROM (
    SELECT r.id, {departed} AS departed,
           (r.contact_id IN (SELECT id FROM {dead} WHERE kind = 'contact')) IS TRUE AS dead_contact,
           (r.account_id IN (SELECT id FROM {dead} WHERE kind = 'account')) IS TRUE AS dead_account,
           (r.deal_id IN (SELECT id FROM {dead} WHERE kind = 'deal')) IS TRUE AS dead_deal
      FROM {table} r WHERE {rows} OFFSET 0) AS g
 WHERE departed OR dead_contact OR dead_account OR dead_deal
"""

_ROWS = """r.workspace_id = %(workspace_id)s AND r.deleted_at IS NULL
       AND r.link_method IS DISTINCT FROM 'manual' {filter}"""
_TOUCHED = "(%(full)s OR r.updated_at > %(since)s)"
# This workspace's rows of a table a sync wrote since the previous run (none on a full run, which reads all).
_CHANGED_SINCE = "workspace_id = %(workspace_id)s AND NOT %(full)s AND {}"

# The two intermediate sets whose size the planner cannot guess (elements of JSON arrays) go to temp tables
# that are ANALYZEd, so the joins after them are planned on real numbers.

# External participant emails of rows without a contact (or whose contact left them, or was deleted), each with
# one spelling of it as the source wrote it (`raw`, recorded with a match). Incrementally, only of rows changed
# since or emails of contacts changed since: an unchanged row found no contact among unchanged contacts last time
# (a row whose contact is gone is read whole: another contact of the same e-mail may have been there all along).
_EMAILS = """
CREATE TEMP TABLE {emails} ON COMMIT DROP AS
WITH changed_emails AS (
    SELECT DISTINCT lower(email) AS email FROM contacts WHERE {changed_contacts} AND email IS NOT NULL
)
SELECT DISTINCT ON (id, email) id, email, raw FROM (
    SELECT id, touched, {email} AS email, p->'email' AS raw, {internal} AS internal
      -- a row with a contact is here because that contact is gone from it: every e-mail of it counts
      FROM (SELECT r.id, {touched} OR r.contact_id IS NOT NULL AS touched,
                   r.participants -> generate_series(0, jsonb_array_length(r.participants) - 1) AS p
              FROM {table} r
             WHERE {rows} AND (r.contact_id IS NULL OR r.id IN (SELECT id FROM {gone_rows} WHERE departed OR dead_contact))
               AND jsonb_typeof(r.participants) = 'array') AS x
) AS e
WHERE email LIKE '%%_@_%%' AND internal IS NOT TRUE
  AND split_part(email, '@', 2) <> ALL(%(internal_domains)s::text[])
  AND (touched OR email IN (SELECT email FROM changed_emails))
ORDER BY id, email, raw
"""

# CRM ids of rows whose links are not all final at crm rank, as (kind, sid), of the kinds that can change
# something (`_NEEDS`). Cheap top-level key checks gate every JSON path, so rows without such data cost almost
# nothing. Incrementally, only rows changed since, rows pointing at an account/deal/contact changed since, and
# rows whose account could come from their CRM deal or contact (whose own account the pipeline may have set
# without moving updated_at).
_REFS = """
CREATE TEMP TABLE {refs} ON COMMIT DROP AS
WITH refs AS (
    -- Single ids (crm_context, Salesforce fields, the row's own *_source_id) as 'kind:id', absent ones dropped.
    SELECT id, source, touched, derivable, split_part(ref, ':', 1) AS kind, substr(ref, strpos(ref, ':') + 1) AS sid
      FROM (SELECT r.id, r.source, {touched} AS touched, {derivable} AS derivable, {needs} AS needs,
                   unnest(array_remove(
                       CASE WHEN r.source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId'] THEN ARRAY[
                           'account:' || (r.source_data #>> '{{crm_context,account_source_id}}'),
                           'deal:' || (r.source_data #>> '{{crm_context,deal_source_id}}'),
                           'contact:' || (r.source_data #>> '{{crm_context,contact_source_id}}'),
                           'account:' || (r.source_data->>'AccountId'), 'contact:' || (r.source_data->>'WhoId'),
                           'account:' || (r.source_data->>'WhatId'), 'deal:' || (r.source_data->>'WhatId')] END
                       {own_refs}, NULL)) AS ref
              FROM {table} r
             WHERE {rows} AND {not_final} AND ({has_single})) AS x
     WHERE split_part(ref, ':', 1) = ANY(needs)
    UNION ALL
    -- Lists of ids (Gong context objects, HubSpot associations), only for rows that have such keys.
    SELECT id, source, touched, derivable, g->>'t', jsonb_array_elements_text(g->'ids')
      FROM (SELECT r.id, r.source, {touched} AS touched, {derivable} AS derivable, {needs} AS needs,
                   jsonb_array_elements(
                       CASE WHEN r.source_data ? 'context' THEN jsonb_build_array(
                           jsonb_build_object('t', 'account', 'ids', jsonb_path_query_array(r.source_data,
                               'lax $.context[*].objects[*] ? (@.objectType == "Account" || @.objectType == "Company").objectId')),
                           jsonb_build_object('t', 'deal', 'ids', jsonb_path_query_array(r.source_data,
                               'lax $.context[*].objects[*] ? (@.objectType == "Opportunity" || @.objectType == "Deal").objectId')),
                           jsonb_build_object('t', 'contact', 'ids', jsonb_path_query_array(r.source_data,
                               'lax $.context[*].objects[*] ? (@.objectType == "Contact" || @.objectType == "Lead").objectId')
                               || jsonb_path_query_array(r.source_data,
                               'lax $.parties[*].context[*].objects[*] ? (@.objectType == "Contact" || @.objectType == "Lead").objectId')))
                       ELSE '[]' END
                    || CASE WHEN r.source_data ? 'associations' THEN jsonb_build_array(
                           jsonb_build_object('t', 'account', 'ids',
                               jsonb_path_query_array(r.source_data, 'lax $.associations.companyIds[*]')
                               || jsonb_path_query_array(r.source_data, 'lax $.associations.companies.results[*].id')),
                           jsonb_build_object('t', 'deal', 'ids',
                               jsonb_path_query_array(r.source_data, 'lax $.associations.dealIds[*]')
                               || jsonb_path_query_array(r.source_data, 'lax $.associations.deals.results[*].id')),
                           jsonb_build_object('t', 'contact', 'ids',
                               jsonb_path_query_array(r.source_data, 'lax $.associations.contactIds[*]')
                               || jsonb_path_query_array(r.source_data, 'lax $.associations.contacts.results[*].id')))
                       ELSE '[]' END) AS g
              FROM {table} r
             WHERE {rows} AND {not_final} AND r.source_data ?| ARRAY['context', 'associations']) AS x
     WHERE g->>'t' = ANY(needs)
), changed_targets AS (
    SELECT source_id FROM accounts WHERE {changed_accounts}
    UNION SELECT source_id FROM deals WHERE {changed_deals}
    UNION SELECT source_id FROM contacts WHERE {changed_contacts}
)
{keep_refs}
"""
# The kinds of CRM ids that can change a row: a field set by the CRM stays what it is whatever the CRM says now
# (equal rank), so its ids are read only to supply another field: the account from the CRM deal or contact.
# Activities are inserted with their own references labelled crm_native, and without this their contact ids
# alone joined a million contacts for nothing. (The e-mail tier prefers a contact at the CRM's account; with the
# account already crm_native that is the row's own account, which is the one it keeps.)
_NEEDS = ("array_remove(ARRAY[CASE WHEN {ma} IS DISTINCT FROM 'crm_native' THEN 'account' END,"
          " CASE WHEN {mc} IS DISTINCT FROM 'crm_native' OR {ma} IS DISTINCT FROM 'crm_native' THEN 'contact' END,"
          " CASE WHEN {md} IS DISTINCT FROM 'crm_native' OR {ma} IS DISTINCT FROM 'crm_native' THEN 'deal' END], NULL)")
# A full run keeps every id; an incremental one every id of a row that was touched, can derive its account, or
# names a changed record (one pass with a window: a correlated IN over the CTE was planned as a rescan per row).
_KEEP_ALL = "SELECT DISTINCT id, source, kind, sid FROM refs WHERE sid <> ''"
_KEEP_CHANGED = """SELECT DISTINCT id, source, kind, sid
  FROM (SELECT refs.*, bool_or(touched OR derivable OR sid IN (SELECT source_id FROM changed_targets))
                           OVER (PARTITION BY id) AS keep
          FROM refs) AS x
 WHERE sid <> '' AND keep"""

# An incremental run relinks only candidate rows (the rest would come out as they are): rows a sync wrote, rows
# without a contact listing an e-mail of a changed contact, rows naming a changed CRM record, rows on changed
# deals/contacts or on accounts whose deals changed, and rows whose ids other steps of this run set. Every
# branch is an index lookup (btree here; through core.pipeline.lookups, participant_emails' key for e-mails and
# GIN indexes for CRM ids).
_CANDIDATES = """
CREATE TEMP TABLE {cand} ON COMMIT DROP AS
SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s
UNION SELECT unnest(%(cand_listed)s::uuid[])  -- rows listing a changed e-mail or CRM id (core.pipeline.lookups)
UNION SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND deal_id = ANY(%(cand_deals)s::uuid[])
UNION SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND contact_id = ANY(%(cand_contacts)s::uuid[])
UNION SELECT id FROM {table} WHERE workspace_id = %(workspace_id)s AND account_id = ANY(%(cand_accounts)s::uuid[])
UNION SELECT unnest(%(cand_own)s::uuid[])
"""

# What changed since the previous run, as the lists _CANDIDATES looks rows up by.
_CHANGES = f"""
WITH d AS (SELECT id, account_id, left_account_id, source_id FROM deals
            WHERE workspace_id = %(workspace_id)s AND {deal_links_changed()}),
     c AS (SELECT id, lower(email) AS email, source_id FROM contacts
            WHERE workspace_id = %(workspace_id)s AND {changed_since("contacts")}),
     a AS (SELECT id, source_id FROM accounts WHERE workspace_id = %(workspace_id)s AND updated_at > %(since)s),
     -- deals earlier steps of this run re-pointed, opened or closed (no updated_at): their accounts' tier 3 may move
     moved AS (SELECT id, account_id FROM deals WHERE workspace_id = %(workspace_id)s AND id = ANY(%(noted_deals)s::uuid[]))
SELECT ARRAY(SELECT DISTINCT email FROM c WHERE email IS NOT NULL) AS changed_emails,
       ARRAY(SELECT source_id FROM d UNION SELECT source_id FROM c UNION SELECT source_id FROM a) AS changed_sids,
       ARRAY(SELECT id FROM d UNION SELECT id FROM moved) AS cand_deals,
       ARRAY(SELECT id FROM c UNION SELECT unnest(%(noted_contacts)s::uuid[])) AS cand_contacts,
       ARRAY(SELECT account_id FROM d WHERE account_id IS NOT NULL UNION SELECT id FROM a
             UNION SELECT left_account_id FROM d WHERE left_account_id IS NOT NULL  -- it may have one deal left
             UNION SELECT account_id FROM moved WHERE account_id IS NOT NULL) AS cand_accounts
"""

_LINK = """
WITH base AS MATERIALIZED (
    -- A departed e-mail match (_DEPARTED, found before: {gone_rows}) counts as no method at all, and so does the
    -- account it gave; so does a link to a deleted row (the deal one: dead_deal drops it below). (OFFSET 0: the
    -- lookup runs once per row, not once per use.)
    SELECT id, rid, at, contact_id, account_id, deal_id, link_details, link_method, dead_deal,
           CASE WHEN NOT dead_deal THEN md END AS md,
           CASE WHEN NOT (departed OR dead_contact) THEN mc END AS mc,
           CASE WHEN NOT ((ma = 'email_match' AND departed) OR dead_account) THEN ma END AS ma
      -- (Each flag a lookup in the small table, hashed once: as a LEFT JOIN, the planner hashed every row of the
      -- table instead, +0.15 s over 200k activities.)
      FROM (SELECT r.id, r.ctid AS rid, r.{at} AS at, r.contact_id, r.account_id, r.deal_id, r.link_details,
                   r.link_method, {mc} AS mc, {ma} AS ma, {md} AS md,
                   r.id IN (SELECT id FROM {gone_rows} WHERE departed) AS departed,
                   r.id IN (SELECT id FROM {gone_rows} WHERE dead_contact) AS dead_contact,
                   r.id IN (SELECT id FROM {gone_rows} WHERE dead_account) AS dead_account,
                   r.id IN (SELECT id FROM {gone_rows} WHERE dead_deal) AS dead_deal
              FROM {table} r
             WHERE {rows} OFFSET 0) AS r
), matches AS (
    SELECT e.id, c.id AS contact_id, {live_contact_account} AS account_id, e.email, e.raw
      FROM {emails} e
      JOIN contacts c ON c.workspace_id = %(workspace_id)s AND lower(c.email) = e.email AND c.deleted_at IS NULL
), crm_row AS (
    -- Per row and kind, one target: among the row's own source if it has any there, else among all sources;
    -- two or more candidates are ambiguous and give none. ({refs} has one row per row, kind and id.)
    SELECT f.id, {pick_contact} AS contact_id, {pick_account} AS account_id, {pick_deal} AS deal_id,
           {pick_deal_account} AS deal_account, {pick_contact_account} AS contact_account
      FROM {refs} f
      LEFT JOIN accounts a ON f.kind = 'account' AND a.workspace_id = %(workspace_id)s AND a.source_id = f.sid
                          AND a.deleted_at IS NULL
      LEFT JOIN deals d ON f.kind = 'deal' AND d.workspace_id = %(workspace_id)s AND d.source_id = f.sid
                       AND d.deleted_at IS NULL
      -- Contacts are many and CRM contact ids few or absent: only contacts some row names, and no scan at all
      -- when none does (OFFSET 0 keeps the EXISTS a one-time check on this subquery).
      LEFT JOIN (SELECT c.id, c.source, c.source_id, c.account_id FROM contacts c
                  WHERE c.workspace_id = %(workspace_id)s AND c.deleted_at IS NULL
                    AND EXISTS (SELECT 1 FROM {refs} WHERE kind = 'contact')
                    AND c.source_id IN (SELECT sid FROM {refs} WHERE kind = 'contact') OFFSET 0) AS c
             ON f.kind = 'contact' AND c.source_id = f.sid
     GROUP BY f.id
), email_pick AS (
    -- Prefer a contact at the account the CRM or the row already names, then one with an account, then the
    -- account most matches share, then the lowest email.
    SELECT DISTINCT ON (m.id) m.id, m.contact_id, m.account_id, m.raw
      FROM (SELECT m.*, count(*) OVER (PARTITION BY m.id, m.account_id) AS votes FROM matches m) AS m
      JOIN base b ON b.id = m.id
      LEFT JOIN crm_row x ON x.id = m.id
     ORDER BY m.id, (m.account_id = COALESCE(x.account_id, x.deal_account, b.account_id)) IS TRUE DESC,
              (m.account_id IS NOT NULL) DESC, m.votes DESC, m.email COLLATE "C", m.contact_id
), sticky AS (
    -- A contact matched earlier whose account arrived later (e.g. linked by association inference), or moved
    -- on from one that was deleted (a company merged away).
    SELECT b.id, {live_contact_account} AS account_id
      FROM base b
      JOIN contacts c ON c.workspace_id = %(workspace_id)s AND c.id = b.contact_id
     WHERE b.mc = 'email_match' AND b.ma IS NULL AND {live_contact_account} IS NOT NULL
), linked AS MATERIALIZED (
    -- Contact, then account: a method replaces a field only when it outranks the method behind it. A field
    -- whose value is what the CRM says is recorded as crm_native whatever set it (resolve_references rewrites
    -- ids without looking at link_method).
    SELECT b.id, b.rid, b.at, b.contact_id, b.account_id, b.deal_id, b.link_details, b.link_method, b.md,
           b.dead_deal, y.new_contact, x.new_mc, z.new_account, y.new_ma, w.crm_deal,
           -- the participant an e-mail match was made on: the one recorded, or this run's pick
           CASE x.new_mc WHEN 'email_match' THEN CASE WHEN b.mc = 'email_match' THEN b.link_details->'contact_email'
                                                      ELSE ep.raw END END AS new_email,
           b.md = 'deal_inference' AND z.new_account IS DISTINCT FROM b.account_id AS drop_inferred
      FROM base b
      LEFT JOIN crm_row c ON c.id = b.id
      LEFT JOIN email_pick ep ON ep.id = b.id
      LEFT JOIN sticky st ON st.id = b.id
     CROSS JOIN LATERAL (SELECT {rank_b_mc} AS rmc, {rank_b_ma} AS rma, c.contact_id AS crm_contact, c.deal_id AS crm_deal,
                                COALESCE(c.account_id, c.deal_account, c.contact_account) AS crm_account,
                                COALESCE(ep.account_id, st.account_id) AS email_account) AS w
     CROSS JOIN LATERAL (SELECT CASE WHEN w.crm_contact IS NOT NULL AND (w.rmc < 3 OR w.crm_contact = b.contact_id)
                                     THEN 'crm_native'
                                     WHEN ep.contact_id IS NOT NULL AND w.rmc < 2 THEN 'email_match'
                                     ELSE b.mc END AS new_mc) AS x
     CROSS JOIN LATERAL (SELECT CASE x.new_mc WHEN b.mc THEN b.contact_id WHEN 'crm_native' THEN w.crm_contact
                                     ELSE ep.contact_id END AS new_contact,
                                CASE WHEN w.crm_account IS NOT NULL AND (w.rma < 3 OR w.crm_account = b.account_id)
                                     THEN 'crm_native'
                                     WHEN x.new_mc = 'email_match' AND w.email_account IS NOT NULL AND w.rma < 2
                                     THEN 'email_match' ELSE b.ma END AS new_ma) AS y
     CROSS JOIN LATERAL (SELECT CASE y.new_ma WHEN b.ma THEN b.account_id WHEN 'crm_native' THEN w.crm_account
                                     ELSE w.email_account END AS new_account) AS z
), first_open_deals AS MATERIALIZED (  -- once, not once per row of a nested loop
    -- Per account, its earliest open deal and when the second one appeared: a row dated in between has
    -- exactly one open deal alive.
    SELECT account_id, min(id::text COLLATE "C") FILTER (WHERE n = 1)::uuid AS deal_id,
           min(born) FILTER (WHERE n = 1) AS born, min(born) FILTER (WHERE n = 2) AS next_born
      FROM (SELECT account_id, id, COALESCE(source_created_at, created_at) AS born,
                   row_number() OVER (PARTITION BY account_id ORDER BY COALESCE(source_created_at, created_at), id) AS n
              FROM deals
             WHERE workspace_id = %(workspace_id)s AND deleted_at IS NULL AND account_id IS NOT NULL {fod_scope}
               AND (stage_normalized IS NULL OR stage_normalized NOT IN ('closed_won', 'closed_lost'))) AS o
     WHERE n <= 2
     GROUP BY account_id
), decided AS (
    SELECT l.*, d.new_deal, d.new_md,
           jsonb_strip_nulls(jsonb_build_object('contact', l.new_mc, 'account', l.new_ma, 'deal', d.new_md,
                                                'contact_email', l.new_email)) AS details,
           COALESCE(d.new_md, l.new_ma, l.new_mc) AS method
      FROM linked l
      LEFT JOIN first_open_deals f ON f.account_id = l.new_account AND l.crm_deal IS NULL
                                  AND (l.deal_id IS NULL OR l.drop_inferred OR l.dead_deal)
                                  AND f.born <= l.at AND (f.next_born IS NULL OR f.next_born > l.at)
     CROSS JOIN LATERAL (SELECT CASE WHEN l.drop_inferred OR l.dead_deal THEN NULL ELSE l.deal_id END AS keep_deal,
                                CASE WHEN l.drop_inferred OR l.dead_deal THEN NULL ELSE l.md END AS keep_md) AS k
     CROSS JOIN LATERAL (SELECT CASE WHEN l.crm_deal IS NOT NULL AND ({rank_k_md} < 3 OR l.crm_deal = k.keep_deal)
                                     THEN l.crm_deal
                                     WHEN k.keep_deal IS NOT NULL THEN k.keep_deal ELSE f.deal_id END AS new_deal,
                                CASE WHEN l.crm_deal IS NOT NULL AND ({rank_k_md} < 3 OR l.crm_deal = k.keep_deal)
                                     THEN 'crm_native'
                                     WHEN k.keep_deal IS NOT NULL THEN k.keep_md
                                     WHEN f.deal_id IS NOT NULL THEN 'deal_inference' END AS new_md) AS d
), final AS MATERIALIZED (
    -- Materialized: inlined into the UPDATE, its joins were planned after the join back by ctid, whose estimate
    -- is one row, and the deal inference became a nested loop over first_open_deals for every row (seconds).
    SELECT d.*, (d.contact_id, d.account_id, d.deal_id) IS DISTINCT FROM (d.new_contact, d.new_account, d.new_deal) AS moved
      FROM decided d
     WHERE (d.contact_id, d.account_id, d.deal_id, d.link_details, d.link_method)
           IS DISTINCT FROM (d.new_contact, d.new_account, d.new_deal, d.details, d.method)
), changed AS (
    UPDATE {table} r
       SET contact_id = f.new_contact, account_id = f.new_account, deal_id = f.new_deal,
           link_details = f.details, link_method = f.method,
           linked_at = CASE WHEN f.moved THEN now() ELSE r.linked_at END
      FROM final f
     WHERE r.workspace_id = %(workspace_id)s AND r.ctid = f.rid AND r.id = f.id
    RETURNING f.moved,
              CASE WHEN f.new_contact IS DISTINCT FROM f.contact_id THEN f.new_mc END AS cm,
              CASE WHEN f.new_account IS DISTINCT FROM f.account_id THEN f.new_ma END AS am,
              CASE WHEN f.new_deal IS DISTINCT FROM f.deal_id THEN f.new_md END AS dm,
              (f.contact_id IS NOT NULL AND f.new_contact IS NULL) OR (f.account_id IS NOT NULL AND f.new_account IS NULL)
              OR (f.deal_id IS NOT NULL AND f.new_deal IS NULL) AS cleared
)
SELECT count(*) FILTER (WHERE 'email_match' IN (cm, am, dm)) AS email_match,
       count(*) FILTER (WHERE 'crm_native' IN (cm, am, dm)) AS crm_native,
       count(*) FILTER (WHERE 'deal_inference' IN (cm, am, dm)) AS deal_inference,
       count(*) FILTER (WHERE cleared) AS unlinked,
       count(*) FILTER (WHERE NOT moved) AS relabelled
  FROM changed
"""


def _pick(alias: str, column: str = "id") -> str:
    """The one target of a kind for a row (see crm_row), or the `column` of it."""
    own = f"count({alias}.id) FILTER (WHERE {alias}.source = f.source)"
    value = f'min({alias}.{column}::text COLLATE "C")'
    return (f"(CASE WHEN {own} = 1 THEN {value} FILTER (WHERE {alias}.source = f.source)"
            f" WHEN {own} = 0 AND count({alias}.id) = 1 THEN {value} END)::uuid")


def _live_account(account: str, dead: str) -> str:
    """The account id `account`, or NULL when that account is deleted (in the `dead` temp table)."""
    return f"(CASE WHEN ({account}) IN (SELECT id FROM {dead} WHERE kind = 'account') THEN NULL ELSE {account} END)"


@lru_cache(maxsize=None)
def _statements(table: str, incremental: bool = False) -> tuple[str, str, str, str, str, str]:
    spec = _TABLES[table]
    md = _MD.format(deal_origin=spec["deal_origin"])
    cand, dead = f"_linker_cand_{table}", f"_linker_dead_{table}"
    # The candidates as an array: each is one probe of the primary key. As `IN (SELECT …)` the planner hashed them
    # against a scan of every row of the workspace (the e-mail collection: 130 ms, against 13 ms, for the 3,000 of
    # a 1 % sync; as fast at 60,000).
    rows = _ROWS.format(filter=spec["filter"]) + (f" AND r.id = ANY(ARRAY(SELECT id FROM {cand}))" if incremental else "")
    names = {
        "table": table, "at": spec["at"], "rows": rows, "touched": _TOUCHED, "cand": cand,
        "fod_scope": "AND account_id IN (SELECT new_account FROM linked)" if incremental else "",
        **{f"changed_{t}": _CHANGED_SINCE.format(changed_since(t)) for t in ("accounts", "deals", "contacts")},
        "own_refs": spec["own_refs"],
        "keep_refs": _KEEP_CHANGED if incremental else _KEEP_ALL,
        "departed": _DEPARTED, "gone_rows": f"_linker_gone_{table}", "dead": dead,
        "live_contact_account": _live_account("c.account_id", dead),
        "email": email_key("p->>'email'"), "internal": marked_internal("p->>'affiliation'"),
        "has_single": spec["has_single"], "not_final": f"({_rank(_MC)} < 3 OR {_rank(_MA)} < 3 OR {_rank(md)} < 3)",
        "derivable": f"{_rank(_MA)} < 3 AND ({_MC} = 'crm_native' OR {md} = 'crm_native')", "mc": _MC, "ma": _MA, "md": md,
        "needs": _NEEDS.format(mc=_MC, ma=_MA, md=md),
        "rank_b_mc": _rank("b.mc"), "rank_b_ma": _rank("b.ma"), "rank_k_md": _rank("k.keep_md"),
        "emails": f"_linker_emails_{table}", "refs": f"_linker_refs_{table}",
        "pick_contact": _pick("c"), "pick_account": _pick("a"), "pick_deal": _pick("d"),
        "pick_deal_account": _live_account(_pick("d", "account_id"), dead),
        "pick_contact_account": _live_account(_pick("c", "account_id"), dead),
    }
    return (_CANDIDATES.format(**names), _DEAD.format(**names), _GONE_ROWS.format(**names), _EMAILS.format(**names),
            _REFS.format(**names), _LINK.format(**names))


def _link(conn, run, table: str, step: str) -> dict[str, int]:
    """Link the rows of one table (its own step: see below)."""
    domains = internal_domains(conn, run)
    state = {"rules": RULES_VERSION, "filter_rules": FILTER_RULES, "internal_domains": domains}
    full = run.since is None or last_used(conn, run.workspace_id, step) != state
    params = {**run.params, "full": full, "internal_domains": domains}
    if not full:
        params.update(conn.execute(_CHANGES, {
            **params, "noted_deals": run.noted("deals.account_id", "deals.open"),
            "noted_contacts": run.noted("contacts.account_id")}).fetchone())
    with conn.transaction():  # the temp tables and SET LOCAL need one, even on an autocommit connection
        conn.execute("SET LOCAL work_mem = '64MB'")  # the joins and sorts below cover the whole workspace
        candidates, dead, gone, emails, refs, link = _statements(table, not full)
        temps = f"_linker_dead_{table}, _linker_gone_{table}, _linker_emails_{table}, _linker_refs_{table}"
        if not full:
            listed = (rows_naming(conn, table, "emails", run.workspace_id, params["changed_emails"])
                      + rows_naming(conn, table, "crm_ids", run.workspace_id, params["changed_sids"]))
            conn.execute(candidates, {**params, "cand_own": run.noted_on(table), "cand_listed": listed})
            conn.execute(f"ANALYZE _linker_cand_{table}")
            temps += f", _linker_cand_{table}"
        conn.execute(dead, params)
        conn.execute(gone, params)
        conn.execute(emails, params)
        conn.execute(refs, params)
        conn.execute(f"ANALYZE _linker_emails_{table}, _linker_refs_{table}")
        row = conn.execute(link, params).fetchone()
        conn.execute(f"DROP TABLE {temps}")
        remember(conn, run.workspace_id, step, state)
    return {f"{table}.{k}": v for k, v in row.items() if v}


# One step per table: they share no rows and neither reads what the other writes, so they run at once (each
# UPDATE runs on one server core). Each remembers its own rules and domains.
@register_step("linker", order=30, cost=14)
def link_conversations(conn, run) -> dict[str, int]:
    return _link(conn, run, "conversations", "linker")


@register_step("linker_activities", order=31, independent_of=("linker",), cost=4)
def link_activities(conn, run) -> dict[str, int]:
    return _link(conn, run, "activities", "linker_activities")

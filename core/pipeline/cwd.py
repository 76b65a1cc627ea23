"""CWD, conversations without deals: external calls with an account that no deal accounts for.

The post-sync step `cwd` (order 50: after the linker and the internal-meeting filter) flags every conversation
that is external (`is_internal` is not true; NULL = not yet classified counts as external), linked to an
existing account (`account_id`, account not deleted), linked to no deal (`deal_id` NULL), not deleted, and
started inside the lookback window: as_of − cwd_lookback_days < started_at ≤ as_of (context
`goals_and_targets.thresholds.cwd_lookback_days`, default 90; calls after as_of are not calls yet). It stores
three columns on the conversation and clears them (all NULL) once the conversation stops qualifying: linked to
a deal, became internal, lost its account, aged out of the window.

Call type (`cwd_call_type`), from the title with the workspace's own name (context
`business_model.company_name`, if 3+ characters) removed first, so "Acme <> Demo Co — Weekly sync" is not a
demo; matched case-insensitively at word starts, first hit wins:
  follow_up   follow… ("follow-up", "following up"), next step(s)
  review      review, check-in / checkin, QBR
  intro_demo  intro…, discovery, demo / demos / demonstration, product(s)
  other       anything else.
The original tried intro_demo first; a "Demo follow-up" or "Product review" is a follow-up / review of
something already shown, so the qualifiers win here.

Severity (`cwd_severity`); "people" = entries in `participants`, "account's CWD calls" = this account's
conversations flagged by the same rule (external, no deal, in the window), this one included:
  high    the call is ≥ 7 days old, the account has no open deal, and
            (a) the account has ≥ 2 CWD calls in the window (the issue's "several recent calls, no deal"), or
            (b) it is an intro_demo call with ≥ 2 people, or
            (c) a long first-contact call: the account has never had a deal (any stage), ≥ 2 people, > 600 s;
  medium  otherwise, if the account has an open deal the call was not linked to, or the call is < 7 days old;
  low     otherwise (≥ 7 days old, nothing open, one short or small call, e.g. a check-in with a past customer).
A deal is open when `stage_normalized` is NULL or not closed_won / closed_lost; deleted deals do not count.
Changed from the original: the 7-day grace (time to log the deal) applies to every high rule, where the
original flagged (c) on the day of the call; (a) is new (the issue's rule); (b) also needs ≥ 2 people, so a
no-show with the rep alone on the line is not high.

Likely cause (`cwd_cause`), first hit wins:
  deal_not_linked          the account has an open deal: the call probably belongs to it and was not linked
                           (the original called this deal_not_created, which sends the rep to create a duplicate);
  early_stage              < 300 s with ≤ 2 people;
  disqualified_not_logged  > 30 days old, > 1,200 s, and no external call with the account in the last 30 days
                           (a real conversation, then silence; the original did not check the silence);
  deal_not_created         ≥ 300 s, and the call is ≤ 30 days old or the account still talks to us;
  unknown                  anything else (including an unknown duration).

Rep attribution is computed when reading (`conversations_without_deals`), so an account-owner change shows at
once: the organizer when internal (its domain is an internal domain, or it is, or shares the non-free-mail
domain of, an internal participant), else the first internal participant in `participants` order (the
original's rule), else the account owner, else "Unknown". "Internal" is the internal filter's rule
(`internal.py`, `domains.py`): with internal domains known, an email's domain decides; without them, or for
a participant without an email, its `affiliation` does.

The step is one set-based UPDATE (an incremental run first reads its scope) that only writes rows whose three
values change (a second run returns {}); it never touches updated_at, a link column or another table. It returns counts by the new severity of the rows it changed,
"cleared" for rows that stopped being CWD.

Incremental runs (`run.since` set) recompute every conversation of the accounts touched since then: accounts
of conversations, deals or accounts updated since; accounts of conversations that crossed an age boundary
(7 days, 30 days, the lookback) between `since` and as_of, so aging is handled without a full run; and what
earlier steps changed without moving updated_at: conversations the linker relinked (linked_at) or the internal
filter reclassified, deals whose normalized stage or account the pipeline set (all noted by those steps). Past
FULL_RUN_ABOVE accounts in scope (a first sync) the full statement runs instead. When a conversation or a deal
moves from account A to B, A's calls are recomputed too (A's call count or open deals changed): the account
each last left is kept (`conversations.left_account_id`, migration 0021; `deals.left_account_id`, 0018).
"""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from core.context import get_context, lookup
from core.errors import InputError
from core.pipeline import PipelineRun, register_step
from core.pipeline.domains import FREE_MAIL, internal_domains, last_used
from core.pipeline.participants import email_key, marked_internal

SEVERITIES = ("high", "medium", "low")
MAX_LIMIT = 500
_LOOKBACK = "goals_and_targets.thresholds.cwd_lookback_days"

_OPEN_DEAL = "(d.stage_normalized IS NULL OR d.stage_normalized NOT IN ('closed_won', 'closed_lost'))"
_PEOPLE = "CASE jsonb_typeof(c.participants) WHEN 'array' THEN jsonb_array_length(c.participants) ELSE 0 END"

# A conversation that qualifies as CWD (NULL when started_at is unknown: never qualifies).
_CANDIDATE = """(c.deleted_at IS NULL AND c.is_internal IS NOT TRUE AND c.account_id IS NOT NULL
    AND c.deal_id IS NULL AND c.started_at > %(window_start)s AND c.started_at <= %(as_of)s
    AND EXISTS (SELECT 1 FROM accounts a WHERE a.workspace_id = c.workspace_id AND a.id = c.account_id
                   AND a.deleted_at IS NULL))"""

_CALL_TYPE = r"""CASE
    WHEN t.title ~* '\mfollow|\mnext steps?\M' THEN 'follow_up'
    WHEN t.title ~* '\mreview|\mcheck-? ?in\M|\mqbr\M' THEN 'review'
    WHEN t.title ~* '\mintro|\mdiscovery\M|\mdemo(s|nstration)?\M|\mproducts?\M' THEN 'intro_demo'
    ELSE 'other' END"""

# Accounts to recompute in an incremental run (see the module docstring). Every branch is an index lookup: the
# conversations' OR is a bitmap OR over their updated_at, linked_at, primary key and started_at indexes.
_SCOPE = """
SELECT account_id FROM (
    SELECT c.account_id FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.account_id IS NOT NULL
       AND (c.updated_at >= %(since)s OR c.linked_at > %(own_since)s OR c.id = ANY(%(noted_conversations)s::uuid[])
            OR (c.started_at > %(since)s - interval '7 days' AND c.started_at <= %(as_of)s - interval '7 days')
            OR (c.started_at > %(since)s - interval '30 days' AND c.started_at <= %(as_of)s - interval '30 days')
            OR (c.started_at > %(since_window)s AND c.started_at <= %(window_start)s))
    UNION ALL  -- the account a conversation the linker or the internal filter moved left (migration 0021)
    SELECT c.left_account_id FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.left_account_id IS NOT NULL
       AND (c.linked_at > %(own_since)s OR c.id = ANY(%(noted_conversations)s::uuid[]))
    UNION ALL
    SELECT d.account_id FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.account_id IS NOT NULL
       AND (d.updated_at >= %(since)s OR d.id = ANY(%(noted_deals)s::uuid[]))
    UNION ALL  -- the account a deal moved away from (migration 0018): it may have no open deal left
    SELECT d.left_account_id FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.left_account_id IS NOT NULL
       AND ((d.updated_at >= %(since)s AND d.links_changed_at >= %(since)s) OR d.id = ANY(%(noted_deals)s::uuid[]))
    UNION ALL
    SELECT a.id FROM accounts a WHERE a.workspace_id = %(workspace_id)s AND a.updated_at >= %(since)s
) s GROUP BY account_id LIMIT %(scope_limit)s
"""
# An incremental run's flagged conversations that lost their account: the linker unlinked them since (two
# index lookups; an OR with the accounts in scope would read every flagged conversation).
_FLAGGED_UNLINKED = """UNION ALL
    SELECT c.id, NULL, NULL, NULL, c.cwd_severity, c.cwd_cause, c.cwd_call_type FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.cwd_severity IS NOT NULL AND c.account_id IS NULL
       AND (c.linked_at > %(own_since)s OR c.updated_at >= %(since)s)"""
# Past this many accounts in scope, an incremental run recomputes everything: the full statement is cheaper.
FULL_RUN_ABOVE = 5000
_IN_SCOPE = "c.account_id = ANY(%(scope)s::uuid[])"

_FLAG = f"""
WITH cand AS MATERIALIZED (
    SELECT c.id, c.account_id, c.started_at, c.duration_seconds AS secs, {_PEOPLE} AS people,
           {_CALL_TYPE} AS call_type, c.cwd_severity AS old_severity,
           c.cwd_cause AS old_cause, c.cwd_call_type AS old_call_type
      FROM conversations c
     CROSS JOIN LATERAL (SELECT replace(lower(coalesce(c.title, '')), %(own_name)s, ' ') AS title) t
     WHERE c.workspace_id = %(workspace_id)s AND {_CANDIDATE} {{in_scope}}
),
calls AS (   -- per account, one pass over its external calls of the last max(lookback, 30) days
    SELECT c.account_id,
           count(*) FILTER (WHERE c.deal_id IS NULL AND c.started_at > %(window_start)s) AS cwd_calls,
           bool_or(c.started_at >= %(as_of)s - interval '30 days') AS active_30d
      FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.account_id IN (SELECT account_id FROM cand)
       AND c.deleted_at IS NULL AND c.is_internal IS NOT TRUE
       AND c.started_at > least(%(window_start)s, %(as_of)s - interval '30 days') AND c.started_at <= %(as_of)s
     GROUP BY c.account_id
),
deal_counts AS (
    SELECT d.account_id, count(*) AS deals, count(*) FILTER (WHERE {_OPEN_DEAL}) AS open_deals
      FROM deals d
     WHERE d.workspace_id = %(workspace_id)s AND d.account_id IN (SELECT account_id FROM cand)
       AND d.deleted_at IS NULL
     GROUP BY d.account_id
),
facts AS (
    SELECT x.*, %(as_of)s - x.started_at >= interval '7 days' AS week_old,
           %(as_of)s - x.started_at > interval '30 days' AS month_old,
           coalesce(k.cwd_calls, 1) AS cwd_calls, coalesce(k.active_30d, false) AS active_30d,
           coalesce(d.deals, 0) AS deals, coalesce(d.open_deals, 0) AS open_deals
      FROM cand x
      LEFT JOIN calls k ON k.account_id = x.account_id
      LEFT JOIN deal_counts d ON d.account_id = x.account_id
),
target AS (
    SELECT f.id,
           CASE WHEN f.week_old AND f.open_deals = 0
                     AND (f.cwd_calls >= 2
                          OR (f.call_type = 'intro_demo' AND f.people >= 2)
                          OR (f.deals = 0 AND f.people >= 2 AND f.secs > 600)) THEN 'high'
                WHEN f.open_deals > 0 OR NOT f.week_old THEN 'medium'
                ELSE 'low' END AS severity,
           CASE WHEN f.open_deals > 0 THEN 'deal_not_linked'
                WHEN f.secs < 300 AND f.people <= 2 THEN 'early_stage'
                WHEN f.month_old AND f.secs > 1200 AND NOT f.active_30d THEN 'disqualified_not_logged'
                WHEN f.secs >= 300 AND (NOT f.month_old OR f.active_30d) THEN 'deal_not_created'
                ELSE 'unknown' END AS cause,
           f.call_type, f.old_severity, f.old_cause, f.old_call_type
      FROM facts f
    UNION ALL   -- flags that no longer hold (in an incremental run, their accounts are all in scope)
    SELECT c.id, NULL, NULL, NULL, c.cwd_severity, c.cwd_cause, c.cwd_call_type FROM conversations c
     WHERE c.workspace_id = %(workspace_id)s AND c.cwd_severity IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM cand x WHERE x.id = c.id)
           {{flagged_in_scope}}
    {{flagged_unlinked}}
),
changed AS MATERIALIZED (
    SELECT t.id, t.severity, t.cause, t.call_type FROM target t
     WHERE (t.old_severity, t.old_cause, t.old_call_type) IS DISTINCT FROM (t.severity, t.cause, t.call_type)
)
UPDATE conversations c
   SET cwd_severity = t.severity, cwd_cause = t.cause, cwd_call_type = t.call_type
  FROM changed t
 WHERE c.workspace_id = %(workspace_id)s AND c.id = t.id
   AND c.id = ANY(ARRAY(SELECT id FROM changed))  -- few rows change: reach them by key, not by a full-table hash
RETURNING t.severity
"""


# Deal links to contacts (deal_contacts) are no part of a CWD: it does not wait for their inference.
@register_step("cwd", order=50, independent_of=("single_deal_inference",), cost=1.7)
def flag_conversations_without_deals(conn: psycopg.Connection, run: PipelineRun) -> dict[str, int]:
    lookback = timedelta(days=int(lookup(run.context, _LOOKBACK, 90)))
    own_name = str(lookup(run.context, "business_model.company_name") or "").strip().lower()
    params = {
        **run.params,
        "window_start": run.as_of - lookback,
        "since_window": run.since - lookback if run.since else None,
        "own_name": own_name if len(own_name) >= 3 else "",  # a one-letter name must not eat every letter
    }
    scope = None
    if run.since is not None:
        noted = {"noted_conversations": run.noted("conversations.is_internal"),
                 "noted_deals": run.noted("deals.stage_normalized", "deals.account_id")}
        scope = [r["account_id"] for r in conn.execute(_SCOPE, {**params, **noted, "scope_limit": FULL_RUN_ABOVE + 1})]
        scope = scope if len(scope) <= FULL_RUN_ABOVE else None
    stmt = _FLAG.format(in_scope="" if scope is None else f"AND {_IN_SCOPE}",
                        flagged_in_scope="" if scope is None else f"AND {_IN_SCOPE}",
                        flagged_unlinked="" if scope is None else _FLAGGED_UNLINKED)
    rows = conn.execute(stmt, {**params, "scope": scope}).fetchall()
    return dict(Counter(r["severity"] or "cleared" for r in rows))


# ---- reading -------------------------------------------------------------------------------------------------

def _internal(p: str) -> str:
    """Participant `p` is one of us: the internal filter's rule (an email's domain decides when internal domains
    are known; otherwise, and for participants without an email, their `affiliation`)."""
    email, marked = email_key(f"{p}->>'email'"), marked_internal(f"{p}->>'affiliation'")
    return (f"(CASE WHEN {email} LIKE '%%_@_%%' AND cardinality(%(internal_domains)s::text[]) > 0"
            f" THEN split_part({email}, '@', 2) = ANY(%(internal_domains)s::text[])"
            f" ELSE {marked} END)")


_P_EMAIL, _ORGANIZER = email_key("p.v->>'email'"), email_key("c.organizer_email")
_PARTS = "(CASE jsonb_typeof(c.participants) WHEN 'array' THEN c.participants ELSE '[]'::jsonb END)"

# Who the CWD of conversation `c` (account `a`) should be taken up with: one pass over its participants.
_REP = f"""CROSS JOIN LATERAL (
    SELECT (array_agg(p.v ORDER BY p.n) FILTER (WHERE {_P_EMAIL} = {_ORGANIZER}))[1] AS organizer,
           coalesce(bool_or({_internal('p.v')} AND ({_P_EMAIL} = {_ORGANIZER}
                 OR (split_part({_P_EMAIL}, '@', 2) = split_part({_ORGANIZER}, '@', 2)
                     AND split_part({_ORGANIZER}, '@', 2) <> ALL(%(free_mail)s::text[])))), false)
             AS organizer_internal,
           (array_agg(p.v ORDER BY p.n) FILTER (WHERE {_internal('p.v')}
                 AND coalesce(p.v->>'email', p.v->>'name') IS NOT NULL))[1] AS first_internal
      FROM jsonb_array_elements({_PARTS}) WITH ORDINALITY p(v, n)
) pp
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.organizer_email LIKE '%%_@_%%'
                     AND (pp.organizer_internal
                          OR split_part({_ORGANIZER}, '@', 2) = ANY(%(internal_domains)s::text[]))
                     THEN 'organizer'
                WHEN pp.first_internal IS NOT NULL THEN 'first_internal_participant'
                WHEN coalesce(a.owner, a.owner_email) IS NOT NULL THEN 'account_owner'
                ELSE 'unattributed' END AS attributed_by
) how
CROSS JOIN LATERAL (
    SELECT CASE how.attributed_by
                WHEN 'organizer' THEN coalesce(pp.organizer->>'name', c.owner, c.organizer_email)
                WHEN 'first_internal_participant' THEN coalesce(pp.first_internal->>'name', pp.first_internal->>'email')
                WHEN 'account_owner' THEN coalesce(a.owner, a.owner_email)
                ELSE 'Unknown' END AS name,
           CASE how.attributed_by
                WHEN 'organizer' THEN c.organizer_email
                WHEN 'first_internal_participant' THEN pp.first_internal->>'email'
                WHEN 'account_owner' THEN a.owner_email END AS email,
           how.attributed_by
) rep"""

_FILTERS = {
    "severity": "c.cwd_severity = %(severity)s",
    "account_id": "c.account_id = %(account_id)s",
    "rep": "(lower(rep.email) = lower(%(rep)s) OR lower(rep.name) = lower(%(rep)s))",
}
_BASE = """FROM conversations c
  JOIN accounts a ON a.workspace_id = c.workspace_id AND a.id = c.account_id AND a.deleted_at IS NULL
  {rep}
 WHERE c.workspace_id = %(workspace_id)s AND c.cwd_severity IS NOT NULL AND c.deleted_at IS NULL
   AND c.account_id IS NOT NULL AND c.deal_id IS NULL  -- what every CWD is: the predicate of conversations_cwd
   AND c.started_at > %(since)s {filters}"""
_ORDER = ("CASE c.cwd_severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,"
          " c.started_at DESC NULLS LAST, c.id")

_SUMMARY = """SELECT count(*) AS total, count(*) FILTER (WHERE c.cwd_severity = 'high') AS high,
       count(*) FILTER (WHERE c.cwd_severity = 'medium') AS medium,
       count(*) FILTER (WHERE c.cwd_severity = 'low') AS low, count(DISTINCT c.account_id) AS accounts
  {base}"""

# The page is picked first, so enrichment runs for `limit` rows only.
_PAGE = f"""WITH page AS (
    SELECT c.id, c.account_id, c.title, c.started_at, c.duration_seconds, c.call_url, c.participants,
           c.organizer_email, c.owner, c.cwd_severity, c.cwd_cause, c.cwd_call_type
      {{base}} ORDER BY {_ORDER} LIMIT %(limit)s OFFSET %(offset)s
)
SELECT c.id, c.title, c.started_at, c.duration_seconds, c.call_url, {_PEOPLE} AS participants,
       c.cwd_severity, c.cwd_cause, c.cwd_call_type,
       a.id AS account_id, a.name, a.domain, a.industry, a.employee_count, a.last_activity_at,
       dc.open_deals, dc.won_deals, dc.lost_deals, lc.last_conversation_at,
       rep.name AS rep_name, rep.email AS rep_email, rep.attributed_by
  FROM page c
  JOIN accounts a ON a.workspace_id = %(workspace_id)s AND a.id = c.account_id
  {_REP}
 CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE {_OPEN_DEAL}) AS open_deals,
           count(*) FILTER (WHERE d.stage_normalized = 'closed_won') AS won_deals,
           count(*) FILTER (WHERE d.stage_normalized = 'closed_lost') AS lost_deals
      FROM deals d WHERE d.workspace_id = %(workspace_id)s AND d.account_id = a.id AND d.deleted_at IS NULL) dc
 CROSS JOIN LATERAL (
    SELECT max(x.started_at) AS last_conversation_at FROM conversations x
     WHERE x.workspace_id = %(workspace_id)s AND x.account_id = a.id AND x.deleted_at IS NULL
       AND x.is_internal IS NOT TRUE AND x.started_at <= %(as_of)s) lc
 ORDER BY {_ORDER}"""


def conversations_without_deals(
    conn: psycopg.Connection,
    workspace_id,
    *,
    severity: str | None = None,
    rep: str | None = None,
    account_id=None,
    days: int | None = None,
    limit: int = 50,
    offset: int = 0,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The workspace's CWDs as flagged by the last pipeline run, most severe and most recent first.

    Filters: `severity` (high / medium / low), `rep` (email or name, case-insensitive, as attributed),
    `account_id`, `days` (started within the last `days` days of `as_of`, default now; never beyond the
    lookback window, which is re-applied so calls that aged out since the last run are hidden). `total` and
    `summary` describe the filtered set before paging. Ids are strings; timestamps are datetimes.
    """
    if severity is not None and severity not in SEVERITIES:
        raise InputError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}", field="severity")
    if days is not None and (not isinstance(days, int) or days < 1):
        raise InputError(f"days must be a whole number of days, 1 or more (got {days!r})", field="days")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT} (got {limit!r})", field="limit")
    if not isinstance(offset, int) or offset < 0:
        raise InputError(f"offset must be 0 or more (got {offset!r})", field="offset")
    if account_id is not None:
        try:
            account_id = uuid.UUID(str(account_id))
        except ValueError:
            raise InputError(f"account_id {account_id!r} is not an account id (a UUID)", field="account_id") from None
    ctx = get_context(conn, workspace_id)
    window = int(lookup(ctx, _LOOKBACK, 90))
    # The domains the internal filter last classified with (cheap to read); inferred afresh if it never ran.
    domains = (last_used(conn, workspace_id, "internal_filter") or {}).get("internal_domains")
    if domains is None:
        domains = internal_domains(conn, PipelineRun(str(workspace_id), context=ctx))
    as_of = as_of or datetime.now(timezone.utc)
    params = {
        "workspace_id": str(workspace_id), "as_of": as_of,
        "since": as_of - timedelta(days=min(days or window, window)),
        "severity": severity, "rep": rep.strip() if rep else None, "account_id": account_id,
        "internal_domains": list(domains), "free_mail": list(FREE_MAIL), "limit": limit, "offset": offset,
    }
    filters = "".join(f" AND {clause}" for name, clause in _FILTERS.items() if params[name] is not None)
    base = _BASE.format(rep=_REP if params["rep"] else "", filters=filters)
    summary = conn.execute(_SUMMARY.format(base=base), params).fetchone()
    rows = conn.execute(_PAGE.format(base=base), params).fetchall() if summary["total"] > offset else []
    return {
        "items": [_item(r) for r in rows],
        "total": summary["total"],
        "summary": {k: summary[k] for k in ("high", "medium", "low", "accounts")},
    }


def _item(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation": {"id": str(r["id"]), "title": r["title"], "started_at": r["started_at"],
                         "duration_seconds": r["duration_seconds"], "call_url": r["call_url"],
                         "participant_count": r["participants"]},
        "severity": r["cwd_severity"], "cause": r["cwd_cause"], "call_type": r["cwd_call_type"],
        "account": {"id": str(r["account_id"]), "name": r["name"], "domain": r["domain"], "industry": r["industry"],
                    "employee_count": r["employee_count"], "open_deals": r["open_deals"],
                    "closed_won_deals": r["won_deals"], "closed_lost_deals": r["lost_deals"],
                    "last_activity_at": r["last_activity_at"], "last_conversation_at": r["last_conversation_at"]},
        "rep": {"name": r["rep_name"], "email": r["rep_email"], "attributed_by": r["attributed_by"]},
    }

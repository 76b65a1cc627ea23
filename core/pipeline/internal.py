"""Internal meeting filter: classify every conversation as internal (only our people) or external.

Post-sync step `internal_filter` (order 25). It runs BEFORE the linker (order 30), unlike the original, which
linked first and classified afterwards: classifying first means the linker never links an internal meeting
(so there is nothing to undo, and a second run changes nothing), and a meeting that turns external again is
linked by the linker in the same run.

Dual layer, decided per conversation in one set-based statement:
1. Participants (`participants` jsonb [{name, email, affiliation}]):
   - with an email: internal when its domain is one of the workspace's internal domains (`domains.py`:
     configured in the context layer, else inferred), external otherwise — a personal address (gmail.com ...)
     is external: a prospect using gmail. The email wins over an `affiliation` that says otherwise;
   - without an email: their `affiliation` (internal/external, any case) when present, else ignored;
   - when no internal domain is known at all (nothing configured, nothing to infer from), emails cannot be
     judged and every participant is classified by `affiliation` alone.
   Any external participant makes the meeting external, whatever its title ("Acme <> Demo Co — Weekly sync").
   All classifiable participants internal → internal.
2. Title heuristics (`INTERNAL_TITLE`, case-insensitive, in SQL): decide alone only when no participant can be
   classified — internal-sounding → internal, else external. (The original never let a title make a call
   internal and ignored participants without email; we use the title as the tie-breaker of last resort and
   say so in the reason.) When participants decide, the reason still notes an internal-sounding title.

Persisted: `is_internal` and a readable `internal_classification_reason`, e.g.
  "all 3 participants internal (democo.io); title also looks internal ('Weekly pipeline review')",
  "external participant: jane@acme.io (+2 more)", "no participant emails; title looks internal ('Sprint retro')".

An internal conversation is deliberately left unlinked: contact/account/deal are cleared, `link_details`
emptied and `link_method` = 'internal_meeting' (`linked_at` moves only when there were links to clear). A
conversation that becomes external again gets `link_method` NULL so the linker links it afresh (its id is
noted for the later steps). Rows with `link_method` 'manual' keep their links and link_method (a person
decided), but are still classified.

Incremental, also on a full pipeline run: a conversation's class depends only on the row itself (title,
participants, organizer), the internal domains and these rules. So unless the domains or the rules changed
since the filter last ran (kept in `pipeline_state` with the time it ran), only conversations written since
that run could see everything (a sync's page transaction stamps rows with its start time and may commit
after we read: the start of the oldest transaction then open in the database, else an hour before the run)
are looked at, through the (workspace_id, updated_at) index: a conversation never classified is one written
since (every write stamps updated_at; migration 0019 dropped the partial index of unclassified rows, which
made every classification a non-HOT update); otherwise every conversation is reclassified. Only rows whose
values change are written; `updated_at` is never touched; the ids of rows whose class flipped are noted for
the later steps of an incremental run (CWD), as a domain change flips rows no sync wrote.

Performance: one pass over the rows in scope; each conversation's own participants array is aggregated in place (a global
explode-and-group misleads the planner, which cannot count JSON array elements, into an on-disk sort), the
title regex runs only for conversations without an external participant, and the UPDATE joins back by ctid.
"""
from __future__ import annotations

from datetime import datetime

from functools import lru_cache

from core.pipeline import SEEN_FROM, register_step
from core.pipeline.domains import internal_domains, last_used, remember
from core.pipeline.participants import affiliation, email_key

# Bump when the classification rules change, so the next incremental run reclassifies everything.
RULES_VERSION = 1

# PostgreSQL regular expression, matched with ~* (case-insensitive). Words are bounded by explicit
# non-alphanumerics rather than \m...\M, which matches the same titles about three times faster.
INTERNAL_TITLE = (
    r"(^|[^[:alnum:]])(stand[- ]?ups?|syncs?|retros?|retrospectives?|sprints?|1 ?[:-] ?1s?|1[- ]on[- ]1s?|one[- ]on[- ]ones?"
    r"|all[- ]?hands|team (meeting|call|sync)s?|weekly|daily|dailies|planning|backlog|interviews?|onboarding"
    r"|training|off-?sites?|(pipeline|forecast|deal) (review|call|meeting)s?|qbrs?|(rev|sales|marketing)[- ]?ops)"
    r"($|[^[:alnum:]])"
)

_CLASSIFY = """
WITH target AS (
    SELECT c.id, c.ctid AS rid, c.is_internal AS was_internal, d.now_internal, d.reason,
           (c.contact_id, c.account_id, c.deal_id) IS DISTINCT FROM (NULL::uuid, NULL::uuid, NULL::uuid) AS had_links,
           c.link_method IS DISTINCT FROM 'manual' AND d.now_internal AS unlink,
           c.link_method = 'internal_meeting' AND NOT d.now_internal AS relink
      FROM conversations c
     -- Each conversation's own participants, aggregated in place (one row out per conversation): the position
     -- of the first external participant, and the internal domains seen as a bit mask over the domain list.
     -- OFFSET 0 keeps each level a subquery: flattened, every use of `internal` in the aggregates below would
     -- repeat the e-mail extraction it is built on (5x slower over 200k conversations).
     CROSS JOIN LATERAL (
           SELECT count(*) AS n,
                  count(*) FILTER (WHERE internal) AS n_int,
                  count(*) FILTER (WHERE NOT internal) AS n_ext,
                  count(*) FILTER (WHERE internal IS NULL) AS n_unknown,
                  count(*) FILTER (WHERE email IS NOT NULL) AS n_email,
                  count(*) FILTER (WHERE internal AND NOT by_domain) AS n_int_by_affiliation,
                  bit_or(1::int8 << domain_pos) FILTER (WHERE internal AND by_domain AND domain_pos < 63) AS domain_mask,
                  min(i) FILTER (WHERE NOT internal)::int - 1 AS first_ext
             FROM (SELECT *, CASE WHEN by_domain THEN domain_pos IS NOT NULL
                                  WHEN affiliation = 'internal' THEN true
                                  WHEN affiliation = 'external' THEN false END AS internal
                     FROM (SELECT *, email IS NOT NULL AND %(know_domains)s AS by_domain,
                                  array_position(%(internal_domains)s::text[], split_part(email, '@', 2)) AS domain_pos
                             FROM (SELECT i,
                                          CASE WHEN {email} LIKE '%%_@_%%' THEN {email} END AS email,
                                          {affiliation} AS affiliation
                                     FROM jsonb_array_elements(CASE jsonb_typeof(c.participants) WHEN 'array'
                                                               THEN c.participants ELSE '[]' END) WITH ORDINALITY AS e(v, i)
                                    WHERE jsonb_typeof(v) = 'object' OFFSET 0) AS x OFFSET 0) AS y OFFSET 0) AS z) AS p
     -- The title matters only when no participant is external (regular expressions are not cheap). OFFSET 0
     -- keeps these subqueries, so each is evaluated once per row rather than at every reference.
     CROSS JOIN LATERAL (SELECT p.n_ext = 0 AND COALESCE(c.title ~* %(title_re)s, false) AS title_internal OFFSET 0) AS t
     CROSS JOIN LATERAL (
           SELECT p.n_ext = 0 AND (p.n_int > 0 OR t.title_internal) AS now_internal,
                  CASE
                  WHEN p.n_ext > 0 THEN
                      'external participant: '
                      || CASE WHEN {first_ext_email} LIKE '%%_@_%%'
                              THEN {first_ext_email}
                              ELSE COALESCE(NULLIF(btrim(c.participants -> p.first_ext ->> 'name'), ''), 'a participant')
                                   || ' (no email, affiliation external)' END
                      || CASE WHEN p.n_ext > 1 THEN ' (+' || (p.n_ext - 1) || ' more)' ELSE '' END
                  WHEN p.n_int > 0 THEN
                      CASE WHEN p.n_int = 1 THEN 'the only classifiable participant is internal'
                           ELSE 'all ' || p.n_int || ' participants internal' END
                      || ' (' || concat_ws(', ', {domain_names},
                                          CASE WHEN p.n_int_by_affiliation > 0 THEN p.n_int_by_affiliation || ' by affiliation' END)
                      || ')'
                      || CASE WHEN p.n_unknown > 0 THEN '; ' || p.n_unknown || ' without email or affiliation ignored' ELSE '' END
                      || CASE WHEN t.title_internal THEN '; title also looks internal (''' || left(c.title, 80) || ''')' ELSE '' END
                  ELSE
                      CASE WHEN p.n = 0 THEN 'no participants listed'
                           WHEN p.n_email > 0 THEN 'no internal domains known and no participant affiliation'
                           ELSE 'no participant emails' END
                      || CASE WHEN t.title_internal THEN '; title looks internal (''' || left(c.title, 80) || ''')'
                              ELSE '; title does not look internal' END
                  END AS reason
           OFFSET 0) AS d
     WHERE c.workspace_id = %(workspace_id)s AND (%(full)s OR c.updated_at > %(since)s)
       AND ((c.is_internal, c.internal_classification_reason) IS DISTINCT FROM (d.now_internal, d.reason)
            OR (c.link_method IS DISTINCT FROM 'manual' AND d.now_internal
                AND (c.link_method IS DISTINCT FROM 'internal_meeting' OR c.link_details <> '{{}}'
                     OR (c.contact_id, c.account_id, c.deal_id) IS DISTINCT FROM (NULL::uuid, NULL::uuid, NULL::uuid)))
            OR (c.link_method = 'internal_meeting' AND NOT d.now_internal))
), changed AS (
    UPDATE conversations c
       SET is_internal = t.now_internal,
           internal_classification_reason = t.reason,
           contact_id = CASE WHEN t.unlink THEN NULL ELSE c.contact_id END,
           account_id = CASE WHEN t.unlink THEN NULL ELSE c.account_id END,
           deal_id = CASE WHEN t.unlink THEN NULL ELSE c.deal_id END,
           link_details = CASE WHEN t.unlink OR t.relink THEN '{{}}'::jsonb ELSE c.link_details END,
           link_method = CASE WHEN t.unlink THEN 'internal_meeting' WHEN t.relink THEN NULL ELSE c.link_method END,
           -- when the ids last changed: a meeting that never had any keeps none (linked_at is indexed, so
           -- stamping it would make the first classification of every internal meeting a non-HOT update)
           linked_at = CASE WHEN t.unlink AND t.had_links THEN now() ELSE c.linked_at END
      FROM target t
     WHERE c.workspace_id = %(workspace_id)s AND c.ctid = t.rid AND c.id = t.id
    RETURNING t.*
)
SELECT count(*) FILTER (WHERE now_internal AND was_internal IS DISTINCT FROM true) AS internal,
       count(*) FILTER (WHERE NOT now_internal AND was_internal IS DISTINCT FROM false) AS external,
       count(*) FILTER (WHERE unlink AND had_links) AS unlinked,
       count(*) FILTER (WHERE now_internal IS NOT DISTINCT FROM was_internal) AS reason,
       array_agg(id) FILTER (WHERE now_internal IS DISTINCT FROM was_internal) AS reclassified
  FROM changed
"""


def _domain_names(n: int) -> str:
    """SQL naming the internal domains whose bits are set in p.domain_mask, in list order (NULL if none)."""
    terms = [f"CASE WHEN p.domain_mask & {1 << k} <> 0 THEN (%(internal_domains)s::text[])[{k}] END"
             for k in range(1, min(n, 62) + 1)]
    return f"NULLIF(concat_ws(', ', {', '.join(terms)}), '')" if terms else "NULL"


@lru_cache(maxsize=64)
def _statement(n_domains: int) -> str:
    return _CLASSIFY.format(domain_names=_domain_names(n_domains), email=email_key("v->>'email'"),
                            affiliation=affiliation("v->>'affiliation'"),
                            first_ext_email=email_key("c.participants -> p.first_ext ->> 'email'"))


# It reads and writes conversations alone (and the context): the stage, reference and association steps touch
# neither, so it runs beside them.
@register_step("internal_filter", order=25,
               independent_of=("stage_normalization", "resolve_references", "resolve_activity_references", "associations"),
               cost=5.5)
def classify_conversations(conn, run) -> dict[str, int]:
    domains = internal_domains(conn, run)
    state = {"rules": RULES_VERSION, "internal_domains": domains}
    last = last_used(conn, run.workspace_id, "internal_filter") or {}
    seen_from = conn.execute(f"SELECT {SEEN_FROM} AS t").fetchone()["t"]
    ran_at = last.pop("ran_at", None)
    full = last != state or ran_at is None
    # An incremental pipeline run looks where every step looks (run.since); a full one from where the filter's
    # own last run could see everything (`ran_at`, despite its name, is that time).
    since = None if full else run.since or datetime.fromisoformat(ran_at)
    row = conn.execute(_statement(len(domains)), {
        **run.params, "since": since, "full": full, "internal_domains": domains, "know_domains": bool(domains),
        "title_re": INTERNAL_TITLE,
    }).fetchone()
    remember(conn, run.workspace_id, "internal_filter", {**state, "ran_at": seen_from.isoformat()})
    # Later steps of an incremental run look at these too (CWD): a domain change reclassifies rows no sync wrote.
    run.note("conversations.is_internal", row["reclassified"] or [])
    changed = {f"conversations.{k}": row[k] for k in ("internal", "external", "unlinked", "reason")}
    return {k: v for k, v in changed.items() if v}

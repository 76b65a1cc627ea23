"""Which email domains are the workspace's own: free-mail domains and the workspace's internal domains.

Shared by the internal meeting filter and the cross-entity linker (and, later, association inference), so that
"is this participant one of us?" has one answer across the pipeline.

Internal domains are `definitions.internal_domains` from the context layer when that list is non-empty.
Otherwise they are inferred, deterministically and in SQL, from the people we know work here:
  - the connected tools' user directories (`connections.metadata->'users'` and `->'tracked_users'`, arrays of
    objects with `email`, or Gong's `emailAddress`),
  - the owners of deals and accounts (`owner_email`),
  - conversation organizers (`organizer_email`: calls are synced for tracked reps, so nearly all are ours).
Each distinct address counts once, whatever the number of records it owns or organizes (a prospect who sends
200 invites is still one person). Free-mail domains never count. The inferred domains are the most common
domain plus every other domain with at least half as many addresses (a company with two domains, e.g.
democo.io and democo.co.uk); a handful of external organizers stays well below that. An empty result means
"unknown": the internal filter then falls back to participants' `affiliation`.

Domains compare exactly (lower-cased): eu.democo.io is not democo.io unless listed.

Both steps classify the whole workspace by these domains, so an incremental run is only valid while the set is
unchanged: `last_used` / `remember` keep, per step, the domains (and rules version) of its last run in
`pipeline_state`; a step seeing a different set runs in full. That table is the only thing this module writes.
"""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.context import lookup
from core.pipeline.participants import email_key

# Consumer mailbox providers: an address there says nothing about the employer. A participant using one is
# external (a prospect on gmail), and such domains are never inferred as internal nor matched to accounts.
# A list, so it can be passed straight as an array parameter (%(free_mail)s).
FREE_MAIL: list[str] = [
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "rocketmail.com",
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com", "msn.com", "icloud.com", "me.com",
    "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de",
    "mail.com", "zoho.com", "zohomail.com", "yandex.ru", "yandex.com", "mail.ru", "qq.com", "163.com",
    "126.com", "fastmail.com", "hey.com", "tutanota.com", "comcast.net", "verizon.net", "att.net",
]

# Every address we know belongs to a person working here, one row per distinct address.
_KNOWN_PEOPLE = f"""
    SELECT {email_key("COALESCE(u->>'email', u->>'emailAddress')")} AS email
      FROM connections c
     CROSS JOIN LATERAL jsonb_array_elements(
             CASE jsonb_typeof(c.metadata->'users') WHEN 'array' THEN c.metadata->'users' ELSE '[]' END
          || CASE jsonb_typeof(c.metadata->'tracked_users') WHEN 'array' THEN c.metadata->'tracked_users' ELSE '[]' END) AS u
     WHERE c.workspace_id = %(workspace_id)s AND jsonb_typeof(u) = 'object'
    UNION
    SELECT {email_key("owner_email")} FROM deals WHERE workspace_id = %(workspace_id)s AND owner_email IS NOT NULL
    UNION
    SELECT {email_key("owner_email")} FROM accounts WHERE workspace_id = %(workspace_id)s AND owner_email IS NOT NULL
    UNION
    SELECT {email_key("organizer_email")} FROM conversations
     WHERE workspace_id = %(workspace_id)s AND organizer_email IS NOT NULL
"""

# The inferred internal domains, one row each (`domain`), sorted. Usable as a CTE body; parameters:
# %(workspace_id)s and %(free_mail)s.
INFERRED_INTERNAL_DOMAINS = f"""
    WITH people AS ({_KNOWN_PEOPLE}),
    per_domain AS (
        SELECT split_part(email, '@', 2) AS domain, count(*) AS people
          FROM people
         WHERE email LIKE '%%_@_%%.%%' AND split_part(email, '@', 2) <> ALL(%(free_mail)s::text[])
         GROUP BY 1
    )
    SELECT domain FROM per_domain
     WHERE people * 2 >= (SELECT max(people) FROM per_domain)
     ORDER BY domain COLLATE "C"
"""


def configured_domains(context: dict[str, Any]) -> list[str]:
    """`definitions.internal_domains` from the context layer, cleaned (lower-case, no '@', no blanks)."""
    raw = lookup(context or {}, "definitions.internal_domains", []) or []
    if isinstance(raw, str):
        raw = raw.replace(";", ",").split(",")
    cleaned = {str(d).strip().lower().lstrip("@") for d in raw if d is not None}
    return sorted(d for d in cleaned if d)


def internal_domains(conn: psycopg.Connection, run) -> list[str]:
    """The workspace's internal domains for this run: configured if any, else inferred (see module docstring).

    Worked out once per run (kept on the run object), so the filter and the linker classify with the same set
    and the inference query, which reads every owner and organizer, runs once."""
    cached = getattr(run, "_internal_domains", None)
    if cached is None:
        cached = configured_domains(run.context)
        if not cached:
            rows = conn.execute(INFERRED_INTERNAL_DOMAINS,
                                {"workspace_id": run.workspace_id, "free_mail": list(FREE_MAIL)}).fetchall()
            cached = [r["domain"] if isinstance(r, dict) else r[0] for r in rows]
        run._internal_domains = cached
    return list(cached)


def internal_domains_cte(run) -> tuple[str, dict[str, Any]]:
    """The internal domains as a CTE body (one row per `domain`) and its parameters, for a statement that wants
    to join to them: the configured list, else the inference query. `internal_domains()` is the cached,
    evaluated form of the same thing."""
    configured = configured_domains(run.context)
    if configured:
        return "SELECT unnest(%(internal_domains)s::text[]) AS domain", {"internal_domains": configured}
    return INFERRED_INTERNAL_DOMAINS, {"workspace_id": run.workspace_id, "free_mail": list(FREE_MAIL)}


def last_used(conn: psycopg.Connection, workspace_id, step: str) -> dict[str, Any] | None:
    """What `step` recorded with `remember` on its last run (its rules version and the internal domains it
    used), or None. A step whose inputs differ from these must do a full run instead of an incremental one."""
    row = conn.execute("SELECT state FROM pipeline_state WHERE workspace_id = %(workspace_id)s AND step = %(step)s",
                       {"workspace_id": workspace_id, "step": step}).fetchone()
    return None if row is None else (row["state"] if isinstance(row, dict) else row[0])


def remember(conn: psycopg.Connection, workspace_id, step: str, state: dict[str, Any]) -> None:
    """Record `state` for `step` (in the step's own transaction, so a failed run records nothing)."""
    conn.execute(
        "INSERT INTO pipeline_state (workspace_id, step, state) VALUES (%(workspace_id)s, %(step)s, %(state)s)"
        " ON CONFLICT (workspace_id, step) DO UPDATE SET state = EXCLUDED.state, updated_at = now()"
        " WHERE pipeline_state.state IS DISTINCT FROM EXCLUDED.state",
        {"workspace_id": workspace_id, "step": step, "state": Jsonb(state)})

"""The unified sales roster: the reps tracked in every conversation connector, merged into one list.

Each conversation connector (Gong, Fireflies, any other) keeps the reps a workspace chose to track in
`connections.metadata.tracked_users` as [{id, name, email}]. The roster merges them by lower(email): one
entry per person, with every name the sources use and every (connector, user id) it is known by, so a rep
tracked in Gong and in Fireflies counts once. Users without an email cannot be merged safely (two "Dana"s may
be different people) and are listed separately, one entry per (connector, id).

Read-only, one statement; disconnected connections do not contribute. Skills use it for rep-level analysis
and the REST API serves it at GET /api/workspaces/{id}/sales-roster.
"""
from __future__ import annotations

from typing import Any

import psycopg

# Malformed entries (not objects, empty strings) are skipped rather than failing the whole roster: the
# metadata is written by several code paths and a bad element should cost that element only.
# Every tracked user of every connected source, one row each (the two queries below read the same list).
_TRACKED = """
WITH tracked AS (
    SELECT c.connector_name AS connector,
           NULLIF(btrim(u->>'id'), '') AS user_id,
           NULLIF(btrim(u->>'name'), '') AS name,
           lower(NULLIF(btrim(u->>'email'), '')) AS email,
           ord
      FROM connections c
     CROSS JOIN LATERAL jsonb_array_elements(
               CASE WHEN jsonb_typeof(c.metadata->'tracked_users') = 'array'
                    THEN c.metadata->'tracked_users' ELSE '[]'::jsonb END) WITH ORDINALITY AS t(u, ord)
     WHERE c.workspace_id = %(workspace_id)s
       AND c.status <> 'disconnected'
       AND jsonb_typeof(u) = 'object'
)"""

_ROSTER = _TRACKED + """
SELECT email,
       (array_agg(name ORDER BY connector, ord) FILTER (WHERE name IS NOT NULL))[1] AS name,
       COALESCE(array_agg(DISTINCT name) FILTER (WHERE name IS NOT NULL), '{}') AS names,
       jsonb_agg(jsonb_build_object('connector', connector, 'id', user_id, 'name', name)
                 ORDER BY connector, ord) AS sources,
       array_agg(DISTINCT connector ORDER BY connector) AS connectors
  FROM tracked
 WHERE email IS NOT NULL
 GROUP BY email
 ORDER BY lower((array_agg(name ORDER BY connector, ord) FILTER (WHERE name IS NOT NULL))[1]) NULLS LAST, email
"""

_NO_EMAIL = _TRACKED + """
SELECT connector, user_id AS id, name
  FROM tracked
 WHERE email IS NULL AND (user_id IS NOT NULL OR name IS NOT NULL)
 ORDER BY connector, ord
"""


def sales_roster(conn: psycopg.Connection, workspace_id) -> dict[str, Any]:
    """{"reps": [{email, name, names, connectors, sources: [{connector, id, name}]}], "without_email": [...],
    "total": reps + people without email}. `name` is the first name any source gives (by connector name)."""
    params = {"workspace_id": str(workspace_id)}
    reps = [dict(r) for r in conn.execute(_ROSTER, params).fetchall()]
    for r in reps:
        r["names"] = sorted(r["names"])
    without = [dict(r) for r in conn.execute(_NO_EMAIL, params).fetchall()]
    return {"reps": reps, "without_email": without, "total": len(reps) + len(without)}

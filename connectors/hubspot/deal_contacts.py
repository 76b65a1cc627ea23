"""Deal ↔ contact links from HubSpot's associations, backfilled from the raw deals we already stored.

A HubSpot deal fetched with `associations=contacts` carries them in `source_data.associations.contacts`,
either in the v3 shape {"results": [{"id": "201", "type": "deal_to_contact"}]} (v4's `toObjectId` is read
too) or as a plain list of ids ["201", 202]. `populate_deal_contacts_from_source_data` turns them into
`deal_contacts` rows in one set-based INSERT … SELECT, joined to contacts by (workspace_id, 'hubspot',
source_id), with source 'hubspot_association' and role_source 'crm_association'; existing links are kept
(ON CONFLICT DO NOTHING on the (workspace_id, deal_id, contact_id, source) key), so running it again inserts
nothing. Ids of contacts we never synced are skipped.

It never calls HubSpot, never deletes a link (a removed association stays until a sync says otherwise) and
never touches links from other sources.
"""
from __future__ import annotations

import psycopg

_POPULATE = """
INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role_source)
SELECT DISTINCT d.workspace_id, d.id, c.id, 'hubspot_association', 'crm_association'
  FROM deals d
 CROSS JOIN LATERAL (SELECT d.source_data->'associations'->'contacts' AS v) a
 CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(a.v) = 'array' THEN a.v
                WHEN jsonb_typeof(a.v) = 'object' AND jsonb_typeof(a.v->'results') = 'array' THEN a.v->'results'
                ELSE '[]'::jsonb END) AS e(item)
  JOIN contacts c
    ON c.workspace_id = d.workspace_id
   AND c.source = 'hubspot'
   AND c.source_id = CASE jsonb_typeof(e.item)
                         WHEN 'object' THEN COALESCE(e.item->>'id', e.item->>'toObjectId')
                         WHEN 'string' THEN e.item #>> '{}'
                         WHEN 'number' THEN e.item #>> '{}'
                     END
   AND c.deleted_at IS NULL
 WHERE d.workspace_id = %(workspace_id)s
   AND d.source = 'hubspot'
   AND d.deleted_at IS NULL
ON CONFLICT (workspace_id, deal_id, contact_id, source) DO NOTHING
"""


def populate_deal_contacts_from_source_data(conn: psycopg.Connection, workspace_id) -> int:
    """Insert the deal_contacts that stored HubSpot deals' associations imply; returns how many were new."""
    return conn.execute(_POPULATE, {"workspace_id": str(workspace_id)}).rowcount


# During a sync: the page's deals only, with the association label as the role; a contact no longer
# associated with one of those deals loses its hubspot_association link (links from other sources stay).
_SYNC_LINKS = """
INSERT INTO deal_contacts (workspace_id, deal_id, contact_id, source, role_source, role)
SELECT d.workspace_id, d.id, c.id, 'hubspot_association', 'crm_association', max(e.item->>'label')
  FROM deals d
 CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(d.source_data->'associations'->'contacts') = 'array'
                THEN d.source_data->'associations'->'contacts' ELSE '[]'::jsonb END) AS e(item)
  JOIN contacts c
    ON c.workspace_id = d.workspace_id AND c.source = 'hubspot' AND c.source_id = e.item->>'id'
   AND c.deleted_at IS NULL
 WHERE d.workspace_id = %(workspace_id)s AND d.source = 'hubspot' AND d.source_id = ANY(%(deal_ids)s)
   AND d.deleted_at IS NULL
 GROUP BY d.workspace_id, d.id, c.id
ON CONFLICT (workspace_id, deal_id, contact_id, source) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
 WHERE deal_contacts.role IS DISTINCT FROM EXCLUDED.role
"""

_SYNC_UNLINK = """
DELETE FROM deal_contacts dc
 USING deals d, contacts c
 WHERE dc.workspace_id = %(workspace_id)s AND dc.source = 'hubspot_association'
   AND d.workspace_id = dc.workspace_id AND d.id = dc.deal_id
   AND c.workspace_id = dc.workspace_id AND c.id = dc.contact_id
   AND d.source = 'hubspot' AND d.source_id = ANY(%(deal_ids)s)
   AND jsonb_typeof(d.source_data->'associations'->'contacts') = 'array'
   AND NOT d.source_data->'associations'->'contacts' @> jsonb_build_array(jsonb_build_object('id', c.source_id))
"""


def populate_deal_contacts_from_associations(conn: psycopg.Connection, workspace_id, deal_source_ids: list[str]) -> int:
    """Bring the deal_contacts of these HubSpot deals in line with the associations the sync just read
    (`source_data.associations.contacts` as `[{"id", "label"}]`); returns links added or changed."""
    if not deal_source_ids:
        return 0
    params = {"workspace_id": str(workspace_id), "deal_ids": list(deal_source_ids)}
    conn.execute(_SYNC_UNLINK, params)
    return conn.execute(_SYNC_LINKS, params).rowcount

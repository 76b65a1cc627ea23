-- Google Drive documents (connectors/google_drive).

-- Links to accounts and deals found by name or domain in a file's title or folder path (linking.py), recorded
-- per field like conversations' links: {"account": "name_match" | "domain_match" | "deal_name", "deal":
-- "deal_name"}. link_method is the one-word summary (the deal's method, else the account's); a row whose
-- link_method is 'manual' is never relinked, and a link the step did not make is never overwritten.
ALTER TABLE documents ADD COLUMN link_method text;
ALTER TABLE documents ADD COLUMN link_details jsonb NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN linked_at timestamptz;

-- When a full listing of the source last saw the file (the listing's start). A listing that completes
-- soft-deletes the live rows it did not see (files deleted or moved out while the change feed was unusable),
-- without rewriting the rows it did see.
ALTER TABLE documents ADD COLUMN listed_at timestamptz;

-- Conversations the internal-meeting filter has not classified yet (new rows, or all of them after a change of
-- the internal domains): few, so an incremental run finds them beside the rows written since (a bitmap OR with
-- conversations_updated) instead of reading every conversation of the workspace.
CREATE INDEX conversations_unclassified ON conversations (workspace_id) WHERE is_internal IS NULL;

-- When a sync or import last opened, closed, deleted or restored the deal: its contacts' engagement counts
-- "on an open deal", so an incremental run rescores the contacts of these deals, not of every deal a sync
-- touched (a new amount moves no contact). The stage step's own re-normalization (no updated_at) is noted
-- by the step instead. NULL: not since the deal was created.
ALTER TABLE deals ADD COLUMN open_changed_at timestamptz;

CREATE TRIGGER deals_open_changed BEFORE UPDATE ON deals FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM OLD.updated_at
          AND (NEW.deleted_at IS NULL AND COALESCE(NEW.stage_normalized NOT IN ('closed_won', 'closed_lost'), true))
              IS DISTINCT FROM
              (OLD.deleted_at IS NULL AND COALESCE(OLD.stage_normalized NOT IN ('closed_won', 'closed_lost'), true)))
    EXECUTE FUNCTION pandora_stamp_now('open_changed_at');

-- Contacts whose e-mail, company, account reference, named deals or deletion changed since a time, or that were
-- created since (core.pipeline.changed_since): a sync that retitles ten thousand contacts puts a thousand here,
-- and every step of an incremental run reads just those instead of filtering the ten thousand it updated.
-- The indexed value moves only with those changes, so other updates stay HOT.
CREATE INDEX contacts_links_changed ON contacts (workspace_id, (COALESCE(links_changed_at, created_at)));

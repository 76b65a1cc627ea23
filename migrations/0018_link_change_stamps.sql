-- When a sync or import last moved a conversation in time or deleted or restored it. Of a conversation, the
-- scores of its deal and account read its date, its deletion, its links and its internal flag, and the pipeline
-- sets the last two itself (linked_at, and what the internal filter notes); a retitled conversation, or one with
-- another person on the invite, is no reason to rescore its deal and account (core.pipeline.computed).
-- NULL: not since the conversation was created.
ALTER TABLE conversations ADD COLUMN timing_changed_at timestamptz;

CREATE TRIGGER conversations_timing_changed BEFORE UPDATE ON conversations FOR EACH ROW
    WHEN (NEW.started_at IS DISTINCT FROM OLD.started_at OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at)
    EXECUTE FUNCTION pandora_stamp_now('timing_changed_at');

-- The indexed value moves only with those changes, so the pipeline's own updates stay HOT where they can.
CREATE INDEX conversations_timing_changed ON conversations (workspace_id, (COALESCE(timing_changed_at, created_at)));

-- When a deal last moved to another account, got another creation date, or was deleted or restored, by any
-- writer, and the account it last moved away from. With open_changed_at (migration 0017) that is all the
-- linker's single-deal inference and the association inference read of a deal
-- (core.pipeline.deal_links_changed): a new amount or the next open stage relinks nothing, and the account a
-- deal left is looked at again too (it may have one deal left, or none). NULL: not since the deal was created.
ALTER TABLE deals ADD COLUMN links_changed_at timestamptz, ADD COLUMN left_account_id uuid;

CREATE FUNCTION pandora_deal_links_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.links_changed_at := now();
    IF NEW.account_id IS DISTINCT FROM OLD.account_id AND OLD.account_id IS NOT NULL THEN
        NEW.left_account_id := OLD.account_id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER deals_links_changed BEFORE UPDATE ON deals FOR EACH ROW
    WHEN (NEW.account_id IS DISTINCT FROM OLD.account_id OR NEW.source_created_at IS DISTINCT FROM OLD.source_created_at
          OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at)
    EXECUTE FUNCTION pandora_deal_links_changed();

-- The participant lists a conversation had since the pipeline's last run saw it, oldest first, when a write
-- changed its participants since (NULL: not changed since). An engagement score moves only for the people whose
-- presence varied across those lists and the current one (who joined or left, also and again), so an
-- incremental run rescores those (core.pipeline.computed, contact_scope), not everyone on a rescheduled invite.
ALTER TABLE conversations ADD COLUMN seen_participants jsonb;

CREATE FUNCTION pandora_keep_seen_participants() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    before jsonb := jsonb_build_array(CASE jsonb_typeof(OLD.participants) WHEN 'array' THEN OLD.participants
                                           ELSE '[]'::jsonb END);
BEGIN
    IF OLD.updated_at > (SELECT COALESCE(w.pipeline_seen_from, w.pipeline_ran_at) FROM workspaces w
                          WHERE w.id = NEW.workspace_id) THEN
        NEW.seen_participants := COALESCE(OLD.seen_participants, '[]'::jsonb) || before;  -- written since: add
    ELSE
        NEW.seen_participants := before;  -- what the last run saw
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER conversations_seen_participants BEFORE UPDATE ON conversations FOR EACH ROW
    WHEN (NEW.participants IS DISTINCT FROM OLD.participants)
    EXECUTE FUNCTION pandora_keep_seen_participants();

-- Rows a sync wrote since a workspace's last pipeline run, before these stamps existed: the next incremental
-- run cannot tell what changed in them, so it takes them as changed in every way (dates, links, everyone on the
-- invite as having joined). No updated_at moves.
UPDATE conversations c SET timing_changed_at = c.updated_at, seen_participants = '[[]]'::jsonb
  FROM workspaces w
 WHERE c.workspace_id = w.id AND c.updated_at > COALESCE(w.pipeline_seen_from, w.pipeline_ran_at);
UPDATE deals d SET links_changed_at = d.updated_at
  FROM workspaces w
 WHERE d.workspace_id = w.id AND d.updated_at > COALESCE(w.pipeline_seen_from, w.pipeline_ran_at);

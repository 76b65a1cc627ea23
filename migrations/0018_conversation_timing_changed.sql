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

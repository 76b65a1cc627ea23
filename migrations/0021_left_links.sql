-- The deal, contact and account a scored touch (activity, call, conversation) last moved away from, by any
-- writer: a sync re-pointing an activity, the reference step, the linker, the internal filter unlinking a
-- meeting. Those lose a touch, so their scores move (last activity, counts, CWD calls), but an incremental run
-- finds rows by what they are linked to now; with these it rescores the previous ones too
-- (core.pipeline.computed, core.pipeline.cwd), as deals.left_account_id (migration 0018) does for a deal's
-- account. Per column: an id that did not move keeps its last departure. NULL: never moved away from one.
-- Written only when an id moves (the update is then not heap-only anyway: the ids are indexed), never indexed.
ALTER TABLE activities ADD COLUMN left_deal_id uuid, ADD COLUMN left_contact_id uuid, ADD COLUMN left_account_id uuid;
ALTER TABLE calls ADD COLUMN left_deal_id uuid, ADD COLUMN left_contact_id uuid, ADD COLUMN left_account_id uuid;
ALTER TABLE conversations ADD COLUMN left_deal_id uuid, ADD COLUMN left_contact_id uuid, ADD COLUMN left_account_id uuid;

CREATE FUNCTION pandora_keep_left_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deal_id IS NOT NULL AND NEW.deal_id IS DISTINCT FROM OLD.deal_id THEN
        NEW.left_deal_id := OLD.deal_id;
    END IF;
    IF OLD.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id THEN
        NEW.left_contact_id := OLD.contact_id;
    END IF;
    IF OLD.account_id IS NOT NULL AND NEW.account_id IS DISTINCT FROM OLD.account_id THEN
        NEW.left_account_id := OLD.account_id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER activities_left_links BEFORE UPDATE ON activities FOR EACH ROW
    WHEN ((OLD.deal_id IS NOT NULL AND NEW.deal_id IS DISTINCT FROM OLD.deal_id)
          OR (OLD.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
          OR (OLD.account_id IS NOT NULL AND NEW.account_id IS DISTINCT FROM OLD.account_id))
    EXECUTE FUNCTION pandora_keep_left_links();
CREATE TRIGGER calls_left_links BEFORE UPDATE ON calls FOR EACH ROW
    WHEN ((OLD.deal_id IS NOT NULL AND NEW.deal_id IS DISTINCT FROM OLD.deal_id)
          OR (OLD.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
          OR (OLD.account_id IS NOT NULL AND NEW.account_id IS DISTINCT FROM OLD.account_id))
    EXECUTE FUNCTION pandora_keep_left_links();
CREATE TRIGGER conversations_left_links BEFORE UPDATE ON conversations FOR EACH ROW
    WHEN ((OLD.deal_id IS NOT NULL AND NEW.deal_id IS DISTINCT FROM OLD.deal_id)
          OR (OLD.contact_id IS NOT NULL AND NEW.contact_id IS DISTINCT FROM OLD.contact_id)
          OR (OLD.account_id IS NOT NULL AND NEW.account_id IS DISTINCT FROM OLD.account_id))
    EXECUTE FUNCTION pandora_keep_left_links();

-- When a write last changed what the post-sync pipeline reads of a contact: its e-mail (linker, engagement), the
-- company name and account reference (association inference, resolve_references), the deals it names
-- (custom_fields.associated_deals) and whether it is deleted. NULL: not since the row was created (created_at).
-- An incremental pipeline run takes a contact into its scope only when this moved since the previous run, so a
-- sync that rewrites titles, phones or lifecycle stages of ten thousand contacts does not send each step
-- after their conversations. The pipeline's own writes (account_id, scores) never move it.
ALTER TABLE contacts ADD COLUMN links_changed_at timestamptz;

-- Sets the column the trigger names to now(): the writing transaction's start, as in updated_at, which is what
-- SEEN_FROM accounts for. One function for every such change stamp.
CREATE FUNCTION pandora_stamp_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], now()));
    RETURN NEW;
END $$;

-- The WHEN clause is evaluated without calling the function: updates that leave these columns alone (every
-- pipeline write, most syncs) cost one row comparison.
CREATE TRIGGER contacts_links_changed BEFORE UPDATE ON contacts FOR EACH ROW
    WHEN ((NEW.email, NEW.company_name, NEW.account_source_id, NEW.custom_fields -> 'associated_deals', NEW.deleted_at)
          IS DISTINCT FROM (OLD.email, OLD.company_name, OLD.account_source_id, OLD.custom_fields -> 'associated_deals',
                            OLD.deleted_at))
    EXECUTE FUNCTION pandora_stamp_now('links_changed_at');

-- deal_contacts' two foreign keys become delete triggers. A foreign key checks every inserted row on its own: it
-- looks the deal and the contact up and locks each (a tuple lock written to the contact's page and the WAL), and
-- the single-deal inference's first run over a large workspace inserts ~270k rows: the checks were half the
-- step (3.6 of 7.4 s on the bench workspace). Every writer of deal_contacts (the inference, explicit deal names,
-- HubSpot associations, Salesforce contact roles, imports) selects the deal and the contact it links from their
-- tables in the same statement, so what the keys still did was cascade hard deletes: import rollbacks, a
-- Salesforce merge's loser, a workspace's deletion (which cascades through its contacts and deals). The triggers
-- do that, once per statement from the deleted rows as a set, like the other link columns' cleanup
-- (core.pipeline.references.clear_dangling_references) and participant_emails (migration 0024).
ALTER TABLE deal_contacts DROP CONSTRAINT deal_contacts_workspace_id_deal_id_fkey,
                          DROP CONSTRAINT deal_contacts_workspace_id_contact_id_fkey;

-- Through the (workspace_id, deal_id, contact_id, source) key and the deal_contacts_contact index.
CREATE FUNCTION pandora_drop_deal_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'deals' THEN
        DELETE FROM deal_contacts dc USING deleted d WHERE dc.workspace_id = d.workspace_id AND dc.deal_id = d.id;
    ELSE
        DELETE FROM deal_contacts dc USING deleted c WHERE dc.workspace_id = c.workspace_id AND dc.contact_id = c.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deals_drop_deal_contacts AFTER DELETE ON deals REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION pandora_drop_deal_contacts();
CREATE TRIGGER contacts_drop_deal_contacts AFTER DELETE ON contacts REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION pandora_drop_deal_contacts();

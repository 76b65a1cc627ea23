-- The reverse lookups of migrations 0012 and 0023 were GIN expression indexes, and an index on a table takes a
-- new entry for every new version of a row, whatever changed. The linker's first run gives ~160k conversations
-- a new version each (their links), and re-inserting their participants' e-mails into the GIN index was a
-- quarter of the step (~2.7 s of ~12); rows with nothing to find were "empty item" entries all the same.

-- E-mails: a table of their own, kept by triggers from what `pandora_participant_emails` lists (e-mails of the
-- participants not marked internal, lower-cased), written only when a row is inserted, deleted or its
-- participants change, so relinking a row costs it nothing. One table for both entities (`entity` is the table
-- name); the key serves the lookup (core/pipeline/lookups.py) and the removal of a row's e-mails. No foreign key:
-- the triggers remove a deleted row's e-mails (a workspace's deletion cascades through its rows' deletes), and a
-- key check on every insert is the cost of a write path this exists to keep cheap.
CREATE TABLE participant_emails (
    workspace_id uuid NOT NULL,
    entity       text NOT NULL CHECK (entity IN ('conversations', 'activities')),
    email        text NOT NULL,
    row_id       uuid NOT NULL,
    PRIMARY KEY (workspace_id, entity, email, row_id)
);

-- Inserted rows, one statement at a time (a COPY of a page of rows is one statement: set-based).
CREATE FUNCTION pandora_add_participant_emails() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO participant_emails (workspace_id, entity, email, row_id)
    SELECT n.workspace_id, TG_TABLE_NAME, e.email, n.id
      FROM inserted n
     CROSS JOIN LATERAL (SELECT DISTINCT jsonb_array_elements_text(pandora_participant_emails(n.participants)) AS email) e
     WHERE jsonb_typeof(n.participants) = 'array';
    RETURN NULL;
END $$;

-- Deleted rows, one statement at a time (import rollbacks, a workspace's deletion).
CREATE FUNCTION pandora_drop_participant_emails() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM participant_emails p
     USING (SELECT o.workspace_id, o.id, jsonb_array_elements_text(pandora_participant_emails(o.participants)) AS email
              FROM deleted o WHERE jsonb_typeof(o.participants) = 'array') AS o
     WHERE p.workspace_id = o.workspace_id AND p.entity = TG_TABLE_NAME AND p.email = o.email AND p.row_id = o.id;
    RETURN NULL;
END $$;

-- A row whose participants changed (rare: a re-synced invite). Per row, so that an UPDATE of anything else (the
-- pipeline's links, scores, classification) never fires it: a trigger reading the updated rows as a set
-- (transition tables) may not name columns, so it would copy every relinked row to read none of them.
CREATE FUNCTION pandora_move_participant_emails() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM participant_emails
     WHERE workspace_id = OLD.workspace_id AND entity = TG_TABLE_NAME AND row_id = OLD.id
       AND email IN (SELECT jsonb_array_elements_text(pandora_participant_emails(OLD.participants))
                      WHERE jsonb_typeof(OLD.participants) = 'array');
    INSERT INTO participant_emails (workspace_id, entity, email, row_id)
    SELECT DISTINCT NEW.workspace_id, TG_TABLE_NAME, jsonb_array_elements_text(pandora_participant_emails(NEW.participants)), NEW.id
     WHERE jsonb_typeof(NEW.participants) = 'array';
    RETURN NULL;
END $$;

-- The same three triggers on both tables, and what their rows already list.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'activities'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS inserted'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION pandora_add_participant_emails()', t || '_emails_added', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS deleted'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION pandora_drop_participant_emails()', t || '_emails_dropped', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF participants ON %I FOR EACH ROW'
                       ' WHEN (NEW.participants IS DISTINCT FROM OLD.participants)'
                       ' EXECUTE FUNCTION pandora_move_participant_emails()', t || '_emails_moved', t);
        EXECUTE format('INSERT INTO participant_emails (workspace_id, entity, email, row_id)'
                       ' SELECT DISTINCT r.workspace_id, %L, jsonb_array_elements_text(pandora_participant_emails(r.participants)), r.id'
                       ' FROM %I r WHERE jsonb_typeof(r.participants) = %L', t, t, 'array');
    END LOOP;
END $$;
DROP INDEX conversations_participant_emails, activities_participant_emails;

-- CRM ids stay in GIN indexes (few rows have any; their relinks are few), now holding only the rows that have one
-- of the keys pandora_crm_ref_ids reads ids under: most rows have none, and each was an empty-item entry written
-- again by every relink. The lookup states the same condition, which is how the planner knows it may use them.
DROP INDEX conversations_crm_refs, activities_crm_refs;
CREATE INDEX conversations_crm_refs ON conversations USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off)
    WHERE source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations'];
CREATE INDEX activities_crm_refs ON activities USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off)
    WHERE source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations'];

-- The reverse-lookup GIN indexes (migrations 0012, 0023) held an entry for every row, and a row with nothing to
-- look up (no external participant e-mail; none of the keys CRM ids are read from) is an "empty item" entry all
-- the same, written again for every new version of the row. Most rows are such rows: CRM e-mails and tasks list
-- no participants, and only calls a CRM context came with name CRM records (a quarter of Gong's). The linker's
-- first run gives ~150k conversations without CRM ids a new version each (their links), and each was one more
-- insertion into the CRM-id index, ~1.5 s of the step. The indexes now hold only rows with something to find;
-- the lookup (core/pipeline/lookups.py) states the same condition, which is how the planner knows it may use them.
DROP INDEX conversations_participant_emails, activities_participant_emails, conversations_crm_refs, activities_crm_refs;

CREATE INDEX conversations_participant_emails ON conversations USING gin (pandora_participant_emails(participants))
    WITH (fastupdate = off) WHERE pandora_participant_emails(participants) <> '[]'::jsonb;
CREATE INDEX activities_participant_emails ON activities USING gin (pandora_participant_emails(participants))
    WITH (fastupdate = off) WHERE pandora_participant_emails(participants) <> '[]'::jsonb;
-- The keys pandora_crm_ref_ids reads ids under: a row with none of them has none.
CREATE INDEX conversations_crm_refs ON conversations USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off)
    WHERE source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations'];
CREATE INDEX activities_crm_refs ON activities USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off)
    WHERE source_data ?| ARRAY['crm_context', 'AccountId', 'WhoId', 'WhatId', 'context', 'parties', 'associations'];

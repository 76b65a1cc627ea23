-- Reverse lookups for incremental post-sync runs: "which calls list this e-mail address" and "which calls name
-- this CRM record" are questions about elements of JSON arrays, which no btree answers. Two IMMUTABLE
-- extraction functions and a GIN index on each let an incremental run find those rows among millions by
-- index (`pandora_participant_emails(participants) ?| ARRAY[...]`). The functions are supersets of what the
-- linker reads (every participant e-mail, every CRM id in the known places); the linker filters after.

-- Both are single expressions of built-in C functions, so the planner inlines them and an index recheck or a
-- filter costs microseconds a row. E-mails are lower-cased (the whole JSON text is: only e-mails are read);
-- surrounding spaces are not trimmed, so " bob@x.io" is not found this way (the full daily run still links it).
CREATE FUNCTION pandora_participant_emails(participants jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN jsonb_path_query_array(lower(participants::text)::jsonb, 'lax $[*].email ? (@.type() == "string")');

-- Every CRM id in the places the linker reads (crm_context, Salesforce AccountId/WhoId/WhatId, Gong context
-- objects of the call and of its parties, HubSpot association lists in their v3/v4 shapes), as strings.
CREATE FUNCTION pandora_crm_ref_ids(source_data jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN jsonb_path_query_array(source_data, 'lax $.crm_context.* ? (@.type() == "string" || @.type() == "number").string()')
    || jsonb_path_query_array(source_data, 'lax $.AccountId ? (@.type() == "string")')
    || jsonb_path_query_array(source_data, 'lax $.WhoId ? (@.type() == "string")')
    || jsonb_path_query_array(source_data, 'lax $.WhatId ? (@.type() == "string")')
    || jsonb_path_query_array(source_data, 'lax $.context[*].objects[*].objectId ? (@.type() == "string" || @.type() == "number").string()')
    || jsonb_path_query_array(source_data, 'lax $.parties[*].context[*].objects[*].objectId ? (@.type() == "string" || @.type() == "number").string()')
    || jsonb_path_query_array(source_data, 'lax $.associations.*[*] ? (@.type() == "string" || @.type() == "number").string()')
    || jsonb_path_query_array(source_data, 'lax $.associations.*.results[*].id ? (@.type() == "string" || @.type() == "number").string()')
    || jsonb_path_query_array(source_data, 'lax $.associations.*.results[*].toObjectId ? (@.type() == "string" || @.type() == "number").string()');

-- fastupdate off: a pending list makes every lookup scan it against all its keys, and an incremental run asks
-- with thousands of keys, so lookups slowed down sync after sync until a vacuum merged the list.
CREATE INDEX conversations_participant_emails ON conversations USING gin (pandora_participant_emails(participants))
    WITH (fastupdate = off);
CREATE INDEX activities_participant_emails ON activities USING gin (pandora_participant_emails(participants))
    WITH (fastupdate = off);
CREATE INDEX conversations_crm_refs ON conversations USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off);
CREATE INDEX activities_crm_refs ON activities USING gin (pandora_crm_ref_ids(source_data)) WITH (fastupdate = off);
-- Rows linked to a contact, found when that contact changes (activities already have activities_contact).
CREATE INDEX conversations_contact ON conversations (workspace_id, contact_id);

-- A row's source reference can be filled by inference before its target arrives (a contact linked to an
-- account by its e-mail domain while the CRM's account is not synced yet); when the target does arrive, the
-- reference resolver finds the rows pointing at it through these indexes instead of scanning the table.
CREATE INDEX contacts_account_source ON contacts (workspace_id, account_source_id) WHERE account_source_id IS NOT NULL;
CREATE INDEX deals_account_source ON deals (workspace_id, account_source_id) WHERE account_source_id IS NOT NULL;
CREATE INDEX activities_account_source ON activities (workspace_id, account_source_id) WHERE account_source_id IS NOT NULL;
CREATE INDEX activities_contact_source ON activities (workspace_id, contact_source_id) WHERE contact_source_id IS NOT NULL;
CREATE INDEX activities_deal_source ON activities (workspace_id, deal_source_id) WHERE deal_source_id IS NOT NULL;

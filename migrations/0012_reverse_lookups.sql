-- Reverse lookups for incremental post-sync runs: "which calls list this e-mail address" and "which calls name
-- this CRM record" are questions about elements of JSON arrays, which no btree answers. Two IMMUTABLE
-- extraction functions and a GIN index on each let an incremental run find those rows among millions by
-- index (`pandora_participant_emails(participants) && ARRAY[...]`). The functions are supersets of what the
-- linker reads (every participant e-mail, every CRM id in the known places); the linker filters after.

CREATE FUNCTION pandora_participant_emails(participants jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(array_agg(DISTINCT e) FILTER (WHERE e LIKE '%_@_%'), '{}')
      FROM (SELECT lower(btrim(p->>'email')) AS e
              FROM jsonb_array_elements(CASE jsonb_typeof(participants) WHEN 'array' THEN participants
                                             ELSE '[]'::jsonb END) AS p) AS x
$$;

CREATE FUNCTION pandora_crm_ref_ids(source_data jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(array_agg(DISTINCT v) FILTER (WHERE v IS NOT NULL AND v <> ''), '{}')
      FROM (SELECT unnest(ARRAY[source_data #>> '{crm_context,account_source_id}',
                                source_data #>> '{crm_context,deal_source_id}',
                                source_data #>> '{crm_context,contact_source_id}',
                                source_data->>'AccountId', source_data->>'WhoId', source_data->>'WhatId']) AS v
            UNION ALL
            SELECT jsonb_array_elements_text(jsonb_path_query_array(source_data, 'lax $.context[*].objects[*].objectId')
                   || jsonb_path_query_array(source_data, 'lax $.parties[*].context[*].objects[*].objectId')
                   || jsonb_path_query_array(source_data, 'lax $.associations.*[*] ? (@.type() == "string" || @.type() == "number")')
                   || jsonb_path_query_array(source_data, 'lax $.associations.*.results[*].id'))
             WHERE source_data ?| ARRAY['context', 'parties', 'associations']) AS x
$$;

CREATE INDEX conversations_participant_emails ON conversations USING gin (pandora_participant_emails(participants));
CREATE INDEX activities_participant_emails ON activities USING gin (pandora_participant_emails(participants));
CREATE INDEX conversations_crm_refs ON conversations USING gin (pandora_crm_ref_ids(source_data));
CREATE INDEX activities_crm_refs ON activities USING gin (pandora_crm_ref_ids(source_data));
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

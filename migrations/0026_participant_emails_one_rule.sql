-- One rule for "a participant whose e-mail counts", for every reader of participants' e-mails: the linker's
-- e-mail tier and the engagement of the people on a call read the JSON (lower(affiliation) is not 'internal':
-- Gong writes "Internal"), and the lookups of the rows listing an e-mail (incremental runs) read participant_emails
-- (migration 0024), which this function fills. It ignored only the lower-case spelling, and also every participant
-- whose affiliation is there but not a string (a number, an array: a comparison of those is unknown, and the
-- filter drops unknowns), so an incremental run never relinked a call for such a participant's e-mail, which a
-- full run then linked. Now it ignores a string affiliation that is "internal" in any case, nothing else: the
-- readers' rule exactly.
CREATE OR REPLACE FUNCTION pandora_participant_emails(participants jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(jsonb_path_query_array(participants,
    'lax $[*] ? (!(@.affiliation.type() == "string" && @.affiliation like_regex "^internal$" flag "i"))'
    '.email ? (@.type() == "string")')::text)::jsonb;

-- What the table holds to match, for the rows where the two definitions differ: writers wait meanwhile (the
-- triggers write with the new definition once they go on).
LOCK TABLE conversations, activities IN SHARE MODE;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'activities'] LOOP
        -- Listed before, not now: a participant whose affiliation is "internal" in another case.
        EXECUTE format('DELETE FROM participant_emails p USING %I r'
                       ' WHERE p.workspace_id = r.workspace_id AND p.entity = %L AND p.row_id = r.id'
                       '   AND jsonb_typeof(r.participants) = %L AND r.participants @? %L'
                       '   AND NOT pandora_participant_emails(r.participants) ? p.email',
                       t, t, 'array', 'lax $[*].affiliation ? (@ like_regex "^internal$" flag "i" && @ != "internal")');
        -- Listed now, not before: a participant whose affiliation is there but not a string.
        EXECUTE format('INSERT INTO participant_emails (workspace_id, entity, email, row_id)'
                       ' SELECT DISTINCT r.workspace_id, %L, e.email, r.id FROM %I r'
                       ' CROSS JOIN LATERAL jsonb_array_elements_text(pandora_participant_emails(r.participants)) AS e(email)'
                       ' WHERE jsonb_typeof(r.participants) = %L AND r.participants @? %L'
                       ' ON CONFLICT DO NOTHING',
                       t, t, 'array', 'lax $[*] ? (exists(@.affiliation) && @.affiliation.type() != "string")');
    END LOOP;
END $$;

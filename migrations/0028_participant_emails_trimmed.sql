-- Participants' e-mails compare with the spaces around them dropped, and an affiliation is "internal" in any case
-- and spacing (core/pipeline/participants.py): the linker matched " Amy@Acme.io " to amy@acme.io on a full run,
-- while this function listed " amy@acme.io " (lower-cased only), so the incremental run's lookup of the rows
-- listing a changed contact's e-mail missed that row and the two runs disagreed. The list is trimmed element by
-- element only when its text shows a space inside a quote (never, from the sources we know): the write path's
-- triggers call this for every row written. (PL/pgSQL to hold the text in a variable: the same in SQL reads the
-- participants twice or goes through a subquery; over 200k conversations 0.85 or 0.6 s, against 0.42 s here and
-- 0.33 s for the definition before.)
CREATE OR REPLACE FUNCTION pandora_participant_emails(participants jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    listed text := lower(jsonb_path_query_array(participants,
        'lax $[*] ? (!(@.affiliation.type() == "string" && @.affiliation like_regex "^ *internal *$" flag "i"))'
        '.email ? (@.type() == "string")')::text);
BEGIN
    IF listed LIKE '[" %' OR listed LIKE '%, " %' OR listed LIKE '% ", %' OR listed LIKE '% "]' THEN
        RETURN (SELECT coalesce(jsonb_agg(btrim(e)), '[]'::jsonb) FROM jsonb_array_elements_text(listed::jsonb) AS e);
    END IF;
    RETURN listed::jsonb;
END $$;

-- What the table holds for the rows the two definitions differ on (a participant with an e-mail or affiliation
-- spaced around): their entries as the triggers write them now. Writers wait meanwhile.
LOCK TABLE conversations, activities IN SHARE MODE;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'activities'] LOOP
        EXECUTE format('CREATE TEMP TABLE spaced ON COMMIT DROP AS SELECT workspace_id, id, participants FROM %I'
                       ' WHERE jsonb_typeof(participants) = %L AND participants @? %L',
                       t, 'array', 'lax $[*] ? (@.email like_regex "^ | $" || @.affiliation like_regex "^ | $")');
        DELETE FROM participant_emails p USING spaced s
         WHERE p.workspace_id = s.workspace_id AND p.entity = t AND p.row_id = s.id;
        INSERT INTO participant_emails (workspace_id, entity, email, row_id)
        SELECT DISTINCT s.workspace_id, t, e.email, s.id
          FROM spaced s CROSS JOIN LATERAL jsonb_array_elements_text(pandora_participant_emails(s.participants)) AS e(email);
        DROP TABLE spaced;
    END LOOP;
END $$;

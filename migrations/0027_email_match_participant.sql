-- The linker records the participant an e-mail match was made on (`link_details.contact_email`, as the source
-- spelt it) and decides the contact again once a sync writes the row without that participant
-- (core/pipeline/linker.py). Rows matched before this: the first participant whose e-mail is their contact's,
-- where one is on the row; where none is (the contact's own e-mail changed since), nothing is recorded and the
-- contact stays as it was. Heap-only updates: link_details is not indexed.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'activities'] LOOP
        EXECUTE format($u$
            UPDATE %1$I r
               SET link_details = r.link_details || jsonb_build_object('contact_email', m.email)
              FROM (SELECT x.workspace_id, x.id, (SELECT p.v->'email'
                                                    FROM jsonb_array_elements(x.participants) WITH ORDINALITY AS p(v, n)
                                                   WHERE lower(btrim(p.v->>'email')) = lower(btrim(c.email))
                                                   ORDER BY p.n LIMIT 1) AS email
                      FROM %1$I x
                      JOIN contacts c ON c.workspace_id = x.workspace_id AND c.id = x.contact_id
                     WHERE x.link_details->>'contact' = 'email_match' AND NOT x.link_details ? 'contact_email'
                       AND jsonb_typeof(x.participants) = 'array') AS m
             WHERE r.workspace_id = m.workspace_id AND r.id = m.id AND m.email IS NOT NULL$u$, t);
    END LOOP;
END $$;

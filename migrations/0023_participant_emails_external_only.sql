-- The reverse lookup of e-mails (migration 0012) serves the linker's e-mail tier and the engagement of the
-- people on a call, and both ignore a participant marked "affiliation": "internal": a company's own reps, who
-- are on nearly every call. Their addresses were four in ten of the index's keys, each one more entry to write
-- whenever a conversation is written or relinked. The function now lists the other participants' e-mails (still
-- a superset of what either reader reads: they also drop "Internal", internal domains, ...), and lower-cases only
-- the e-mails it extracts instead of the whole participant list (twice as fast). A participant's "Email" key in
-- another case is no longer listed: no reader reads one.
CREATE OR REPLACE FUNCTION pandora_participant_emails(participants jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(jsonb_path_query_array(participants,
                                    'lax $[*] ? (!(@.affiliation == "internal")).email ? (@.type() == "string")')::text)::jsonb;

REINDEX INDEX conversations_participant_emails;
REINDEX INDEX activities_participant_emails;

-- File import support: what each applied batch wrote (for conflict-aware rollback) and the company-name
-- normalisation used by association inference, in SQL so linking stays set-based and indexable.

ALTER TABLE import_batch_changes ADD COLUMN written_hash text;
ALTER TABLE import_batches ADD COLUMN stored_path text;      -- our copy of the file, re-read by apply
ALTER TABLE import_batches ADD COLUMN options jsonb NOT NULL DEFAULT '{}';  -- entity/sheet/overrides asked for

-- "Acme, Inc." / "ACME Inc" / "Acme" -> "acme": lower-case, & -> and, punctuation to spaces, whole-word legal
-- and corporate suffixes dropped anywhere, spaces collapsed. Must agree with
-- connectors.file_import.values.normalize_company_name (a test checks).
CREATE FUNCTION pandora_normalize_company(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS $$
  SELECT NULLIF(btrim(regexp_replace(regexp_replace(
           regexp_replace(replace(lower(name), '&', ' and '), '[^[:alnum:]]+', ' ', 'g'),
           '\m(inc|incorporated|llc|ltd|limited|corp|corporation|co|company|group|holdings|technologies|tech|solutions|services|gmbh|ag|sa|sas|bv|nv|plc|pty|srl|oy|ab|kk)\M',
           ' ', 'g'), '\s+', ' ', 'g')), '')
$$;

CREATE INDEX accounts_normalized_name ON accounts (workspace_id, pandora_normalize_company(name));
CREATE INDEX deals_name ON deals (workspace_id, lower(name));

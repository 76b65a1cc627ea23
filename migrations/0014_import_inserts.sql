-- The rows an import batch inserted, one row per page of the apply (and source): arrays of the source ids and
-- of the digests written, instead of one import_batch_changes row per inserted record. A 100k-row first
-- import wrote 100k change rows and their primary-key entries, a third of the apply's time, for facts only
-- rollback reads; and recording by key lets the upsert leave the ids to the table's default.
-- Updated rows keep their per-row change (with the prior image) in import_batch_changes; a row the batch
-- inserted and a later line of the same file updated gets an import_batch_changes row with action 'inserted'
-- (prior NULL) whose written_hash supersedes the one here.
CREATE TABLE import_batch_inserts (
    workspace_id   uuid NOT NULL,
    batch_id       uuid NOT NULL,
    entity         text NOT NULL,
    page           integer NOT NULL,
    source         text NOT NULL,
    source_ids     text[] NOT NULL,
    written_hashes text[] NOT NULL,
    PRIMARY KEY (workspace_id, batch_id, entity, page, source),
    FOREIGN KEY (workspace_id, batch_id) REFERENCES import_batches (workspace_id, id) ON DELETE CASCADE,
    CHECK (cardinality(source_ids) = cardinality(written_hashes))
);
-- Digests do not compress: store them out of line as they are, without trying.
ALTER TABLE import_batch_inserts ALTER COLUMN source_ids SET STORAGE EXTERNAL;
ALTER TABLE import_batch_inserts ALTER COLUMN written_hashes SET STORAGE EXTERNAL;

-- The CWD step (core/pipeline/cwd.py) writes its verdict on tens of thousands of conversations after a first
-- sync, and `conversations_cwd` (migration 0007) had that verdict in its predicate, so every one of those writes
-- was a new entry in each of the table's twelve indexes (two of them GIN: ~100 µs a row here, against ~20 µs for
-- a heap-only update on the room migration 0019 leaves). The same index now covers every conversation a CWD can
-- be: one linked to an account and to no deal. The linker owns those two columns (its writes are in the indexes
-- anyway); the CWD step's three columns are in none, so its updates stay heap-only. Readers say
-- `account_id IS NOT NULL AND deal_id IS NULL` beside `cwd_severity IS NOT NULL` to use it.
DROP INDEX conversations_cwd;
CREATE INDEX conversations_cwd ON conversations (workspace_id, started_at DESC)
    WHERE account_id IS NOT NULL AND deal_id IS NULL;

-- From when the last post-sync pipeline run could see every row: the start of the oldest transaction then open
-- in the database, when that is earlier than the run (rows carry their transaction's start time in updated_at
-- and may commit after the run read). The next incremental run looks at rows written after it; pipeline_ran_at
-- stays the time the run started, as shown to users.
ALTER TABLE workspaces ADD COLUMN pipeline_seen_from timestamptz;

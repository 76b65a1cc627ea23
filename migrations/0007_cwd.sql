-- Conversations without deals (core/pipeline/cwd.py): the CWD step's verdict, persisted per conversation so the
-- query function (REST endpoint, data-quality audit) only reads. All three are NULL unless the conversation is
-- a CWD as of the last pipeline run; only that step writes them (never a connector or the upsert path), and
-- writing them never moves updated_at.
ALTER TABLE conversations
    ADD COLUMN cwd_severity  text CHECK (cwd_severity IN ('high', 'medium', 'low')),
    ADD COLUMN cwd_cause     text CHECK (cwd_cause IN ('deal_not_linked', 'deal_not_created', 'early_stage',
                                                       'disqualified_not_logged', 'unknown')),
    ADD COLUMN cwd_call_type text CHECK (cwd_call_type IN ('intro_demo', 'follow_up', 'review', 'other')),
    ADD CONSTRAINT conversations_cwd_all_or_none
        CHECK (num_nulls(cwd_severity, cwd_cause, cwd_call_type) IN (0, 3));

-- Flagged rows only (a few percent of conversations): the query function's scan, ordered by recency, and the
-- step's pass that clears flags which no longer hold.
CREATE INDEX conversations_cwd ON conversations (workspace_id, started_at DESC) WHERE cwd_severity IS NOT NULL;

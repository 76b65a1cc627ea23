-- When the last complete post-sync pipeline run ended. The pipeline's own stamps (linked_at; the deal_contacts
-- links the association steps write) older than this were written by runs that completed, whose later steps
-- already followed them: the next incremental run looks only at those written after it. Without it, that run
-- took every link a full run had made (linked_at after the full run's start, pipeline_seen_from) for a change,
-- and rescored most of the workspace again (30 s instead of 1 on bench/pipeline.py's workspace).
ALTER TABLE workspaces ADD COLUMN pipeline_done_at timestamptz;

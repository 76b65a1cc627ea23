-- Post-sync pipeline bookkeeping: when it last ran per workspace (incremental runs look at rows changed since).
ALTER TABLE workspaces ADD COLUMN pipeline_ran_at timestamptz;

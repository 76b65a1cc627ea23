-- The soft-deleted accounts, contacts and deals of a workspace, which the linker looks up on every run (a link to
-- one of them is no link: core/pipeline/linker.py). Few rows, so small indexes; without them that lookup read
-- every contact of the workspace. Only a deletion or a restore moves a row in or out of them.
CREATE INDEX accounts_deleted ON accounts (workspace_id) WHERE deleted_at IS NOT NULL;
CREATE INDEX contacts_deleted ON contacts (workspace_id) WHERE deleted_at IS NOT NULL;
CREATE INDEX deals_deleted ON deals (workspace_id) WHERE deleted_at IS NOT NULL;

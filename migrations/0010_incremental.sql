-- Indexes that let an incremental post-sync run (core/pipeline, run.since set) find what changed without
-- reading whole tables. updated_at moves only when a sync or import changed a row (inserts set it too), so
-- "updated_at > since" is every row a sync touched; linked_at moves when the linker relinks a row.
CREATE INDEX accounts_updated ON accounts (workspace_id, updated_at);
CREATE INDEX contacts_updated ON contacts (workspace_id, updated_at);
CREATE INDEX deals_updated ON deals (workspace_id, updated_at);
CREATE INDEX deal_stage_history_updated ON deal_stage_history (workspace_id, updated_at);
CREATE INDEX deal_contacts_updated ON deal_contacts (workspace_id, updated_at);
CREATE INDEX activities_updated ON activities (workspace_id, updated_at);
CREATE INDEX activities_linked ON activities (workspace_id, linked_at);
CREATE INDEX conversations_updated ON conversations (workspace_id, updated_at);
CREATE INDEX conversations_linked ON conversations (workspace_id, linked_at);
CREATE INDEX calls_updated ON calls (workspace_id, updated_at);
CREATE INDEX tasks_updated ON tasks (workspace_id, updated_at);
CREATE INDEX leads_updated ON leads (workspace_id, updated_at);

-- The few rows still waiting for something: a source reference not resolved yet (its target not synced),
-- an imported row with no account, a contact naming deals, an activity naming a deal. Partial indexes stay
-- small (a row leaves them once linked), so every run reads just these rows instead of scanning the tables.
CREATE INDEX contacts_unresolved_account ON contacts (workspace_id) WHERE account_id IS NULL AND account_source_id IS NOT NULL;
CREATE INDEX deals_unresolved_account ON deals (workspace_id) WHERE account_id IS NULL AND account_source_id IS NOT NULL;
CREATE INDEX deal_stage_history_unresolved_deal ON deal_stage_history (workspace_id) WHERE deal_id IS NULL AND deal_source_id IS NOT NULL;
CREATE INDEX activities_unresolved_account ON activities (workspace_id) WHERE account_id IS NULL AND account_source_id IS NOT NULL;
CREATE INDEX activities_unresolved_contact ON activities (workspace_id) WHERE contact_id IS NULL AND contact_source_id IS NOT NULL;
CREATE INDEX activities_unresolved_deal ON activities (workspace_id) WHERE deal_id IS NULL AND deal_source_id IS NOT NULL;
CREATE INDEX tasks_unresolved_account ON tasks (workspace_id) WHERE account_id IS NULL AND account_source_id IS NOT NULL;
CREATE INDEX tasks_unresolved_contact ON tasks (workspace_id) WHERE contact_id IS NULL AND contact_source_id IS NOT NULL;
CREATE INDEX tasks_unresolved_deal ON tasks (workspace_id) WHERE deal_id IS NULL AND deal_source_id IS NOT NULL;
CREATE INDEX calls_unresolved_account ON calls (workspace_id) WHERE account_id IS NULL AND account_source_id IS NOT NULL;
CREATE INDEX calls_unresolved_contact ON calls (workspace_id) WHERE contact_id IS NULL AND contact_source_id IS NOT NULL;
CREATE INDEX calls_unresolved_deal ON calls (workspace_id) WHERE deal_id IS NULL AND deal_source_id IS NOT NULL;
CREATE INDEX leads_unresolved_account ON leads (workspace_id) WHERE converted_account_id IS NULL AND converted_account_source_id IS NOT NULL;
CREATE INDEX leads_unresolved_contact ON leads (workspace_id) WHERE converted_contact_id IS NULL AND converted_contact_source_id IS NOT NULL;
CREATE INDEX leads_unresolved_deal ON leads (workspace_id) WHERE converted_deal_id IS NULL AND converted_deal_source_id IS NOT NULL;

CREATE INDEX contacts_unlinked ON contacts (workspace_id) WHERE account_id IS NULL AND deleted_at IS NULL;
CREATE INDEX deals_unlinked ON deals (workspace_id) WHERE account_id IS NULL AND deleted_at IS NULL;
CREATE INDEX contacts_naming_deals ON contacts (workspace_id) WHERE custom_fields ? 'associated_deals';
CREATE INDEX activities_naming_deal ON activities (workspace_id) WHERE deal_id IS NULL AND custom_fields ? 'deal_name';

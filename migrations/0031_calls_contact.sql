-- Calls by contact, like activities_contact and conversations_contact: an incremental run finds the deals whose
-- calls name a contact deleted or restored since (core/pipeline/computed.py), and the calls of the contacts it
-- rescores, by key instead of reading every call of the workspace.
CREATE INDEX calls_contact ON calls (workspace_id, contact_id);

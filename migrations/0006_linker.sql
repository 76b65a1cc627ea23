-- Cross-entity linker and internal meeting filter (core/pipeline/linker.py, internal.py).

-- Which method set each link: {"contact": "email_match", "account": "crm_native", "deal": "deal_inference"}.
-- The linker lets a method replace only a link set by a lower-ranked one (manual > crm_native > email_match >
-- deal_inference); link_method stays the one-word summary (the deal's method, else the account's, else the
-- contact's).
ALTER TABLE conversations ADD COLUMN link_details jsonb NOT NULL DEFAULT '{}';
ALTER TABLE activities ADD COLUMN link_details jsonb NOT NULL DEFAULT '{}';

-- Per-step bookkeeping that keeps incremental post-sync runs equal to full ones, e.g. the internal domains and
-- rules version a step last ran with (a change means the next run must cover every row).
CREATE TABLE pipeline_state (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    step         text NOT NULL,
    state        jsonb NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, step)
);

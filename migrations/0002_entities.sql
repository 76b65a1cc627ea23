-- The normalized GTM entities. Every entity row carries:
--   source / source_id   where it came from; unique per workspace: (workspace_id, source, source_id)
--   source_data          the raw record as the source sent it (there is no raw_records table)
--   custom_fields        fields with no column of ours (custom CRM properties, unmapped CSV columns)
--   row_hash             digest of the values the write path last wrote; lets a re-sync skip unchanged rows
--   source_created_at / source_updated_at   the source's own timestamps; created_at / updated_at are ours
--   deleted_at           set when the source deleted or archived the record (rows are kept for history)
-- Cross-entity references (account_id, deal_id, contact_id) are resolved by post-sync steps from the
-- *_source_id columns the connectors fill; they are plain indexed columns, not foreign keys, because the
-- linker owns them and a rollback or a source delete must never cascade across entities.

CREATE TABLE accounts (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    name              text,
    domain            text,
    website           text,
    industry          text,
    employee_count    integer,
    annual_revenue    numeric(18, 2),
    country           text,
    state             text,
    city              text,
    account_type      text,
    owner             text,
    owner_email       text,
    parent_source_id  text,
    health_score      numeric(5, 2),
    last_activity_at  timestamptz,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX accounts_domain ON accounts (workspace_id, lower(domain));
CREATE INDEX accounts_name ON accounts (workspace_id, lower(name));

CREATE TABLE contacts (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    email             text,
    first_name        text,
    last_name         text,
    title             text,
    phone             text,
    department        text,
    seniority         text,
    lifecycle_stage   text,
    lead_status       text,
    company_name      text,
    owner             text,
    owner_email       text,
    account_id        uuid,
    account_source_id text,
    engagement_score  numeric(5, 2),
    last_activity_at  timestamptz,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX contacts_email ON contacts (workspace_id, lower(email));
CREATE INDEX contacts_account ON contacts (workspace_id, account_id);

CREATE TABLE deals (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    name              text,
    amount            numeric(18, 2),
    currency          text,
    stage             text,                 -- raw stage label or id as the source has it
    stage_normalized  text,                 -- awareness .. negotiation, closed_won, closed_lost
    pipeline          text,
    probability       numeric(5, 2),        -- 0-100 everywhere, whatever the source sends
    forecast_category text,                 -- closed | commit | best_case | pipeline | not_forecasted
    close_date        date,
    closed_at         timestamptz,
    owner             text,
    owner_email       text,
    account_id        uuid,
    account_source_id text,
    account_name      text,                 -- company name as the source wrote it (imports link by it)
    next_step         text,
    deal_type         text,                 -- new_business | expansion | renewal ...
    lead_source       text,
    stage_entered_at  timestamptz,
    days_in_stage     integer,
    last_activity_at  timestamptz,
    velocity_score    numeric(5, 2),
    deal_risk         numeric(5, 2),
    deal_risk_factors jsonb NOT NULL DEFAULT '[]',
    health_score      numeric(5, 2),
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX deals_account ON deals (workspace_id, account_id);
CREATE INDEX deals_stage_close ON deals (workspace_id, stage_normalized, close_date);
CREATE INDEX deals_owner ON deals (workspace_id, owner);

-- Every stage a deal entered, from CRM history (or the demo generator).
CREATE TABLE deal_stage_history (
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    source           text NOT NULL,
    source_id        text NOT NULL,
    deal_id          uuid,
    deal_source_id   text NOT NULL,
    stage            text NOT NULL,
    stage_normalized text,
    entered_at       timestamptz NOT NULL,
    exited_at        timestamptz,
    source_data      jsonb NOT NULL DEFAULT '{}',
    custom_fields    jsonb NOT NULL DEFAULT '{}',
    row_hash         text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (workspace_id, deal_id, entered_at);

CREATE TABLE activities (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    activity_type     text,                 -- email | call | meeting | note | task
    subject           text,
    body              text,
    direction         text,                 -- inbound | outbound
    occurred_at       timestamptz,
    duration_seconds  integer,
    owner             text,
    owner_email       text,
    participants      jsonb NOT NULL DEFAULT '[]',
    contact_id        uuid,
    account_id        uuid,
    deal_id           uuid,
    contact_source_id text,
    account_source_id text,
    deal_source_id    text,
    link_method       text,
    linked_at         timestamptz,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX activities_deal ON activities (workspace_id, deal_id, occurred_at DESC);
CREATE INDEX activities_account ON activities (workspace_id, account_id, occurred_at DESC);
CREATE INDEX activities_contact ON activities (workspace_id, contact_id);

-- Recorded meetings from call-intelligence tools (Gong, Fireflies). Transcripts are fetched on demand and
-- cached here, never bulk-synced.
CREATE TABLE conversations (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    title             text,
    started_at        timestamptz,
    duration_seconds  integer,
    organizer_email   text,
    owner             text,
    participants      jsonb NOT NULL DEFAULT '[]',  -- [{name, email, affiliation: internal|external|unknown}]
    call_url          text,
    summary           text,
    transcript        text,
    transcript_fetched_at timestamptz,
    contact_id        uuid,
    account_id        uuid,
    deal_id           uuid,
    link_method       text,   -- email_match | crm_native | deal_inference | internal_meeting | manual
    linked_at         timestamptz,
    is_internal       boolean,
    internal_classification_reason text,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX conversations_started ON conversations (workspace_id, started_at DESC);
CREATE INDEX conversations_account ON conversations (workspace_id, account_id);
CREATE INDEX conversations_deal ON conversations (workspace_id, deal_id);

CREATE TABLE tasks (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    title             text,
    description       text,
    status            text,
    priority          text,
    due_date          date,
    completed_at      timestamptz,
    assignee          text,
    assignee_email    text,
    project           text,                -- board / list / project the task lives in
    url               text,
    contact_id        uuid,
    account_id        uuid,
    deal_id           uuid,
    contact_source_id text,
    account_source_id text,
    deal_source_id    text,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX tasks_deal ON tasks (workspace_id, deal_id);

-- Phone/dialer calls logged in the CRM (as opposed to recorded meetings in conversations).
CREATE TABLE calls (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    title             text,
    direction         text,
    disposition       text,
    occurred_at       timestamptz,
    duration_seconds  integer,
    from_number       text,
    to_number         text,
    recording_url     text,
    owner             text,
    owner_email       text,
    contact_id        uuid,
    account_id        uuid,
    deal_id           uuid,
    contact_source_id text,
    account_source_id text,
    deal_source_id    text,
    link_method       text,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX calls_deal ON calls (workspace_id, deal_id);

CREATE TABLE documents (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    title             text,
    mime_type         text,
    doc_type          text,                -- proposal | contract | deck | notes | other
    url               text,
    folder_path       text,
    size_bytes        bigint,
    owner             text,
    owner_email       text,
    account_id        uuid,
    deal_id           uuid,
    content           text,                -- fetched on demand only
    content_fetched_at timestamptz,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX documents_account ON documents (workspace_id, account_id);

CREATE TABLE leads (
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    source            text NOT NULL,
    source_id         text NOT NULL,
    email             text,
    first_name        text,
    last_name         text,
    title             text,
    phone             text,
    company           text,
    domain            text,
    industry          text,
    employee_count    integer,
    status            text,
    lead_source       text,
    rating            text,
    owner             text,
    owner_email       text,
    is_converted      boolean NOT NULL DEFAULT false,
    converted_at      timestamptz,
    converted_contact_id uuid,
    converted_account_id uuid,
    converted_deal_id    uuid,
    converted_contact_source_id text,
    converted_account_source_id text,
    converted_deal_source_id    text,
    source_data       jsonb NOT NULL DEFAULT '{}',
    custom_fields     jsonb NOT NULL DEFAULT '{}',
    row_hash          text,
    source_created_at timestamptz,
    source_updated_at timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, source_id)
);
CREATE INDEX leads_email ON leads (workspace_id, lower(email));

-- Which contacts are on which deal, from each source that says so. The same pair may appear once per source
-- (hubspot_association, salesforce_contact_role, csv_import, inference ...).
CREATE TABLE deal_contacts (
    workspace_id      uuid NOT NULL,
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    deal_id           uuid NOT NULL,
    contact_id        uuid NOT NULL,
    source            text NOT NULL,
    role              text,
    role_source       text,                -- crm_association | crm_contact_role | explicit_deal_name | inferred_single_deal | manual
    is_primary        boolean NOT NULL DEFAULT false,
    confidence        numeric(4, 3),
    -- Tier 2 enrichment
    buying_role       text,                -- champion | economic_buyer | decision_maker | influencer | user | blocker
    seniority         text,
    department        text,
    apollo_data       jsonb,
    linkedin_data     jsonb,
    enrichment_status text NOT NULL DEFAULT 'pending',  -- pending | enriched | failed | skipped
    enriched_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, deal_id, contact_id, source),
    FOREIGN KEY (workspace_id, deal_id) REFERENCES deals (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX deal_contacts_contact ON deal_contacts (workspace_id, contact_id);

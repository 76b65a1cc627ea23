-- Tenancy and plumbing: workspaces, connections, sync runs, context, quotas, stage mappings, imports, skill runs.
-- Rule: every table carries workspace_id NOT NULL and every primary/unique key leads with it, so the schema
-- can be distributed by workspace_id (Citus) without change. `workspaces` itself is the tenant table.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per connected source. connector_name is free text (hubspot, salesforce, gong, fireflies, monday,
-- google_drive, csv_import, ...): no CHECK, so new connectors need no migration.
CREATE TABLE connections (
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    connector_name  text NOT NULL,
    status          text NOT NULL DEFAULT 'active',   -- active | paused | error | disconnected
    credentials     bytea,                            -- Fernet-encrypted JSON, never logged
    metadata        jsonb NOT NULL DEFAULT '{}',      -- user directory, tracked users, portal/org ids
    sync_cursors    jsonb NOT NULL DEFAULT '{}',      -- stream name -> {cursor, since, page}
    last_sync_at    timestamptz,
    last_sync_status text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, connector_name)
);

CREATE TABLE sync_log (
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    connection_id   uuid,
    connector_name  text NOT NULL,
    trigger         text NOT NULL DEFAULT 'manual',   -- manual | scheduled | api | import
    status          text NOT NULL DEFAULT 'running',  -- running | succeeded | failed | aborted
    counts          jsonb NOT NULL DEFAULT '{}',      -- entity -> {fetched, inserted, updated, unchanged}
    steps           jsonb NOT NULL DEFAULT '[]',      -- post-sync steps: [{name, ms, changed}]
    records_fetched integer NOT NULL DEFAULT 0,
    pages           integer NOT NULL DEFAULT 0,
    resumed         boolean NOT NULL DEFAULT false,
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    duration_ms     integer,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX sync_log_recent ON sync_log (workspace_id, connector_name, started_at DESC);

-- Business context for personalised analysis: one row per workspace, five JSONB sections.
CREATE TABLE context_layer (
    workspace_id         uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    business_model       jsonb NOT NULL DEFAULT '{}',
    team_structure       jsonb NOT NULL DEFAULT '{}',
    goals_and_targets    jsonb NOT NULL DEFAULT '{}',
    definitions          jsonb NOT NULL DEFAULT '{}',
    operational_maturity jsonb NOT NULL DEFAULT '{}',
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id)
);

CREATE TABLE quota_periods (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    name         text NOT NULL,                  -- e.g. "FY2026 Q3"
    period_type  text NOT NULL DEFAULT 'quarter', -- month | quarter | year
    start_date   date NOT NULL,
    end_date     date NOT NULL,
    team_quota   numeric(18, 2),
    currency     text NOT NULL DEFAULT 'USD',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, period_type, start_date),
    CHECK (end_date >= start_date)
);

CREATE TABLE rep_quotas (
    workspace_id uuid NOT NULL,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    period_id    uuid NOT NULL,
    rep_name     text NOT NULL,
    rep_email    text,
    quota_amount numeric(18, 2) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, period_id, rep_name),
    FOREIGN KEY (workspace_id, period_id) REFERENCES quota_periods (workspace_id, id) ON DELETE CASCADE
);

-- Raw CRM stage -> universal stage, per workspace and source (csv_import, hubspot, salesforce, ...).
CREATE TABLE stage_mappings (
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    source           text NOT NULL,
    raw_stage        text NOT NULL,
    stage_normalized text NOT NULL,
    origin           text NOT NULL DEFAULT 'user',  -- user | default | inferred
    confidence       numeric(4, 3),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, source, raw_stage)
);

-- CSV/Excel uploads: pending -> confirmed -> applied -> rolled_back (or failed).
CREATE TABLE import_batches (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    connection_id  uuid,
    filename       text NOT NULL,
    file_size      bigint,
    file_sha256    text,
    sheet          text,
    entity         text,
    status         text NOT NULL DEFAULT 'pending',
    classification jsonb NOT NULL DEFAULT '{}',  -- {entity, confidence, method, model}
    mapping        jsonb NOT NULL DEFAULT '{}',  -- header -> field
    row_count      integer NOT NULL DEFAULT 0,
    inserted       integer NOT NULL DEFAULT 0,
    updated        integer NOT NULL DEFAULT 0,
    skipped        integer NOT NULL DEFAULT 0,
    errors         jsonb NOT NULL DEFAULT '[]',
    warnings       jsonb NOT NULL DEFAULT '[]',
    sample_rows    jsonb NOT NULL DEFAULT '[]',
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    confirmed_at   timestamptz,
    applied_at     timestamptz,
    rolled_back_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX import_batches_recent ON import_batches (workspace_id, created_at DESC);

-- What an applied batch did to each row, so rollback is true: inserted rows are deleted, updated rows get
-- their prior image back.
CREATE TABLE import_batch_changes (
    workspace_id uuid NOT NULL,
    batch_id     uuid NOT NULL,
    entity       text NOT NULL,
    row_id       uuid NOT NULL,
    action       text NOT NULL,  -- inserted | updated
    prior        jsonb,          -- the full row before the update (null for inserts)
    PRIMARY KEY (workspace_id, batch_id, entity, row_id),
    FOREIGN KEY (workspace_id, batch_id) REFERENCES import_batches (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE skill_runs (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    skill         text NOT NULL,
    trigger       text NOT NULL DEFAULT 'manual',  -- manual | slack | schedule | api | webhook
    status        text NOT NULL DEFAULT 'running', -- running | succeeded | failed
    params        jsonb NOT NULL DEFAULT '{}',
    inputs        jsonb NOT NULL DEFAULT '{}',
    output        jsonb,
    error         text,
    timings       jsonb NOT NULL DEFAULT '{}',     -- phase -> ms
    tokens_in     integer NOT NULL DEFAULT 0,
    tokens_out    integer NOT NULL DEFAULT 0,
    ai_used       boolean NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    duration_ms   integer,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX skill_runs_recent ON skill_runs (workspace_id, skill, started_at DESC);

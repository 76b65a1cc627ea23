-- Tier 2: account enrichment signals, ICP models and lead scores.

CREATE TABLE account_signals (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    account_id   uuid NOT NULL,
    signal_type  text NOT NULL,            -- firmographic | technographic | hiring | funding | intent ...
    source       text NOT NULL,            -- apollo | clearbit | manual | inferred ...
    value        jsonb NOT NULL DEFAULT '{}',
    confidence   numeric(4, 3),
    observed_at  timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, account_id, signal_type, source),
    FOREIGN KEY (workspace_id, account_id) REFERENCES accounts (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE icp_profiles (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    version       integer NOT NULL,
    status        text NOT NULL DEFAULT 'active',   -- active | superseded | draft
    method        text NOT NULL,                    -- descriptive | point_based | regression
    firmographics jsonb NOT NULL DEFAULT '{}',
    personas      jsonb NOT NULL DEFAULT '[]',
    weights       jsonb NOT NULL DEFAULT '{}',
    metrics       jsonb NOT NULL DEFAULT '{}',
    sample_size   integer NOT NULL DEFAULT 0,
    skill_run_id  uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, version)
);

CREATE TABLE lead_scores (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    entity_type    text NOT NULL,                   -- lead | contact | deal
    entity_id      uuid NOT NULL,
    score          numeric(5, 2) NOT NULL,
    grade          text NOT NULL,                   -- A | B | C | D | F
    breakdown      jsonb NOT NULL DEFAULT '{}',
    icp_profile_id uuid,
    scored_at      timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, entity_type, entity_id),
    CHECK (grade IN ('A', 'B', 'C', 'D', 'F'))
);

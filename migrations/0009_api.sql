-- The sidecar's REST API and webhooks (bot/sidecar, core/api_keys.py).

-- Per-workspace API keys. Only the SHA-256 of the secret is stored (the secret is shown once, on creation);
-- `prefix` is the first characters of the key, for telling keys apart in a list. A key is looked up by its
-- hash before its workspace is known (the path's workspace id is checked against the key's afterwards, so
-- another workspace's id answers 404), hence the index on key_hash alone; the secret is 256 random bits, so
-- hashes do not collide and uniqueness within a workspace is the constraint that matters.
CREATE TABLE api_keys (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    key_hash      text NOT NULL,
    prefix        text NOT NULL,
    label         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, key_hash)
);
CREATE INDEX api_keys_hash ON api_keys (key_hash);

-- One webhook secret per workspace, Fernet-encrypted with the credentials key (core.credentials.Vault): it
-- must be readable to sign outbound callbacks, so it cannot be hashed.
CREATE TABLE webhook_secrets (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    secret        bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz,
    PRIMARY KEY (workspace_id)
);

-- Outbound webhook attempts (run-status callbacks): one row per delivery, updated as it is retried.
CREATE TABLE webhook_deliveries (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    run_id        uuid,                              -- the API run id handed back with 202
    event         text NOT NULL,                     -- e.g. skill.run.completed
    url           text NOT NULL,
    status        text NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    status_code   integer,
    error         text,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX webhook_deliveries_run ON webhook_deliveries (workspace_id, run_id);

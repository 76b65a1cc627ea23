-- One-time OAuth `state` values for connecting a CRM (HubSpot, Salesforce) through the provider's web flow
-- (bot/sidecar/routes_oauth.py). Issued by GET /oauth/{source}/start for one workspace and consumed once by
-- the callback (DELETE … RETURNING, so two concurrent callbacks with the same state cannot both succeed).
-- The callback only knows the state, so besides the workspace-led key a unique index finds a row by state
-- alone; expired rows are swept whenever a new state is issued.
CREATE TABLE connector_oauth_states (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    state          text NOT NULL,
    connector_name text NOT NULL,
    redirect_uri   text NOT NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, state)
);
CREATE UNIQUE INDEX connector_oauth_states_state ON connector_oauth_states (state);
CREATE INDEX connector_oauth_states_expiry ON connector_oauth_states (expires_at);

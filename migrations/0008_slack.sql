-- The Slack app: which Slack team is which Pandora workspace, the app's tokens per installation, the OAuth
-- install flow's one-time states, and scheduled digests (bot/install_store.py, bot/digests.py).

-- Each Slack team (or Enterprise Grid org, for org-wide installs: team_id '') maps to exactly one workspace.
-- The mapping outlives the installation: uninstalling deletes the tokens, and a later reinstall finds the same
-- workspace with its data. enterprise_id / team_id are '' rather than NULL (as in slack_sdk's own stores) so
-- the keys stay plain equality. The key leads with workspace_id like every key here; the extra unique index on
-- (enterprise_id, team_id) is what makes "one workspace per team" hold (on Citus this small lookup table
-- would be a reference table).
CREATE TABLE slack_teams (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    enterprise_id text NOT NULL DEFAULT '',
    team_id       text NOT NULL DEFAULT '',
    team_name     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, enterprise_id, team_id),
    CHECK (enterprise_id <> '' OR team_id <> '')
);
CREATE UNIQUE INDEX slack_teams_team ON slack_teams (enterprise_id, team_id);

-- One row per (team, installing user): slack_sdk's Installation. Tokens are Fernet-encrypted (core.credentials
-- Vault) and never logged; bot_token is NULL once the bot was revoked.
CREATE TABLE slack_installations (
    workspace_id          uuid NOT NULL,
    enterprise_id         text NOT NULL DEFAULT '',
    team_id               text NOT NULL DEFAULT '',
    user_id               text NOT NULL,                 -- the installer
    app_id                text,
    enterprise_name       text,
    enterprise_url        text,
    team_name             text,
    bot_token             bytea,
    bot_refresh_token     bytea,
    bot_token_expires_at  timestamptz,
    bot_id                text,
    bot_user_id           text,
    bot_scopes            text[] NOT NULL DEFAULT '{}',
    user_token            bytea,
    user_refresh_token    bytea,
    user_token_expires_at timestamptz,
    user_scopes           text[] NOT NULL DEFAULT '{}',
    incoming_webhook      bytea,                         -- encrypted {url, channel, channel_id, configuration_url}
    is_enterprise_install boolean NOT NULL DEFAULT false,
    token_type            text,
    installed_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, enterprise_id, team_id, user_id),
    FOREIGN KEY (workspace_id, enterprise_id, team_id)
        REFERENCES slack_teams (workspace_id, enterprise_id, team_id) ON DELETE CASCADE
);

-- OAuth `state` values: issued when the install button is clicked, consumed once by the callback
-- (DELETE … RETURNING, so two concurrent callbacks with the same state cannot both succeed). A state exists
-- before any workspace does, so it cannot belong to one: every row carries the nil uuid as its workspace_id
-- (no tenant; the CHECK keeps it that way), which keeps the schema-wide rule "workspace_id NOT NULL, keys lead
-- with it" true without an exemption.
CREATE TABLE slack_oauth_states (
    workspace_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
                 CHECK (workspace_id = '00000000-0000-0000-0000-000000000000'),
    state        text NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, state)
);
CREATE INDEX slack_oauth_states_expiry ON slack_oauth_states (expires_at);

-- Scheduled digests: post these skills' results to a channel on a cadence, at a local time in a timezone.
-- weekday 0 = Monday (weekly only); day_of_month 1–28 or -1 for the last day (monthly only).
-- next_run_at is the next slot the scheduler owes; a process that was down when it passed fires it once on
-- start (if less than a day late) and moves it on; last_* record the most recent run.
CREATE TABLE digest_schedules (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    cadence      text NOT NULL CHECK (cadence IN ('daily', 'weekdays', 'weekly', 'monthly')),
    weekday      smallint CHECK (weekday BETWEEN 0 AND 6),
    day_of_month smallint CHECK (day_of_month = -1 OR day_of_month BETWEEN 1 AND 28),
    run_time     time NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    channel_id   text,
    channel_name text,
    skills       text[] NOT NULL DEFAULT '{weekly-digest}',
    enabled      boolean NOT NULL DEFAULT true,
    last_run_at  timestamptz,
    last_status  text,                               -- ok | partial | failed
    last_error   text,
    next_run_at  timestamptz,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    CHECK (channel_id IS NOT NULL OR channel_name IS NOT NULL),
    CHECK ((cadence = 'weekly') = (weekday IS NOT NULL)),
    CHECK ((cadence = 'monthly') = (day_of_month IS NOT NULL)),
    CHECK (cardinality(skills) > 0)
);
CREATE INDEX digest_schedules_due ON digest_schedules (next_run_at) WHERE enabled;

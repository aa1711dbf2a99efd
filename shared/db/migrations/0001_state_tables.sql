-- State the services keep besides the per-entity mirror tables (architecture.md, "PostgreSQL").

-- Connections configured in the database (one from the environment needs no row here).
-- Secrets are stored encrypted by the application; the key never reaches the database.
CREATE TABLE connections (
    name                        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    username                    text NOT NULL,
    secret_encrypted            bytea NOT NULL,
    integration_code_encrypted  bytea NOT NULL,
    zone_url                    text,
    zone_checked_at             timestamptz,
    impersonation_resource_id   bigint,
    scope                       jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled                     boolean NOT NULL DEFAULT true,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- One row per webhook the provisioner manages. The registration id is the unguessable path
-- segment of the callout URL (/v1/callouts/{registration_id}), so the gateway finds the secret
-- before it parses anything.
CREATE TABLE webhook_registrations (
    registration_id         text PRIMARY KEY CHECK (length(registration_id) >= 16),
    connection              text NOT NULL,
    entity                  text NOT NULL,            -- REST name, e.g. 'Tickets'
    autotask_webhook_id     bigint,                   -- null until created in Autotask
    webhook_guid            text,
    secret_current          bytea NOT NULL,           -- encrypted
    secret_previous         bytea,                    -- encrypted; still verifies during rotation
    secret_rotated_at       timestamptz,
    state                   text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'active', 'deactivated', 'retired')),
    desired_hash            text,                     -- hash of the desired definition applied
    last_deactivated_at     timestamptz,
    last_verified_at        timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
-- At most one live registration per connection and entity.
CREATE UNIQUE INDEX webhook_registrations_live
    ON webhook_registrations (connection, entity) WHERE state <> 'retired';

-- Where each sweep got to, per connection, entity and kind of sweep.
CREATE TABLE sweep_watermarks (
    connection      text NOT NULL,
    entity          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('incremental', 'ids', 'backfill', 'delete_log')),
    watermark       timestamptz,                     -- last-modified high-water mark
    id_cursor       bigint,                          -- resumable id cursor (backfill, id sweep)
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, entity, kind)
);

-- One row per sweep or backfill run, with what it found.
CREATE TABLE sync_runs (
    id              bigserial PRIMARY KEY,
    connection      text NOT NULL,
    entity          text NOT NULL,
    kind            text NOT NULL,
    status          text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    fetched         bigint NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    unchanged       bigint NOT NULL DEFAULT 0,
    deleted         bigint NOT NULL DEFAULT 0,
    repaired        bigint NOT NULL DEFAULT 0,
    api_calls       bigint NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX sync_runs_recent ON sync_runs (connection, entity, started_at DESC);

-- Callouts accepted while Kafka was unavailable; a drainer moves them to Kafka in id order.
CREATE TABLE callout_spool (
    id              bigserial PRIMARY KEY,
    connection      text NOT NULL,
    registration_id text NOT NULL,
    topic           text NOT NULL,
    key             bytea NOT NULL,
    value           bytea NOT NULL,
    headers         jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at     timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text
);

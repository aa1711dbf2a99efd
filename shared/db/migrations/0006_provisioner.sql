-- What the provisioner keeps besides the webhook registrations (docs/adr/0006-webhook-provisioning.md).

-- One row per connection the provisioner has worked on: the outcome of its last pass, and the
-- hold a teardown leaves so the service does not re-create webhooks someone removed on purpose
-- (cleared by an explicit `autotask-sync provision apply --connection NAME`).
CREATE TABLE webhook_provisioning (
    connection      text PRIMARY KEY,
    held_at         timestamptz,
    held_reason     text,
    last_pass_at    timestamptz,
    last_trigger    text,
    last_outcome    text CHECK (last_outcome IN ('in_sync', 'applied', 'failed')),
    last_steps      integer NOT NULL DEFAULT 0,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Set when a new secret became current in the registration before Autotask confirmed it (a
-- rotation in progress); cleared once the webhook has it. A pass that finds it set sends the
-- current secret again, so a rotation interrupted by a crash never strands the webhook on a
-- secret whose overlap runs out.
ALTER TABLE webhook_registrations ADD COLUMN secret_unconfirmed_since timestamptz;

-- Catch-up sweeps owed after a webhook was created, reactivated or repaired: written before the
-- repair, deleted once the SweepRequested event is on Kafka (an outbox), so a crash or a Kafka
-- outage in between only delays the request.
CREATE TABLE provisioner_owed_sweeps (
    connection      text NOT NULL,
    entity          text NOT NULL,
    since           timestamptz,                     -- start of the gap; NULL: from the watermark
    reason          text NOT NULL,
    owed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, entity)
);

-- Spooled callouts Kafka refused for good (too large, topic refused, corrupt...) that could not
-- go to the dead-letter topic either. The drainer moves a row here, with why, in the same
-- transaction that deletes it from callout_spool, so the rows behind it drain on; the operator
-- looks at it with `autotask-sync spool list --rejects` and retries or drops it. A reject keeps
-- its spool id, so one id names a row in either table.
CREATE TABLE spool_rejects (
    id              bigint PRIMARY KEY,
    connection      text NOT NULL,
    registration_id text NOT NULL,
    topic           text NOT NULL,
    key             bytea NOT NULL,
    value           bytea NOT NULL,
    headers         jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at     timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    reason          text NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spool_rejects_connection ON spool_rejects (connection, id);

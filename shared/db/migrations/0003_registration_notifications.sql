-- The gateway keeps every webhook registration in memory and must learn of a new registration or
-- a rotated secret immediately, so changes are announced with NOTIFY (function from 0002).

-- Until when the previous secret still verifies callouts during a rotation (NULL: no overlap).
ALTER TABLE webhook_registrations ADD COLUMN previous_valid_until timestamptz;
-- When the gateway last accepted a callout for the registration (flushed in the background).
ALTER TABLE webhook_registrations ADD COLUMN last_callout_at timestamptz;
-- When the registration was retired (its callout path answers 410 from then on).
ALTER TABLE webhook_registrations ADD COLUMN retired_at timestamptz;

CREATE INDEX webhook_registrations_by_connection ON webhook_registrations (connection, state);

-- Only changes the gateway acts on are announced: last_callout_at and other bookkeeping
-- columns change often and would make every gateway reload for nothing.
CREATE TRIGGER webhook_registrations_notify
    AFTER INSERT OR DELETE OR UPDATE OF connection, entity, state, secret_current,
        secret_previous, previous_valid_until
    ON webhook_registrations
    FOR EACH ROW
    EXECUTE FUNCTION autotask_sync_notify_change('autotask_sync_registrations', 'registration_id');

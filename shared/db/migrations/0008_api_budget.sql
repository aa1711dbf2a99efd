-- One Autotask API budget per connection, whatever the number of processes (docs/adr/0008).

-- Concurrency slots: Autotask allows 3 concurrent calls per (integration code, endpoint). A
-- process holds a slot while one request is on the wire: it takes a free row (expired lease)
-- with FOR UPDATE SKIP LOCKED and gives it back after the call. A process that dies holding a
-- slot loses it when the lease expires; live holders renew long calls.
CREATE TABLE api_slots (
    connection  text NOT NULL,
    endpoint    text NOT NULL,
    slot        smallint NOT NULL CHECK (slot >= 1),
    holder      text,                                   -- host:pid:nonce of the process
    token       bigint NOT NULL DEFAULT 0,              -- bumped on every take (fencing)
    taken_at    timestamptz,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (connection, endpoint, slot)
);
CREATE INDEX api_slots_holder ON api_slots (holder) WHERE holder IS NOT NULL;

-- The hourly budget per connection: the last ThresholdInformation reading (the whole tenant,
-- every integration), who may take the next one (a short lease: one reader at a time), and a
-- running total of this deployment's calls (calls_at_reading: the total when the reading was
-- taken, so "calls since the reading" is calls_total - calls_at_reading).
CREATE TABLE api_budget (
    connection          text PRIMARY KEY,
    threshold           integer,
    tenant_calls        integer,
    timeframe_minutes   integer,
    read_at             timestamptz,
    calls_at_reading    bigint NOT NULL DEFAULT 0,
    calls_total         bigint NOT NULL DEFAULT 0,
    refresh_holder      text,
    refresh_until       timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- This deployment's calls per connection and minute; the rolling hour is the last 61 buckets
-- (one more than the hour, so the count errs high). Calls are counted when reserved, before
-- they are sent, so the share is never overrun.
CREATE TABLE api_calls (
    connection  text NOT NULL,
    minute      timestamptz NOT NULL,
    calls       integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    PRIMARY KEY (connection, minute)
);

-- Reserve up to p_want calls of a connection's allowance (NULL: no cap known yet) in one round
-- trip. The budget row lock serialises reservations of one connection; each statement of a
-- plpgsql function sees what the previous holder of the lock committed.
CREATE FUNCTION autotask_sync_reserve_calls(p_connection text, p_want integer, p_allowance integer)
RETURNS TABLE (granted integer, bucket timestamptz, project_calls bigint, calls_since_reading bigint,
               threshold integer, tenant_calls integer, timeframe_minutes integer,
               reading_age double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_minute timestamptz := date_trunc('minute', now());
    v_used bigint;
    v_granted integer;
BEGIN
    INSERT INTO api_budget (connection) VALUES (p_connection) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM api_budget b WHERE b.connection = p_connection FOR UPDATE;
    SELECT COALESCE(sum(c.calls), 0) INTO v_used FROM api_calls c
        WHERE c.connection = p_connection AND c.minute >= v_minute - interval '60 minutes';
    IF p_allowance IS NULL THEN
        v_granted := p_want;
    ELSE
        -- Near the cap, grant small blocks so one process cannot hold what others need.
        v_granted := GREATEST(0, LEAST(p_want, p_allowance - v_used,
                                       GREATEST(1, (p_allowance - v_used) / 4)));
    END IF;
    IF v_granted > 0 THEN
        INSERT INTO api_calls AS c (connection, minute, calls) VALUES (p_connection, v_minute, v_granted)
            ON CONFLICT (connection, minute) DO UPDATE SET calls = c.calls + excluded.calls;
        UPDATE api_budget b SET calls_total = b.calls_total + v_granted, updated_at = now()
            WHERE b.connection = p_connection;
    END IF;
    RETURN QUERY
        SELECT v_granted, v_minute, v_used + v_granted,
               GREATEST(0, b.calls_total - b.calls_at_reading), b.threshold, b.tenant_calls,
               b.timeframe_minutes, extract(epoch FROM now() - b.read_at)::double precision
        FROM api_budget b WHERE b.connection = p_connection;
END;
$$;

-- Connections whose credentials Autotask rejected: calls are held back until locked_until
-- (a cool-down doubling per failure in a row); after it one process (probe_holder) tries again.
-- The environment connection has no row in `connections`, hence a table of its own.
CREATE TABLE connection_health (
    connection      text PRIMARY KEY,
    failures        integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    failure_reason  text,
    failed_at       timestamptz,
    probe_holder    text,
    probe_until     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER connection_health_notify
    AFTER INSERT OR UPDATE OR DELETE ON connection_health
    FOR EACH ROW EXECUTE FUNCTION
        autotask_sync_notify_change('autotask_sync_connection_health', 'connection');

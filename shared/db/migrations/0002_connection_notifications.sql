-- Running processes keep a live view of the connections (and, later, webhook registrations):
-- every change is announced with NOTIFY so they reload within moments instead of polling.

-- Where zone discovery asks, per connection (NULL: the deployment's default lookup host).
ALTER TABLE connections ADD COLUMN zone_lookup_url text;

-- NOTIFY <channel> with the changed row's key: trigger arguments are the channel and the name
-- of the key column. The payload is the key only, never row content (it may hold ciphertext).
CREATE FUNCTION autotask_sync_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := to_jsonb(OLD);
    ELSE
        changed := to_jsonb(NEW);
    END IF;
    PERFORM pg_notify(TG_ARGV[0], COALESCE(changed ->> TG_ARGV[1], ''));
    RETURN NULL;
END;
$$;

CREATE TRIGGER connections_notify
    AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION autotask_sync_notify_change('autotask_sync_connections', 'name');

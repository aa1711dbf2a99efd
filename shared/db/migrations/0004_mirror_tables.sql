-- One mirror table per registry entity (shared/entities.py): the full entity as jsonb, keyed by
-- (connection, id), with what the monotonic upsert needs (shared/db/mirror.py) and the promoted
-- columns people query, generated from the jsonb so they can never disagree with it.
--
-- version      the entity's last-modified value (NULL for entities without one)
-- fetched_at   when the snapshot was read from Autotask (the request's start): ties on version
--              are broken by it, so a later read always wins and an earlier one never does
-- content_hash sha256 of the canonical JSON: an unchanged snapshot writes nothing
-- deleted_at   soft delete (Delete callout, delete log, confirmed id sweep)
-- out_of_scope_at  the entity left the connection's sync scope (its last in-scope state is kept)
-- origin       what wrote the row last: webhook, sweep or backfill

-- Tolerant casts for the promoted columns: a value Autotask sends in an unexpected shape becomes
-- NULL in the column (the jsonb keeps it) instead of failing the whole batch.
CREATE FUNCTION autotask_sync_bigint(value text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN value ~ '^\s*-?[0-9]{1,18}\s*$' THEN value::bigint END $$;
CREATE FUNCTION autotask_sync_integer(value text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN value ~ '^\s*-?[0-9]{1,9}\s*$' THEN value::integer END $$;
CREATE FUNCTION autotask_sync_boolean(value text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE lower(trim(value)) WHEN 'true' THEN true WHEN '1' THEN true
                                         WHEN 'false' THEN false WHEN '0' THEN false END $$;


-- Tickets
CREATE TABLE tickets (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    ticket_number    text GENERATED ALWAYS AS (entity ->> 'ticketNumber') STORED,
    title            text GENERATED ALWAYS AS (entity ->> 'title') STORED,
    status           integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'status')) STORED,
    priority         integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'priority')) STORED,
    queue_id         bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'queueID')) STORED,
    company_id       bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'companyID')) STORED,
    assigned_resource_id bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'assignedResourceID')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX tickets_ticket_number ON tickets (connection, ticket_number);
CREATE INDEX tickets_status ON tickets (connection, status);
CREATE INDEX tickets_priority ON tickets (connection, priority);
CREATE INDEX tickets_queue_id ON tickets (connection, queue_id);
CREATE INDEX tickets_company_id ON tickets (connection, company_id);
CREATE INDEX tickets_assigned_resource_id ON tickets (connection, assigned_resource_id);
CREATE INDEX tickets_live ON tickets (connection, id) WHERE deleted_at IS NULL;

-- Companies
CREATE TABLE companies (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    company_name     text GENERATED ALWAYS AS (entity ->> 'companyName') STORED,
    company_type     integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'companyType')) STORED,
    is_active        boolean GENERATED ALWAYS AS (autotask_sync_boolean(entity ->> 'isActive')) STORED,
    owner_resource_id bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'ownerResourceID')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX companies_company_name ON companies (connection, company_name);
CREATE INDEX companies_company_type ON companies (connection, company_type);
CREATE INDEX companies_is_active ON companies (connection, is_active);
CREATE INDEX companies_owner_resource_id ON companies (connection, owner_resource_id);
CREATE INDEX companies_live ON companies (connection, id) WHERE deleted_at IS NULL;

-- Contacts
CREATE TABLE contacts (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    company_id       bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'companyID')) STORED,
    email_address    text GENERATED ALWAYS AS (entity ->> 'emailAddress') STORED,
    first_name       text GENERATED ALWAYS AS (entity ->> 'firstName') STORED,
    last_name        text GENERATED ALWAYS AS (entity ->> 'lastName') STORED,
    is_active        integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'isActive')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX contacts_company_id ON contacts (connection, company_id);
CREATE INDEX contacts_is_active ON contacts (connection, is_active);
CREATE INDEX contacts_live ON contacts (connection, id) WHERE deleted_at IS NULL;

-- ConfigurationItems
CREATE TABLE configuration_items (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    company_id       bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'companyID')) STORED,
    reference_title  text GENERATED ALWAYS AS (entity ->> 'referenceTitle') STORED,
    serial_number    text GENERATED ALWAYS AS (entity ->> 'serialNumber') STORED,
    is_active        boolean GENERATED ALWAYS AS (autotask_sync_boolean(entity ->> 'isActive')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX configuration_items_company_id ON configuration_items (connection, company_id);
CREATE INDEX configuration_items_is_active ON configuration_items (connection, is_active);
CREATE INDEX configuration_items_live ON configuration_items (connection, id) WHERE deleted_at IS NULL;

-- TicketNotes
CREATE TABLE ticket_notes (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    ticket_id        bigint GENERATED ALWAYS AS (autotask_sync_bigint(entity ->> 'ticketID')) STORED,
    note_type        integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'noteType')) STORED,
    publish          integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'publish')) STORED,
    title            text GENERATED ALWAYS AS (entity ->> 'title') STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX ticket_notes_ticket_id ON ticket_notes (connection, ticket_id);
CREATE INDEX ticket_notes_note_type ON ticket_notes (connection, note_type);
CREATE INDEX ticket_notes_publish ON ticket_notes (connection, publish);
CREATE INDEX ticket_notes_live ON ticket_notes (connection, id) WHERE deleted_at IS NULL;

-- Resources
CREATE TABLE resources (
    connection       text NOT NULL,
    id               bigint NOT NULL,
    entity           jsonb NOT NULL,
    version          timestamptz,
    fetched_at       timestamptz NOT NULL,
    content_hash     bytea NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    out_of_scope_at  timestamptz,
    origin           text NOT NULL CHECK (origin IN ('webhook', 'sweep', 'backfill')),
    callout_sequence bigint,
    user_name        text GENERATED ALWAYS AS (entity ->> 'userName') STORED,
    email            text GENERATED ALWAYS AS (entity ->> 'email') STORED,
    is_active        boolean GENERATED ALWAYS AS (autotask_sync_boolean(entity ->> 'isActive')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX resources_is_active ON resources (connection, is_active);
CREATE INDEX resources_live ON resources (connection, id) WHERE deleted_at IS NULL;

-- Ids a fetch did not return after its retries (read-after-write lag, permissions): not deleted
-- (architecture.md rule 5), left for the next sweep to resolve.
CREATE TABLE unresolved_ids (
    connection   text NOT NULL,
    entity       text NOT NULL,
    id           bigint NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_tried   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 1,
    reason       text NOT NULL DEFAULT 'not returned',
    PRIMARY KEY (connection, entity, id)
);

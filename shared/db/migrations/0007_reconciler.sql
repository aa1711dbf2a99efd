-- Reconciliation (docs/adr/0007-reconciliation-in-shared.md): sweep runs and their schedule,
-- resumable walks, rebuild marks, PSA metadata, and the Contracts mirror.

-- A run's mode (incremental, catchup, full, ids, backfill, resync, metadata) is what 0001 called
-- its kind; one name per concept.
ALTER TABLE sync_runs RENAME COLUMN kind TO mode;
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'aborted', 'skipped'));
ALTER TABLE sync_runs
    ADD COLUMN trigger       text NOT NULL DEFAULT 'schedule',  -- schedule, cli, control, resume
    ADD COLUMN requested_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN since         timestamptz,                       -- catch-up: start of the gap
    ADD COLUMN pages         bigint NOT NULL DEFAULT 0,
    ADD COLUMN detail        jsonb NOT NULL DEFAULT '{}'::jsonb;
-- "The same request made twice within two minutes runs once": found by this index.
CREATE INDEX sync_runs_requests ON sync_runs (connection, entity, mode, requested_at DESC)
    WHERE trigger IN ('cli', 'control');

-- What the schedule reads: the last run per connection, entity and mode (sync_runs only grows).
CREATE TABLE sweep_last_runs (
    connection   text NOT NULL,
    entity       text NOT NULL,
    mode         text NOT NULL,
    run_id       bigint NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    status       text NOT NULL,
    PRIMARY KEY (connection, entity, mode)
);

-- Watermark kinds gain one row per delete log an entity reads ('delete_log:DeletedTicketLogs');
-- a walk in progress (incremental or complete read) is resumable from these columns.
ALTER TABLE sweep_watermarks DROP CONSTRAINT sweep_watermarks_kind_check;
ALTER TABLE sweep_watermarks ADD CONSTRAINT sweep_watermarks_kind_check
    CHECK (kind ~ '^(incremental|ids|backfill|delete_log(:[A-Za-z]+)?)$');
ALTER TABLE sweep_watermarks
    ADD COLUMN walk_started_at timestamptz,  -- the walk in progress began (first attempt)
    ADD COLUMN walk_max        timestamptz,  -- highest last-modified durable in that walk
    ADD COLUMN walk_mode       text,         -- complete reads: backfill, resync or full
    ADD COLUMN completed_at    timestamptz;  -- complete reads: when the last one finished

-- Rows a resync or full sweep has not seen yet: filled with the live ids when it starts, emptied
-- page by page; what is left at the end is confirmed with an `in` query before it is deleted.
CREATE TABLE mirror_rebuild (
    connection  text NOT NULL,
    entity      text NOT NULL,
    id          bigint NOT NULL,
    PRIMARY KEY (connection, entity, id)
);

-- PSA metadata ("Sync PSA Data"): picklists and UDF definitions of the synced entities, so
-- downstream can show "Complete" instead of 5.
CREATE TABLE psa_picklists (
    connection    text NOT NULL,
    entity        text NOT NULL,            -- REST name, e.g. 'Tickets'
    field         text NOT NULL,            -- REST field name, e.g. 'status'
    value         text NOT NULL,            -- as Autotask sends it ('5')
    label         text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    is_default    boolean NOT NULL DEFAULT false,
    is_system     boolean NOT NULL DEFAULT false,
    sort_order    integer,
    parent_value  text,                     -- subIssueType -> issueType
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, entity, field, value)
);

CREATE TABLE psa_udf_definitions (
    connection    text NOT NULL,
    entity        text NOT NULL,
    name          text NOT NULL,
    label         text,
    data_type     text NOT NULL DEFAULT '',
    is_required   boolean NOT NULL DEFAULT false,
    is_picklist   boolean NOT NULL DEFAULT false,
    picklist      jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{value, label, isActive, ...}]
    definition    jsonb NOT NULL,                      -- everything Autotask said
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, entity, name)
);

CREATE FUNCTION autotask_sync_label(conn text, ent text, fld text, val text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT label FROM psa_picklists
          WHERE connection = conn AND entity = ent AND field = fld AND value = val $$;

-- Contracts (sweeps only: Autotask has no Contract webhooks)
CREATE TABLE contracts (
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
    contract_name    text GENERATED ALWAYS AS (entity ->> 'contractName') STORED,
    contract_number  text GENERATED ALWAYS AS (entity ->> 'contractNumber') STORED,
    contract_type    integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'contractType')) STORED,
    status           integer GENERATED ALWAYS AS (autotask_sync_integer(entity ->> 'status')) STORED,
    PRIMARY KEY (connection, id)
);

CREATE INDEX contracts_company_id ON contracts (connection, company_id);
CREATE INDEX contracts_status ON contracts (connection, status);
CREATE INDEX contracts_live ON contracts (connection, id) WHERE deleted_at IS NULL;

-- One view per entity: the mirror table plus the labels of its picklist columns.
CREATE VIEW tickets_labeled AS
SELECT t.*,
       autotask_sync_label(t.connection, 'Tickets', 'status', t.status::text) AS status_label,
       autotask_sync_label(t.connection, 'Tickets', 'priority', t.priority::text) AS priority_label,
       autotask_sync_label(t.connection, 'Tickets', 'queueID', t.queue_id::text) AS queue_label,
       autotask_sync_label(t.connection, 'Tickets', 'ticketType', t.entity ->> 'ticketType') AS ticket_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'source', t.entity ->> 'source') AS source_label,
       autotask_sync_label(t.connection, 'Tickets', 'issueType', t.entity ->> 'issueType') AS issue_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'subIssueType', t.entity ->> 'subIssueType') AS sub_issue_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'ticketCategory', t.entity ->> 'ticketCategory') AS ticket_category_label
FROM tickets t;

CREATE VIEW companies_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'Companies', 'companyType', c.company_type::text) AS company_type_label
FROM companies c;

CREATE VIEW contacts_labeled AS
SELECT c.* FROM contacts c;

CREATE VIEW configuration_items_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'ConfigurationItems', 'configurationItemType',
                           c.entity ->> 'configurationItemType') AS configuration_item_type_label
FROM configuration_items c;

CREATE VIEW ticket_notes_labeled AS
SELECT n.*,
       autotask_sync_label(n.connection, 'TicketNotes', 'noteType', n.note_type::text) AS note_type_label,
       autotask_sync_label(n.connection, 'TicketNotes', 'publish', n.publish::text) AS publish_label
FROM ticket_notes n;

CREATE VIEW resources_labeled AS
SELECT r.*,
       autotask_sync_label(r.connection, 'Resources', 'licenseType', r.entity ->> 'licenseType') AS license_type_label
FROM resources r;

CREATE VIEW contracts_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'Contracts', 'contractType', c.contract_type::text) AS contract_type_label,
       autotask_sync_label(c.connection, 'Contracts', 'status', c.status::text) AS status_label
FROM contracts c;

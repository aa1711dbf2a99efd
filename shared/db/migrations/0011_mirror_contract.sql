-- The mirror as a contract with downstream readers (docs/consumers.md): its own schema, apart
-- from the services' state (encrypted credentials among it); a read-only role; comments on every
-- table and column; views of the live rows; one SQL type per meaning; UDFs keyed by name.

CREATE SCHEMA autotask;
COMMENT ON SCHEMA autotask IS
    'The Autotask mirror: one table per entity, their views and sync status, read-only for '
    'the role autotask_reader (docs/consumers.md). The services'' state lives elsewhere.';

-- The views of 0007 list the columns tables had then, and contacts_labeled pins the column
-- whose type changes below: they are made again in the schema.
DROP VIEW tickets_labeled, companies_labeled, contacts_labeled, configuration_items_labeled,
    ticket_notes_labeled, resources_labeled, contracts_labeled;

-- Moving keeps rows, indexes, generated columns and change_seq (0010).
ALTER TABLE tickets SET SCHEMA autotask;
ALTER TABLE companies SET SCHEMA autotask;
ALTER TABLE contacts SET SCHEMA autotask;
ALTER TABLE configuration_items SET SCHEMA autotask;
ALTER TABLE ticket_notes SET SCHEMA autotask;
ALTER TABLE resources SET SCHEMA autotask;
ALTER TABLE contracts SET SCHEMA autotask;


-- User-defined fields as one object keyed by name ({"Region": "North"}), beside the list
-- Autotask sends ([{"name": "Region", "value": "North"}], kept in entity); {} when none.
CREATE FUNCTION autotask_sync_udfs(entity jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(jsonb_object_agg(udf ->> 'name', udf -> 'value'), '{}'::jsonb)
          FROM jsonb_array_elements(CASE jsonb_typeof(entity -> 'userDefinedFields')
                                    WHEN 'array' THEN entity -> 'userDefinedFields' END) AS udf
          WHERE jsonb_typeof(udf) = 'object' AND udf ->> 'name' IS NOT NULL $$;

ALTER TABLE autotask.tickets
    ADD COLUMN udfs jsonb GENERATED ALWAYS AS (autotask_sync_udfs(entity)) STORED;
ALTER TABLE autotask.companies
    ADD COLUMN udfs jsonb GENERATED ALWAYS AS (autotask_sync_udfs(entity)) STORED;
ALTER TABLE autotask.configuration_items
    ADD COLUMN udfs jsonb GENERATED ALWAYS AS (autotask_sync_udfs(entity)) STORED;
-- Contacts' isActive is 0/1 in the API where other entities send a boolean: the column becomes
-- boolean like theirs (entity keeps what Autotask sent). One rewrite of the table for both.
ALTER TABLE autotask.contacts
    DROP COLUMN is_active,
    ADD COLUMN is_active boolean
        GENERATED ALWAYS AS (autotask_sync_boolean(entity ->> 'isActive')) STORED,
    ADD COLUMN udfs jsonb GENERATED ALWAYS AS (autotask_sync_udfs(entity)) STORED;
CREATE INDEX contacts_is_active ON autotask.contacts (connection, is_active);


-- PSA metadata for readers: the labels of picklist values, and the UDF definitions (their
-- picklists included). The label function reads through the view, so a reader of the labeled views
-- needs no grant on the state table behind it.
CREATE VIEW autotask.picklists AS
SELECT connection, entity, field, value, label, is_active, is_default, is_system, sort_order,
       parent_value, refreshed_at
FROM psa_picklists;
COMMENT ON VIEW autotask.picklists IS
    'Picklist values and their labels per connection, entity (REST name) and field (REST field '
    'name); refreshed by refresh-metadata. UDF picklists: autotask.udf_definitions.';

CREATE VIEW autotask.udf_definitions AS
SELECT connection, entity, name, label, data_type, is_required, is_picklist, picklist,
       refreshed_at
FROM psa_udf_definitions;
COMMENT ON VIEW autotask.udf_definitions IS
    'The user-defined fields of each connection and entity (REST name): name (the key in udfs), '
    'label, data type and, for picklists, their values.';

CREATE OR REPLACE FUNCTION autotask_sync_label(conn text, ent text, fld text, val text)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT label FROM autotask.picklists
          WHERE connection = conn AND entity = ent AND field = fld AND value = val $$;


-- Every row with the labels of its picklist columns (deleted and out-of-scope rows included),
-- and the live rows only: those that exist in Autotask and are in the connection's scope. The
-- indexes named <table>_live (rows not deleted) give their names to those views.
CREATE VIEW autotask.tickets_labeled AS
SELECT t.*,
       autotask_sync_label(t.connection, 'Tickets', 'status', t.status::text) AS status_label,
       autotask_sync_label(t.connection, 'Tickets', 'priority', t.priority::text) AS priority_label,
       autotask_sync_label(t.connection, 'Tickets', 'queueID', t.queue_id::text) AS queue_label,
       autotask_sync_label(t.connection, 'Tickets', 'ticketType', t.entity ->> 'ticketType') AS ticket_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'source', t.entity ->> 'source') AS source_label,
       autotask_sync_label(t.connection, 'Tickets', 'issueType', t.entity ->> 'issueType') AS issue_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'subIssueType', t.entity ->> 'subIssueType') AS sub_issue_type_label,
       autotask_sync_label(t.connection, 'Tickets', 'ticketCategory', t.entity ->> 'ticketCategory') AS ticket_category_label
FROM autotask.tickets t;

CREATE VIEW autotask.companies_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'Companies', 'companyType', c.company_type::text) AS company_type_label
FROM autotask.companies c;

CREATE VIEW autotask.contacts_labeled AS
SELECT c.* FROM autotask.contacts c;

CREATE VIEW autotask.configuration_items_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'ConfigurationItems', 'configurationItemType',
                           c.entity ->> 'configurationItemType') AS configuration_item_type_label
FROM autotask.configuration_items c;

CREATE VIEW autotask.ticket_notes_labeled AS
SELECT n.*,
       autotask_sync_label(n.connection, 'TicketNotes', 'noteType', n.note_type::text) AS note_type_label,
       autotask_sync_label(n.connection, 'TicketNotes', 'publish', n.publish::text) AS publish_label
FROM autotask.ticket_notes n;

CREATE VIEW autotask.resources_labeled AS
SELECT r.*,
       autotask_sync_label(r.connection, 'Resources', 'licenseType', r.entity ->> 'licenseType') AS license_type_label
FROM autotask.resources r;

CREATE VIEW autotask.contracts_labeled AS
SELECT c.*,
       autotask_sync_label(c.connection, 'Contracts', 'contractType', c.contract_type::text) AS contract_type_label,
       autotask_sync_label(c.connection, 'Contracts', 'status', c.status::text) AS status_label
FROM autotask.contracts c;

DO $$
DECLARE
    mirror text;
BEGIN
    FOR mirror IN SELECT tablename FROM pg_tables WHERE schemaname = 'autotask' LOOP
        EXECUTE format('ALTER INDEX autotask.%I RENAME TO %I',
                       mirror || '_live', mirror || '_not_deleted');
        EXECUTE format('CREATE VIEW autotask.%I AS SELECT * FROM autotask.%I '
                       'WHERE deleted_at IS NULL AND out_of_scope_at IS NULL',
                       mirror || '_live', mirror || '_labeled');
        EXECUTE format('COMMENT ON VIEW autotask.%I IS %L', mirror || '_labeled',
                       format('Every row of autotask.%s (deleted and out-of-scope ones included) '
                              'with the labels of its picklist columns.', mirror));
        EXECUTE format('COMMENT ON VIEW autotask.%I IS %L', mirror || '_live',
                       format('The rows of autotask.%s that exist in Autotask and are in the '
                              'connection''s sync scope, with the labels of its picklist '
                              'columns: what most queries want.', mirror));
    END LOOP;
END $$;


-- When the sweeps last ran (sync_runs and sweep_last_runs are state tables).
CREATE VIEW autotask.sync_status AS
SELECT l.connection, l.entity, l.mode,
       l.status AS last_run_status, l.started_at AS last_run_started_at,
       l.finished_at AS last_run_finished_at,
       ok.started_at AS last_success_started_at, ok.finished_at AS last_success_finished_at
FROM sweep_last_runs l
LEFT JOIN LATERAL (
    SELECT r.started_at, r.finished_at FROM sync_runs r
    WHERE r.connection = l.connection AND r.entity = l.entity AND r.mode = l.mode
      AND r.status = 'succeeded'
    ORDER BY r.started_at DESC
    LIMIT 1
) ok ON true;
COMMENT ON VIEW autotask.sync_status IS
    'The last sweep of each connection, entity (REST name; * for the PSA metadata) and mode '
    '(incremental, catchup, full, ids, backfill, resync, metadata), and its last success.';


-- Comments: the tables, the columns every mirror table has, and the promoted ones.
COMMENT ON TABLE autotask.tickets IS
    'Autotask Tickets (REST entity Tickets), one row per ticket and connection, deleted and '
    'out-of-scope ones included (tickets_live: the live ones).';
COMMENT ON TABLE autotask.companies IS
    'Autotask Companies (REST entity Companies), one row per company and connection, deleted '
    'and out-of-scope ones included (companies_live: the live ones).';
COMMENT ON TABLE autotask.contacts IS
    'Autotask Contacts (REST entity Contacts), one row per contact and connection, deleted and '
    'out-of-scope ones included (contacts_live: the live ones).';
COMMENT ON TABLE autotask.configuration_items IS
    'Autotask ConfigurationItems (REST entity ConfigurationItems), one row per configuration '
    'item and connection, deleted and out-of-scope ones included (configuration_items_live: '
    'the live ones).';
COMMENT ON TABLE autotask.ticket_notes IS
    'Autotask TicketNotes (REST entity TicketNotes), one row per ticket note and connection, '
    'deleted and out-of-scope ones included (ticket_notes_live: the live ones).';
COMMENT ON TABLE autotask.resources IS
    'Autotask Resources (REST entity Resources), one row per resource and connection, deleted '
    'ones included (resources_live: the live ones).';
COMMENT ON TABLE autotask.contracts IS
    'Autotask Contracts (REST entity Contracts), one row per contract and connection, deleted '
    'and out-of-scope ones included (contracts_live: the live ones).';

DO $$
DECLARE
    mirror text;
    col text;
    note text;
BEGIN
    FOR mirror, col, note IN
        SELECT c.table_name, c.column_name, n.note
        FROM information_schema.columns c
        JOIN (VALUES
            ('connection', 'The connection (one Autotask tenant) the row belongs to; '
                           '(connection, id) is the primary key.'),
            ('id', 'The Autotask id of the record.'),
            ('entity', 'The record as the Autotask REST API returned it, in full. A record '
                       'deleted before it was ever read holds only {"id": ...}.'),
            ('version', 'The record''s last-modified value (NULL for entities without one): '
                        'an older snapshot never replaces a newer one.'),
            ('fetched_at', 'When the stored snapshot was read from Autotask.'),
            ('content_hash', 'sha256 of entity''s canonical JSON (unchanged snapshots are not '
                             'written).'),
            ('synced_at', 'When the row was last written.'),
            ('deleted_at', 'When the record was found deleted in Autotask (the row stays, '
                           'with its last state, out of the _live view). NULL while it exists.'),
            ('out_of_scope_at', 'When the record left the connection''s sync scope (the row '
                                'stays, out of the _live view). NULL while in scope.'),
            ('origin', 'What wrote the row last: webhook, sweep or backfill.'),
            ('callout_sequence', 'SequenceNumber of the webhook callout behind the last write, '
                                 'when one was.'),
            ('change_seq', 'Count of the row''s changes (created, updated, deleted, left or '
                           're-entered the scope); part of the change events'' ce_id.'),
            ('udfs', 'The user-defined fields as one object keyed by UDF name '
                     '({"name": value}), {} when none; generated from entity.')
        ) AS n (column_name, note) ON n.column_name = c.column_name
        WHERE c.table_schema = 'autotask'
          AND c.table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'autotask')
    LOOP
        EXECUTE format('COMMENT ON COLUMN autotask.%I.%I IS %L', mirror, col, note);
    END LOOP;

    -- The label columns of the views.
    FOR mirror, col IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'autotask' AND column_name LIKE '%\_label'
    LOOP
        EXECUTE format('COMMENT ON COLUMN autotask.%I.%I IS %L', mirror, col,
                       'The label of the value (autotask.picklists); NULL when it has none or '
                       'the PSA metadata was not loaded yet.');
    END LOOP;
END $$;

-- Promoted columns: generated from entity (NULL when Autotask sends none, or a value of an
-- unexpected shape); names are the REST API's fields.
COMMENT ON COLUMN autotask.tickets.ticket_number IS 'ticketNumber, e.g. T20240101.0001.';
COMMENT ON COLUMN autotask.tickets.title IS 'title.';
COMMENT ON COLUMN autotask.tickets.status IS 'status (picklist: status_label in the views).';
COMMENT ON COLUMN autotask.tickets.priority IS 'priority (picklist: priority_label).';
COMMENT ON COLUMN autotask.tickets.queue_id IS 'queueID (picklist: queue_label).';
COMMENT ON COLUMN autotask.tickets.company_id IS 'companyID: the company (autotask.companies.id).';
COMMENT ON COLUMN autotask.tickets.assigned_resource_id IS
    'assignedResourceID: the assigned resource (autotask.resources.id).';

COMMENT ON COLUMN autotask.companies.company_name IS 'companyName.';
COMMENT ON COLUMN autotask.companies.company_type IS
    'companyType (picklist: company_type_label in the views).';
COMMENT ON COLUMN autotask.companies.is_active IS 'isActive.';
COMMENT ON COLUMN autotask.companies.owner_resource_id IS
    'ownerResourceID: the owning resource (autotask.resources.id).';

COMMENT ON COLUMN autotask.contacts.company_id IS 'companyID: the company (autotask.companies.id).';
COMMENT ON COLUMN autotask.contacts.email_address IS 'emailAddress.';
COMMENT ON COLUMN autotask.contacts.first_name IS 'firstName.';
COMMENT ON COLUMN autotask.contacts.last_name IS 'lastName.';
COMMENT ON COLUMN autotask.contacts.is_active IS
    'isActive as a boolean (the API sends 1 or 0, which entity keeps).';

COMMENT ON COLUMN autotask.configuration_items.company_id IS
    'companyID: the company (autotask.companies.id).';
COMMENT ON COLUMN autotask.configuration_items.reference_title IS 'referenceTitle.';
COMMENT ON COLUMN autotask.configuration_items.serial_number IS 'serialNumber.';
COMMENT ON COLUMN autotask.configuration_items.is_active IS 'isActive.';

COMMENT ON COLUMN autotask.ticket_notes.ticket_id IS 'ticketID: the ticket (autotask.tickets.id).';
COMMENT ON COLUMN autotask.ticket_notes.note_type IS
    'noteType (picklist: note_type_label in the views).';
COMMENT ON COLUMN autotask.ticket_notes.publish IS 'publish (picklist: publish_label).';
COMMENT ON COLUMN autotask.ticket_notes.title IS 'title.';

COMMENT ON COLUMN autotask.resources.user_name IS 'userName.';
COMMENT ON COLUMN autotask.resources.email IS 'email.';
COMMENT ON COLUMN autotask.resources.is_active IS 'isActive.';

COMMENT ON COLUMN autotask.contracts.company_id IS 'companyID: the company (autotask.companies.id).';
COMMENT ON COLUMN autotask.contracts.contract_name IS 'contractName.';
COMMENT ON COLUMN autotask.contracts.contract_number IS 'contractNumber.';
COMMENT ON COLUMN autotask.contracts.contract_type IS
    'contractType (picklist: contract_type_label in the views).';
COMMENT ON COLUMN autotask.contracts.status IS 'status (picklist: status_label).';


-- The read-only role of downstream users. NOLOGIN: operators grant it to their own login
-- roles. Made here unless it exists (roles belong to the whole server); where the user running
-- the migrations may not create roles, it is skipped with a warning and this function grants
-- once someone has made the role (docs/consumers.md). Default privileges cover the tables and
-- views later migrations add to the schema.
CREATE FUNCTION autotask_sync_grant_reader() RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    owner regrole := (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'autotask');
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'autotask_reader') THEN
        BEGIN
            CREATE ROLE autotask_reader NOLOGIN;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role autotask_reader not created: % may not create roles. '
                    'Have it created (CREATE ROLE autotask_reader NOLOGIN), then run '
                    'SELECT autotask_sync_grant_reader() as %', current_user, owner;
                RETURN false;
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made at the same moment by the migration of another database
        END;
    END IF;
    GRANT USAGE ON SCHEMA autotask TO autotask_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA autotask TO autotask_reader;
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA autotask '
                   'GRANT SELECT ON TABLES TO autotask_reader', owner);
    RETURN true;
END $$;

SELECT autotask_sync_grant_reader();

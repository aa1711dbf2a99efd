-- The sync scope the mirror of each connection and entity follows (shared/scope/applied.py).
--
-- scope       the connection's scope (its stored JSON form) the last load or scope
--             reconciliation of the entity applied; when the connection's scope draws a
--             different boundary for the entity, the reconciler brings the mirror to the new one
--             (shared/reconcile/rescope.py) and then records it here
-- applied_at  when that happened
--
-- Entities loaded before this table existed have no row: their mirror is taken to follow the
-- scope of the moment (recorded at the first look), as it did when it was loaded.

CREATE TABLE sync_scope_applied (
    connection  text NOT NULL,
    entity      text NOT NULL,
    scope       jsonb NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, entity)
);

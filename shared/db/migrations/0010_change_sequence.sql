-- A per-row change counter for the change events' ids (shared/messages/change.py, ce_id).
--
-- change_seq  how many changes of the row were published downstream: the monotonic upsert
--             (shared/mirror/store.py) adds one in the same statement as each real change
--             (created, updated, deleted, left the sync scope, back in scope) and never for an
--             unchanged or stale snapshot. The write and its events commit together, so work
--             redone after a rollback finds the same counter and its events the same ids, while
--             a row going A -> B -> A -> B gets a new id for every change.
--
-- Rows already mirrored start at 0: their next change is 1.

ALTER TABLE tickets ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE companies ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE configuration_items ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE ticket_notes ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE resources ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE contracts ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;

-- What a reconciliation run found outside the connection's sync scope (shared/reconcile/runs.py).
--
-- out_of_scope  rows the run read and judged outside the scope (kept out of the mirror, or
--               leaving it now) and rows a narrowed scope marked: before, those were counted as
--               unchanged (or, when they left, as deleted), so a run under a narrow scope
--               seemed to find thousands of unchanged rows.
--
-- Runs recorded before this column existed show 0.

ALTER TABLE sync_runs ADD COLUMN out_of_scope bigint NOT NULL DEFAULT 0;

"""Reconciliation: the sweeps that make the mirror converge whatever the webhooks missed.

Two processes need it (the reconciler service and its one-shot commands, and the worker's
in-process scheduler), and no service imports another, so it lives here
(docs/adr/0007-reconciliation-in-shared.md). One concept per module, its state beside it:

    settings.py       SweepSettings (environment) and SweepPolicy (what the engine reads)
    due.py            what is due per connection and entity (pure)
    scheduler.py      the loop: due runs and requests, bounded concurrency; start_sweeps()
    control.py        SweepRequested from the control topic -> catch-up jobs
    jobs.py           Reconciler: one job (duplicate rule, advisory lock, the run's record, mode)
    context.py        a run in progress: reads at sweep priority, the one write path, counts
    incremental.py    lastModified >= watermark - overlap, delete logs, unresolved ids
    delete_sweep.py   delete logs, the id sweep, unseen rows: read, confirm, apply
    delete_guard.py   what may be deleted (pure: complete read, mass-delete guard, confirmation)
    backfill.py       complete reads: backfill, resync, full (resumable by id cursor)
    metadata.py       picklists and UDF definitions ("Sync PSA Data")
    progress.py       progress reports (log lines; the commands add a bar)

State (SQL) modules: runs.py (``sync_runs``, ``sweep_last_runs``), watermarks.py
(``sweep_watermarks``, ``mirror_rebuild``), unresolved.py (``unresolved_ids``: ids the worker
could not fetch, for the next sweep), picklists.py (``psa_picklists``, ``psa_udf_definitions``).
"""

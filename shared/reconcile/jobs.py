"""Running one reconciliation job: the lock, the duplicate rule, the run's record, the mode.

:meth:`Reconciler.run` is what the scheduler, the control-topic requests and the commands call:

1. the sweep lock of the connection and entity (a PostgreSQL advisory lock on its own
   session) is taken: one sweeper across every replica. A scheduled job finding it held
   skips (someone is on it); a command waits for it;
2. a request (``cli``, ``control``) that repeats one of the same connection, entity and mode made
   within the request window (2 minutes) and that ran or is running is recorded as ``skipped``
   and not run: MSPortal's rule (checked at once when the lock is held by its twin, and again
   under the lock);
3. under the lock, runs a dead process left ``running`` are closed first (so a killed run never
   blocks its retry), a scheduled job is dropped when another replica ran it meanwhile, and the
   run is recorded;
4. the mode runs; the run is closed ``succeeded``, ``aborted`` (the mass-delete guard refused;
   logged at error, counted) or ``failed`` (with the error, saying what to do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.connections.catalogue import ConnectionCatalogue, ServedConnection
from shared.db import Pool, session
from shared.db.locks import AdvisoryLock, lock_key
from shared.entities import by_rest_name, find_rest_name
from shared.errors import ConfigError, SyncError
from shared.kafka import produce
from shared.kafka.producer import AnyProducer
from shared.logging import get_logger
from shared.messages.change import ValueFormat
from shared.messages.control import BackfillFinished, encode_control
from shared.messages.topics import Topics
from shared.metrics import METADATA_REFRESHES, SWEEP_RUN_SECONDS, SWEEP_RUNS
from shared.mirror.writer import Mirror
from shared.reconcile import backfill, delete_sweep, incremental, metadata, rescope, runs
from shared.reconcile.context import Interrupted, MassDeleteRefused, SweepContext
from shared.reconcile.delete_guard import DeletePolicy
from shared.reconcile.due import METADATA_ENTITY, Job
from shared.reconcile.progress import Fanout, LogProgress, Progress
from shared.reconcile.settings import SweepPolicy
from shared.scope import applied as applied_scopes

log = get_logger(__name__)

Outcome = Literal["succeeded", "failed", "aborted", "skipped", "locked", "not_due"]


@dataclass(frozen=True, slots=True)
class Result:
    """What came of a job: its outcome, and its run when one was recorded."""

    job: Job
    outcome: Outcome
    run: runs.Run | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Options:
    """How a caller wants one job run."""

    wait: timedelta | None = None
    """Wait this long for the lock (commands); None: skip when it is held (the schedule)."""
    progress: Progress | None = None
    max_delete_share: float | None = None
    """Override of the mass-delete guard for this run (``--max-delete-share``)."""
    restart: bool = False
    """Complete reads: start over instead of resuming an unfinished read."""
    on_wait: Callable[[str], None] | None = None
    """Told once when the job starts waiting for the lock (the command prints it)."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class Reconciler:
    """Runs jobs for the connections of a catalogue; see the module docstring."""

    def __init__(
        self,
        *,
        catalogue: ConnectionCatalogue,
        pool: Pool,
        producer: AnyProducer,
        topics: Topics,
        dsn: str,
        policy: SweepPolicy,
        value_format: ValueFormat = "json",
    ) -> None:
        self._catalogue = catalogue
        self._pool = pool
        self._producer = producer
        self._topics = topics
        self._dsn = dsn
        self.policy = policy
        self._mirror = Mirror(pool, producer, topics, value_format=value_format)

    async def run(self, job: Job, options: Options | None = None) -> Result:
        """Run ``job`` (see the module docstring); never raises for the job's own failure."""
        options = options or Options()
        served = self._catalogue.get(job.connection)
        _check_synced(served, job)
        job = replace(job, requested_at=job.requested_at or datetime.now(UTC))
        lock = AdvisoryLock(
            self._dsn, lock_key("sweep", job.connection, job.entity), name=f"sweep {job.key}"
        )
        got = await lock.try_acquire()
        if not got:
            # Held: a twin request that is running now makes this one a duplicate at once
            # (a "running" row is only trusted while someone holds the lock).
            duplicate = await self._duplicate(job)
            if duplicate is not None:
                return await self._skip(job, duplicate)
        if not got and options.wait is not None:
            if options.on_wait is not None:
                options.on_wait(f"waiting for the running sweep of {job.entity} to finish")
            got = await lock.acquire(wait=options.wait)
        if not got:
            SWEEP_RUNS.labels(job.connection, job.entity, job.mode, "locked").inc()
            return Result(job, "locked", message="another process is sweeping it")
        try:
            async with session(self._pool, "close the runs a dead process left") as db:
                await runs.abandon_running(db, job.connection, job.entity)
            duplicate = await self._duplicate(job)
            if duplicate is not None:
                return await self._skip(job, duplicate)
            if job.trigger == "schedule" and await self._ran_meanwhile(job):
                SWEEP_RUNS.labels(job.connection, job.entity, job.mode, "not_due").inc()
                return Result(job, "not_due")
            return await self._execute(job, served, options)
        finally:
            await lock.release()

    # --- the duplicate rule ------------------------------------------------------------------
    async def _duplicate(self, job: Job) -> runs.Run | None:
        if job.trigger not in runs.REQUESTS:
            return None
        assert job.requested_at is not None
        async with session(self._pool, "look for a twin request") as db:
            return await runs.recent_request(
                db,
                connection=job.connection,
                entity=job.entity,
                mode=job.mode,
                since=job.requested_at,
                window=self.policy.request_window,
            )

    async def _skip(self, job: Job, previous: runs.Run) -> Result:
        ago = (job.requested_at or datetime.now(UTC)) - previous.requested_at
        message = (
            f"the same {job.mode} of {job.entity} for {job.connection!r} was requested "
            f"{ago.total_seconds():.0f} s ago (run {previous.id}, {previous.status}); the same "
            f"request within {self.policy.request_window.total_seconds() / 60:g} minutes runs "
            "once"
        )
        run = await self._record_start(
            job, "record a skipped request", status="skipped", detail={"duplicate_of": previous.id}
        )
        SWEEP_RUNS.labels(job.connection, job.entity, job.mode, "skipped").inc()
        log.info("duplicate request skipped", connection=job.connection, entity=job.entity,
                 mode=job.mode, duplicate_of=previous.id)  # fmt: skip
        return Result(job, "skipped", run, message)

    async def _record_start(
        self,
        job: Job,
        what: str,
        *,
        status: runs.Status = "running",
        detail: dict[str, Any] | None = None,
    ) -> runs.Run:
        """The job's row in ``sync_runs``."""
        assert job.requested_at is not None
        async with session(self._pool, what) as db:
            return await runs.start(
                db,
                connection=job.connection,
                entity=job.entity,
                mode=job.mode,
                trigger=job.trigger,
                requested_at=job.requested_at,
                since=job.since,
                status=status,
                detail=detail,
            )

    async def _ran_meanwhile(self, job: Job) -> bool:
        async with session(self._pool, "read the last runs") as db:
            last = (await runs.last_runs(db)).get((job.connection, job.entity, job.mode))
        return last is not None and (job.last_seen is None or last[0] > job.last_seen)

    # --- the run ---------------------------------------------------------------------------
    async def _execute(self, job: Job, served: ServedConnection, options: Options) -> Result:
        run = await self._record_start(job, "record the run")
        reports: list[Progress] = [
            LogProgress(
                connection=job.connection,
                entity=job.entity,
                mode=job.mode,
                every=self.policy.progress_every,
            )
        ]
        if options.progress is not None:
            reports.append(options.progress)
        progress = Fanout(reports)
        policy = self.policy
        if options.max_delete_share is not None:
            policy = replace(
                policy,
                deletes=DeletePolicy(
                    max_share=options.max_delete_share, min_rows=policy.deletes.min_rows
                ),
            )
        began = time.monotonic()
        status: Literal["succeeded", "failed", "aborted"] = "succeeded"
        error: str | None = None
        counts = runs.Counts()
        detail: dict[str, object] = {}
        log.info("run started", connection=job.connection, entity=job.entity, mode=job.mode,
                 trigger=job.trigger, run=run.id)  # fmt: skip
        try:
            if job.mode == "metadata":
                counts, detail = await self._metadata(job, served)
            else:
                ctx = SweepContext(
                    connection=job.connection,
                    entity=by_rest_name(job.entity),
                    mode=job.mode,
                    client=self._catalogue.client(job.connection),
                    scope=served.scope,
                    pool=self._pool,
                    mirror=self._mirror,
                    policy=policy,
                    progress=progress,
                    run=run,
                    stop=options.stop,
                )
                counts, detail = ctx.counts, ctx.detail
                await self._mode(ctx, job, options)
        except MassDeleteRefused as exc:
            status, error = "aborted", str(exc)
        except Interrupted as exc:
            status, error = "failed", f"{exc} (it resumes where it can)"
        except SyncError as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("run failed", connection=job.connection, entity=job.entity,
                      mode=job.mode, run=run.id, error=error)  # fmt: skip
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("run crashed", connection=job.connection, entity=job.entity,
                          mode=job.mode, run=run.id)  # fmt: skip
        except asyncio.CancelledError:
            closing = self._close(run, "failed", counts, "cancelled at shutdown", detail)
            await asyncio.shield(closing)
            raise
        finally:
            progress.finished()
        closed = await self._close(run, status, counts, error, detail)
        SWEEP_RUN_SECONDS.labels(job.mode).observe(time.monotonic() - began)
        SWEEP_RUNS.labels(job.connection, job.entity, job.mode, status).inc()
        log.info("run finished", connection=job.connection, entity=job.entity, mode=job.mode,
                 run=run.id, status=status, pages=counts.pages, api_calls=counts.api_calls,
                 fetched=counts.fetched, created=counts.created, updated=counts.updated,
                 unchanged=counts.unchanged, deleted=counts.deleted, repaired=counts.repaired,
                 out_of_scope=counts.out_of_scope, error=error)  # fmt: skip
        return Result(job, status, closed, error or "")

    async def _close(
        self,
        run: runs.Run,
        status: runs.Status,
        counts: runs.Counts,
        error: str | None,
        detail: dict[str, object],
    ) -> runs.Run:
        async with session(self._pool, "close the run") as db:
            return await runs.finish(
                db, run, status=status, counts=counts, error=error, detail=_jsonable(detail)
            )

    async def _mode(self, ctx: SweepContext, job: Job, options: Options) -> None:
        modes: dict[str, Callable[[], Awaitable[None]]] = {
            "incremental": lambda: incremental.sweep(ctx),
            "catchup": lambda: incremental.sweep(ctx, since=job.since),
            "ids": lambda: delete_sweep.id_sweep(ctx),
            "backfill": lambda: backfill.complete_read(ctx, restart=options.restart),
            "resync": lambda: backfill.complete_read(ctx, restart=options.restart),
            "full": lambda: backfill.complete_read(ctx, restart=options.restart),
            "scope": lambda: self._rescope(ctx, options),
        }
        await modes[job.mode]()
        if job.mode == "backfill":
            async with session(self._pool, "record the scope the first load followed") as db:
                await applied_scopes.record(db, job.connection, job.entity, ctx.scope)
            event = BackfillFinished(
                connection=job.connection, entity=job.entity, rows=ctx.counts.fetched
            )
            key, value = encode_control(event)
            await produce(self._producer, self._topics.control, key=key, value=value)

    async def _rescope(self, ctx: SweepContext, options: Options) -> None:
        async with session(self._pool, "read the scope the mirror follows") as db:
            previous = await applied_scopes.read(db, ctx.connection, ctx.entity.rest_name)
        await rescope.reconcile(ctx, previous=previous, restart=options.restart)

    async def _metadata(
        self, job: Job, served: ServedConnection
    ) -> tuple[runs.Counts, dict[str, object]]:
        try:
            done = await metadata.refresh(
                self._catalogue.client(job.connection),
                self._pool,
                job.connection,
                served.scope.synced(),
            )
        except SyncError:
            METADATA_REFRESHES.labels(job.connection, "failed").inc()
            raise
        METADATA_REFRESHES.labels(job.connection, "succeeded").inc()
        counts = runs.Counts(api_calls=done.api_calls, fetched=done.picklist_values + done.udfs)
        detail: dict[str, object] = {
            "entities": done.entities,
            "picklist_values": done.picklist_values,
            "udfs": done.udfs,
        }
        return counts, detail


def _check_synced(served: ServedConnection, job: Job) -> None:
    if job.entity == METADATA_ENTITY:
        return
    spec = find_rest_name(job.entity)
    if spec is None:
        raise ConfigError(f"unknown entity {job.entity!r}")
    if not served.scope.syncs(spec) and job.mode != "scope":  # scope: its rows leave
        synced = ", ".join(s.rest_name for s in served.scope.synced())
        raise ConfigError(
            f"connection {job.connection!r} does not sync {spec.rest_name} (it syncs {synced}); "
            "add it to the connection's scope with `autotask-sync connections edit`"
        )


def _jsonable(detail: dict[str, object]) -> dict[str, object]:
    plain = (str, int, float, bool, type(None), dict, list)
    return {k: v if isinstance(v, plain) else str(v) for k, v in detail.items()}


__all__ = ["Options", "Outcome", "Reconciler", "Result"]

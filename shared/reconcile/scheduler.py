"""The scheduler loop: what is due (:mod:`shared.reconcile.due`), requests from the control
topic, a bounded number of runs at once.

It runs in the reconciler service and, switchable off (``AUTOTASK_SYNC_SWEEPS_ENABLED``), inside
every worker. Every replica may run it: a run takes the sweep's advisory lock and re-checks that
it is still due, so each connection and entity is swept by one of them at a time, at the
schedule's pace. Requests (catch-up sweeps after a webhook came back) wait in memory until their
entity is free; one lost with its process costs nothing but time, because the next incremental
sweep reads from the watermark, which already covers any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from shared.connections.catalogue import ConnectionCatalogue
from shared.db import Pool, database_dsn, session
from shared.errors import SyncError
from shared.kafka import client_config, control_consumer
from shared.kafka.producer import AnyProducer
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.reconcile import control, runs, watermarks
from shared.reconcile.due import COMPLETE_READS, Job, LoadState, Schedule, View
from shared.reconcile.jobs import Options, Reconciler, Result
from shared.reconcile.settings import SweepSettings
from shared.runtime.runner import ServiceRunner
from shared.scope import applied as applied_scopes

log = get_logger(__name__)

REQUEST_ATTEMPTS = 20
"""A request whose entity stays locked is given up after this many checks (the schedule's
sweeps cover it anyway)."""


class Scheduler:
    """Starts due runs and requested ones; see the module docstring."""

    def __init__(
        self,
        *,
        reconciler: Reconciler,
        catalogue: ConnectionCatalogue,
        pool: Pool,
        schedule: Schedule,
        concurrency: int = 2,
        check_interval: timedelta = timedelta(seconds=15),
    ) -> None:
        self._reconciler = reconciler
        self._catalogue = catalogue
        self._pool = pool
        self._schedule = schedule
        self._concurrency = concurrency
        self._check_interval = check_interval
        self._requests: deque[tuple[Job, int]] = deque()
        self._running: dict[tuple[str, str], asyncio.Task[Result]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.results: deque[Result] = deque(maxlen=200)
        # A scope edited (or a connection added) is looked at now, not at the next check.
        catalogue.subscribe(lambda _change: self._wake.set())

    def request(self, job: Job) -> None:
        """Run ``job`` as soon as its connection and entity are free."""
        self._requests.append((job, 0))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: start what is due; then let the runs end after their current page."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except SyncError as exc:
                    log.warning("scheduler check failed; retrying", error=str(exc))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(self._wake, stop), self._check_interval.total_seconds()
                    )
        finally:
            self._stop.set()
            running = list(self._running.values())
            try:
                if running:
                    await asyncio.wait(running)
            except asyncio.CancelledError:
                for task in running:  # past the drain budget: close their runs and locks now
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                raise

    async def tick(self) -> list[Job]:
        """Start what is due now; returns the jobs started."""
        started: list[Job] = []
        for _ in range(len(self._requests)):
            job, attempts = self._requests.popleft()
            if job.key in self._running or len(self._running) >= self._concurrency:
                self._requests.append((job, attempts))
                continue
            self._start(job, attempts)
            started.append(job)
        if len(self._running) >= self._concurrency:
            return started
        view = await self.view()
        for job in self._schedule.due(datetime.now(UTC), view):
            if len(self._running) >= self._concurrency:
                break
            if job.key in self._running or any(job.key == j.key for j, _ in self._requests):
                continue
            self._start(job, 0)
            started.append(job)
        return started

    async def view(self) -> View:
        served = self._catalogue.served()
        async with session(self._pool, "read what the sweeps have done") as db:
            loads = await watermarks.read_all(db, watermarks.BACKFILL)
            last = await runs.last_runs(db)
            applied = await applied_scopes.read_all(db)
            # Loaded before scopes were recorded: the mirror follows the scope of the moment.
            for name, connection in served.items():
                for spec in connection.scope.synced():
                    key = (name, spec.rest_name)
                    state = loads.get(key)
                    if key not in applied and state is not None and state.completed_at:
                        await applied_scopes.record(db, name, spec.rest_name, connection.scope)
                        applied[key] = connection.scope
        return View(
            scopes={name: s.scope for name, s in served.items()},
            applied=applied,
            synced={name: tuple(s.scope.synced()) for name, s in served.items()},
            loads={
                key: LoadState(
                    loaded=state.completed_at is not None,
                    walking=state.walk_mode
                    if state.walking and state.walk_mode in COMPLETE_READS
                    else None,
                )
                for key, state in loads.items()
            },
            last={key: started for key, (started, _status) in last.items()},
        )

    def _start(self, job: Job, attempts: int) -> None:
        task = asyncio.create_task(self._one(job, attempts), name=f"sweep-{job.key}")
        self._running[job.key] = task

    async def _one(self, job: Job, attempts: int) -> Result:
        try:
            result = await self._reconciler.run(job, Options(stop=self._stop))
        except SyncError as exc:  # e.g. the connection is no longer served
            log.warning("job not run", connection=job.connection, entity=job.entity,
                        mode=job.mode, error=str(exc))  # fmt: skip
            result = Result(job, "failed", message=str(exc))
        except Exception:
            log.exception("job crashed", connection=job.connection, entity=job.entity)
            result = Result(job, "failed", message="crashed")
        finally:
            self._running.pop(job.key, None)
            self._wake.set()
        retry = result.outcome == "locked" and job.trigger != "schedule"
        if retry and attempts + 1 < REQUEST_ATTEMPTS and not self._stop.is_set():
            self._requests.append((job, attempts + 1))
        self.results.append(result)
        return result

    @property
    def running(self) -> Mapping[tuple[str, str], asyncio.Task[Result]]:
        return dict(self._running)


async def _first(*events: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def schedule_from(settings: SweepSettings) -> Schedule:
    return Schedule(
        interval=settings.interval,
        id_interval=settings.id_sweep_interval,
        metadata_interval=settings.metadata_interval,
        backfill_on_first_load=settings.backfill_on_first_load,
    )


async def start_sweeps(
    runner: ServiceRunner,
    settings: SweepSettings,
    *,
    catalogue: ConnectionCatalogue,
    pool: Pool,
    producer: AnyProducer,
    topics: Topics,
) -> Scheduler:
    """Run the scheduler and the control-topic consumer of ``SweepRequested`` in this process
    (the reconciler service, or a worker with sweeps enabled)."""
    reconciler = Reconciler(
        catalogue=catalogue,
        pool=pool,
        producer=producer,
        topics=topics,
        dsn=database_dsn(settings),
        policy=settings.policy(),
        value_format=settings.change_value_format,
    )
    scheduler = Scheduler(
        reconciler=reconciler,
        catalogue=catalogue,
        pool=pool,
        schedule=schedule_from(settings),
        concurrency=settings.sweep_concurrency,
        check_interval=settings.sweep_check_interval,
    )
    consumer = await runner.enter(
        control_consumer(
            client_config(settings),
            topics.control,
            group_id=settings.control_group,
            client_id=f"{settings.kafka_client_id}-{runner.name}-sweeps",
        )
    )
    runner.spawn(scheduler.run(runner.stopping), name="sweeps")
    runner.spawn(control.consume(consumer, scheduler, runner.stopping), name="sweep-requests")
    log.info("sweeps scheduled", interval_s=settings.sweep_interval.total_seconds(),
             concurrency=settings.sweep_concurrency)  # fmt: skip
    return scheduler


__all__ = ["Scheduler", "schedule_from", "start_sweeps"]

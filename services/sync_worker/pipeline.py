"""The worker's steps, from a consumed callout to rows and change events.

    accept (read headers and body)  ->  coalesce (per connection and entity, adaptive window)
      ->  fetch (batched ``in`` queries, missing ids retried)  ->  scope  ->  mirror upsert
      ->  change events acknowledged  ->  offsets finished (the consumer commits them)

A unit's messages are finished only when everything derived from them is durable; until then
their offsets are not committed (architecture.md rule 3). Failures are sorted by the exception's
``retriable`` flag: load and outages are retried with back-off for as long as it takes (the
consumer pauses when too much is in flight); anything retrying cannot fix is dead-lettered after
``dead_letter_after`` attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.sync_worker import fetch as fetching
from services.sync_worker.coalesce import Coalescer, Item, Unit, WindowPolicy
from services.sync_worker.dlq import DeadLetters
from shared.autotask import Priority
from shared.connections.catalogue import ConnectionCatalogue
from shared.db import Pool, db_errors, session
from shared.entities import EntitySpec, by_callout_type, find_rest_name
from shared.errors import MessageError, SyncError
from shared.kafka.consumer import Record
from shared.logging import get_logger
from shared.messages.callout import (
    HEADER_CONNECTION,
    HEADER_ENTITY,
    HEADER_RECEIVED_AT,
    header_map,
    parse_callout,
    parse_instant,
)
from shared.metrics import (
    WORKER_API_CALLS,
    WORKER_CALLOUTS,
    WORKER_END_TO_END_SECONDS,
    WORKER_FETCH_SECONDS,
    WORKER_FETCHED_IDS,
    WORKER_RETRIES,
    WORKER_UNIT_CALLOUTS,
    WORKER_UNRESOLVED,
    WORKER_WINDOW_SECONDS,
)
from shared.mirror.store import Snapshot
from shared.mirror.writer import Applied, Mirror
from shared.reconcile import unresolved
from shared.runtime.backoff import Backoff, Retry
from shared.scope import membership
from shared.scope.follow import Family, follow

log = get_logger(__name__)

Finished = Callable[[list[Record]], None]


AUTOTASK_WAIT = timedelta(seconds=10)
"""A fetch running (or failed and waiting) this long is waiting on Autotask, not on the worker:
a healthy one takes a second or two, the client's own retries up to minutes while the API is
down or throttling."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    window: WindowPolicy = field(default_factory=WindowPolicy)
    max_ids_per_fetch: int = 500
    missing_retry_delays: tuple[timedelta, ...] = (
        timedelta(milliseconds=500),
        timedelta(seconds=1),
        timedelta(seconds=2),
    )
    dead_letter_after: int = 3
    dead_letter_min_age: timedelta = timedelta(seconds=30)
    """A failure retrying cannot fix is dead-lettered after ``dead_letter_after`` attempts and
    at least this long: a connection added a moment ago may not be in this replica's view yet."""
    retry_delay_max: timedelta = timedelta(seconds=30)
    """The longest wait between two attempts of a unit (or a dead-lettering) that failed."""
    concurrent_units: int = 8

    @property
    def retry_backoff(self) -> Backoff:
        """Capped exponential with full jitter, from 0.5 s to ``retry_delay_max``: replicas
        that failed together during an outage do not retry together."""
        cap = max(self.retry_delay_max, _SHORTEST_RETRY)
        return Backoff(first=min(_FIRST_RETRY, cap), cap=cap)


_FIRST_RETRY = timedelta(milliseconds=500)
_SHORTEST_RETRY = timedelta(milliseconds=1)


@dataclass
class _Poison:
    message: Record
    connection: str
    error: MessageError


class CalloutPipeline:
    """The consumer's sink (``accept``, and ``flush`` when partitions are revoked) and the loop
    that turns buckets into durable work."""

    def __init__(
        self,
        *,
        catalogue: ConnectionCatalogue,
        pool: Pool,
        mirror: Mirror,
        dead_letters: DeadLetters,
        finished: Finished,
        config: PipelineConfig | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._pool = pool
        self._mirror = mirror
        self._dead_letters = dead_letters
        self._finished = finished
        self.config = config or PipelineConfig()
        self._coalescer = Coalescer(max_ids=self.config.max_ids_per_fetch)
        self._poison: list[_Poison] = []
        self._wake = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.config.concurrent_units)
        self._stopping = False
        self._crashed: BaseException | None = None
        self._revoked: set[tuple[str, int]] = set()
        """Partitions being revoked whose buckets are to be flushed (:meth:`flush`)."""
        self._on_autotask: dict[int, tuple[str, float]] = {}
        self._to_follow: dict[int, Applied] = {}
        """Per unit in progress: what its writes moved across the scope's boundary and the
        children have not followed yet (kept across retries: a retry finds the parents
        already written, unchanged)."""
        """Units whose fetch is under way or failed on Autotask: unit id -> (connection, when
        the fetch started); cleared when a fetch returns."""

    def waiting_on_autotask(self) -> str | None:
        """Which connections' units have waited on Autotask for :data:`AUTOTASK_WAIT` or more
        (a fetch still retrying inside the client, or failed and waiting to be tried again: the
        API down, throttling, a credentials lockout), or None. The worker's stall is then
        Autotask's, which restarting the worker would not cure
        (:class:`shared.runtime.progress.Progress` ``excused``)."""
        since = time.monotonic() - AUTOTASK_WAIT.total_seconds()
        connections = sorted({c for c, started in self._on_autotask.values() if started <= since})
        if not connections:
            return None
        shown = ", ".join(connections[:5]) + (", ..." if len(connections) > 5 else "")
        return f"fetches waiting on Autotask for connection(s) {shown}"

    # --- the sink ---------------------------------------------------------------------------
    def accept(self, message: Record) -> None:
        """Read one callout message into its bucket (no I/O; unreadable ones are set aside)."""
        headers = header_map(message.headers)
        connection = headers.get(HEADER_CONNECTION, "")
        try:
            callout = parse_callout(message.value or b"")
            entity = _entity_of(headers.get(HEADER_ENTITY), callout.entity_type)
        except MessageError as exc:
            self._poison.append(_Poison(message, connection, exc))
            self._wake.set()
            return
        received = headers.get(HEADER_RECEIVED_AT)
        try:
            received_at = parse_instant(received) if received else datetime.now(UTC)
        except ValueError:
            received_at = datetime.now(UTC)
        WORKER_CALLOUTS.labels(connection, entity.rest_name).inc()
        self._coalescer.add(
            connection,
            entity,
            Item(
                message=message,
                id=callout.id,
                delete=callout.is_delete,
                received_at=received_at,
                sequence=callout.sequence_number,
            ),
            now=time.monotonic(),
        )
        self._wake.set()

    def flush(self, partitions: Collection[tuple[str, int]]) -> None:
        """``partitions`` (topic, partition) are being revoked: their buckets become units now,
        not when their window ends, so the revoke waits for fetches, not for windows."""
        self._revoked.update((topic, partition) for topic, partition in partitions)
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Turn due buckets into units until ``stop``; then flush every bucket, finish the
        units in progress and return."""
        while not stop.is_set():
            # Cleared before the work, not after it: a callout or a revoke arriving while a
            # unit waits for a slot below must cut the wait short, not wait for a window.
            self._wake.clear()
            if self._crashed is not None:
                # A bug, not an outage: its callouts were never finished, so their offsets
                # are not committed. Stopping the service hands them to the next start.
                raise self._crashed
            if self._revoked:
                revoked, self._revoked = self._revoked, set()
                await self._dispatch(self._coalescer.flush(holding=functools.partial(_of, revoked)))
            await self._dispatch(self._coalescer.due(now=time.monotonic(), window_for=self._window))
            await self._handle_poison()
            wait = self._coalescer.next_due(now=time.monotonic(), window_for=self._window)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self._wake, stop),
                    timeout=wait if wait is not None else 1.0,
                )
        self._stopping = True
        await self._dispatch(self._coalescer.flush())
        await self._handle_poison()
        if self._active:
            await asyncio.wait(self._active)

    def _window(self, connection: str) -> timedelta:
        usage = None
        with contextlib.suppress(SyncError):
            usage = self._catalogue.client(connection).budget.pressure
        window = self.config.window.window(usage)
        WORKER_WINDOW_SECONDS.labels(connection).set(window.total_seconds())
        return window

    async def _dispatch(self, units: list[Unit]) -> None:
        for unit in units:
            await self._slots.acquire()
            task = asyncio.create_task(self._process(unit), name=f"unit-{unit.connection}")
            self._active.add(task)
            task.add_done_callback(self._unit_done)

    def _unit_done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("fetch unit crashed", exc_info=task.exception())
            self._crashed = self._crashed or task.exception()
            self._wake.set()

    async def _handle_poison(self) -> None:
        poison, self._poison = self._poison, []
        for item in poison:
            await self._retrying_forever(
                functools.partial(
                    self._dead_letters.send,
                    [item.message],
                    connection=item.connection,
                    error=item.error,
                    attempts=1,
                    first_failed_at=datetime.now(UTC),
                ),
                what="dead-letter an unreadable callout",
            )
            self._finished([item.message])

    # --- one unit ---------------------------------------------------------------------------
    async def _process(self, unit: Unit) -> None:
        try:
            await self._process_until_done(unit)
        finally:
            self._on_autotask.pop(id(unit), None)
            self._to_follow.pop(id(unit), None)

    async def _process_until_done(self, unit: Unit) -> None:
        WORKER_UNIT_CALLOUTS.labels(unit.connection, unit.entity.rest_name).observe(unit.callouts)
        attempts = 0
        first_failed: datetime | None = None
        retry = Retry(self.config.retry_backoff)
        while True:
            try:
                await self._attempt(unit)
            except SyncError as exc:
                first_failed = first_failed or datetime.now(UTC)
                attempts += 1
                age = datetime.now(UTC) - first_failed
                if (
                    not exc.retriable
                    and attempts >= self.config.dead_letter_after
                    and age >= self.config.dead_letter_min_age
                ):
                    await self._retrying_forever(
                        functools.partial(
                            self._dead_letters.send,
                            unit.messages,
                            connection=unit.connection,
                            error=exc,
                            attempts=attempts,
                            first_failed_at=first_failed,
                        ),
                        what="dead-letter callouts",
                    )
                    log.error(
                        "callouts dead-lettered",
                        connection=unit.connection,
                        entity=unit.entity.rest_name,
                        callouts=unit.callouts,
                        error=type(exc).__name__,
                        reason=str(exc),
                    )
                    break
                reason = "retriable" if exc.retriable else "failing"
                delay = retry.failed()
                WORKER_RETRIES.labels(unit.connection, type(exc).__name__).inc()
                log.warning(
                    "fetch unit failed; retrying",
                    connection=unit.connection,
                    entity=unit.entity.rest_name,
                    error=type(exc).__name__,
                    reason=str(exc),
                    kind=reason,
                    attempt=attempts,
                    retry_in_s=round(delay, 2),
                )
                await retry.wait(delay)
                continue
            break
        self._finished(unit.messages)

    async def _attempt(self, unit: Unit) -> None:
        """One try; PostgreSQL's own exceptions (a lost session while borrowing one from the
        pool, say) become DatabaseError, so the unit is retried rather than lost."""
        with db_errors("apply the callouts"):
            await self._apply(unit)

    async def _apply(self, unit: Unit) -> None:
        connection, entity = unit.connection, unit.entity
        served = self._catalogue.get(connection)  # ConfigError if no longer served
        if not served.scope.syncs(entity):
            log.info(
                "callouts for an entity this connection does not sync",
                connection=connection,
                entity=entity.rest_name,
                callouts=unit.callouts,
            )
            return
        client = self._catalogue.client(connection)
        started = time.perf_counter()
        self._on_autotask[id(unit)] = (connection, time.monotonic())
        fetched = await fetching.fetch(
            client, entity, unit.fetch_ids, retry_delays=self.config.missing_retry_delays
        )
        del self._on_autotask[id(unit)]  # kept when the fetch failed: the retry waits on it
        WORKER_FETCH_SECONDS.labels(connection, entity.rest_name).observe(
            time.perf_counter() - started
        )
        WORKER_API_CALLS.labels(connection, entity.rest_name).inc(fetched.calls)
        WORKER_FETCHED_IDS.labels(connection, entity.rest_name).inc(len(unit.fetch_ids))
        rows = {i: row for i, (row, _at) in fetched.rows.items()}
        in_scope = await membership.judge(self._pool, connection, entity, rows, served.scope)
        snapshots = [
            Snapshot(
                id=i,
                entity=row,
                fetched_at=at,
                in_scope=in_scope[i],
                callout_sequence=unit.sequences.get(i),
            )
            for i, (row, at) in fetched.rows.items()
        ]
        applied = await self._mirror.apply_snapshots(
            connection, entity, snapshots, origin="webhook"
        )
        if unit.delete_at:
            applied.merge(
                await self._mirror.apply_deletes(
                    connection,
                    entity,
                    unit.delete_at,
                    at=max(unit.delete_at.values()),
                    origin="webhook",
                    sequences=unit.sequences,
                )
            )
        moved = self._to_follow.setdefault(id(unit), Applied())
        moved.merge(applied)
        family = Family(
            pool=self._pool,
            mirror=self._mirror,
            client=client,
            connection=connection,
            scope=served.scope,
            priority=Priority.WEBHOOK,
        )
        followed = await follow(family, entity, moved, origin="webhook")
        del self._to_follow[id(unit)]
        if followed.calls:
            WORKER_API_CALLS.labels(connection, entity.rest_name).inc(followed.calls)
        async with session(self._pool, "record the ids left unresolved") as db:
            if fetched.missing:
                await unresolved.record(
                    db, connection, entity.rest_name, fetched.missing, reason="not returned"
                )
            await unresolved.resolve(
                db, connection, entity.rest_name, [*fetched.rows, *unit.delete_at]
            )
        if fetched.missing:
            WORKER_UNRESOLVED.labels(connection, entity.rest_name).inc(len(fetched.missing))
            log.warning(
                "ids not returned after retries; left for the sweep",
                connection=connection,
                entity=entity.rest_name,
                ids=fetched.missing[:20],
                count=len(fetched.missing),
            )
        done = datetime.now(UTC)
        for change in applied.changes:
            first = unit.earliest.get(change.id)
            if change.op is not None and first is not None:
                WORKER_END_TO_END_SECONDS.labels(connection, entity.rest_name).observe(
                    max(0.0, (done - first).total_seconds())
                )
        log.info(
            "unit applied",
            connection=connection,
            entity=entity.rest_name,
            callouts=unit.callouts,
            fetched=len(fetched.rows),
            deleted=len(unit.delete_at),
            missing=len(fetched.missing),
            api_calls=fetched.calls + followed.calls,
            published=applied.published + followed.applied.published,
            children_entered=followed.entered,
            children_left=followed.left,
            outcomes=dict(applied.outcomes),
        )

    async def _retrying_forever(
        self, attempt: Callable[[], Awaitable[object]], *, what: str
    ) -> None:
        """Dead-lettering must not lose the message either: retried until it works."""
        retry = Retry(self.config.retry_backoff)
        while True:
            try:
                await attempt()
                return
            except SyncError as exc:
                delay = retry.failed()
                log.warning("retrying", action=what, error=str(exc), retry_in_s=round(delay, 2))
                await retry.wait(delay)


def _entity_of(rest_name: str | None, entity_type: str) -> EntitySpec:
    """The registry entry for a callout: the gateway's header first, then the body's type."""
    if rest_name:
        spec = find_rest_name(rest_name)
        if spec is not None:
            return spec
    try:
        return by_callout_type(entity_type)
    except KeyError:
        raise MessageError(f"unknown entity type {entity_type!r} in the callout") from None


def _of(partitions: set[tuple[str, int]], message: Record) -> bool:
    """Whether ``message`` belongs to one of ``partitions`` (topic, partition)."""
    return (message.topic, message.partition) in partitions


async def _first(*events: asyncio.Event) -> None:
    """Until the first of ``events`` is set."""
    tasks = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


__all__ = ["CalloutPipeline", "PipelineConfig"]

"""Moving spooled messages to Kafka: one drainer across replicas, id order, delete after ack.

Every replica runs a :class:`Drainer`; the one holding a PostgreSQL advisory lock (on a
session of its own, so the lock lives exactly as long as that session) drains, the others wait
for it. A round reads the oldest rows in id order and, per topic (topics side by side, so a topic
Kafka does not answer for holds up only its own rows), sends the first alone (a probe: while
Kafka is away only one message waits in the producer), then the rest pipelined in id order.

Then, per (topic, key), since order is per key (:func:`settle`): the rows before the key's first
retriable failure are settled, an acknowledged one deleted and one Kafka refused for good (too
large, topic refused: :func:`shared.kafka.errors.is_retriable`) moved aside; the failed row and
every later row of its key stay, to be sent again next round (a later row Kafka already has then
arrives twice, never out of order last, never lost). Other keys move on. Moved aside means the
dead-letter topic with the dead-letter headers when it takes the message, else the
``spool_rejects`` table (:func:`spool.reject`), where ``autotask-sync spool`` shows it to the
operator; either way it is counted (``gateway_spool_rejected_total``), logged once with the reason,
and the drain goes on.

:class:`SpoolWatcher` (every replica) counts the spool periodically: the depth metrics, and
whether another replica spooled (then this one spools too, see :mod:`.durability`).

A round that moves nothing while rows wait (Kafka not connected or not answering, PostgreSQL
away) is followed by a longer pause each time, ``interval`` plus a jittered back-off of up to
:data:`BLOCKED_PAUSE_CAP`, so a long outage costs a query every few seconds, not every interval.
Each round that moves rows is reported (``drained``): the spool's progress, which the probes
read (pending: the spooled rows, while this replica holds the lock and so owes the drain).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.webhook_gateway import spool
from services.webhook_gateway.durability import Durability
from services.webhook_gateway.producer import ProducerLink
from services.webhook_gateway.routing import OutboundMessage
from shared.db import DbSession, DedicatedSession, Pool, connect, guarded, session
from shared.errors import DatabaseError, KafkaError
from shared.kafka.errors import DeliveryError
from shared.logging import get_logger
from shared.messages.deadletter import dead_letter_headers
from shared.metrics import (
    GATEWAY_SPOOL_DRAINED,
    GATEWAY_SPOOL_OLDEST_AGE_SECONDS,
    GATEWAY_SPOOL_REJECTED,
    GATEWAY_SPOOL_ROWS,
)
from shared.runtime.backoff import Backoff, Retry
from shared.runtime.runner import until_stopped

log = get_logger(__name__)

DRAINER_LOCK = 0x4741_5445_5350_4F4F  # "GATESPOO": any constant, the same for every replica
BLOCKED_PAUSE_CAP = timedelta(seconds=5)
"""The longest back-off added to ``interval`` after rounds that could move nothing."""


def _message(row: spool.SpooledMessage) -> OutboundMessage:
    return OutboundMessage(
        topic=row.topic,
        key=row.key,
        value=row.value,
        headers=row.headers,
        connection=row.connection,
        registration_id=row.registration_id,
        received_at=row.received_at,
    )


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a round does with each row it read (see :func:`settle`)."""

    delivered: list[int] = field(default_factory=list)
    """Acknowledged by Kafka: deleted."""
    refused: list[tuple[spool.SpooledMessage, KafkaError]] = field(default_factory=list)
    """Refused for good: moved aside (dead-letter topic, else ``spool_rejects``)."""
    failed: list[tuple[int, KafkaError]] = field(default_factory=list)
    """A retriable failure, the first of its key: stays, the attempt recorded."""
    held: list[int] = field(default_factory=list)
    """Not sent, or behind a failure of its key: stays untouched, sent again next round."""


def settle(
    rows: Sequence[spool.SpooledMessage], outcomes: Mapping[int, KafkaError | None]
) -> Settlement:
    """Sort ``rows`` (in id order) by their send's outcome (by row id: None acknowledged, else
    the error; a row without one was not sent). Per (topic, key), only the rows before the
    key's first retriable failure or unsent row are settled, so a row whose earlier sibling
    must be sent again is sent again too and lands after it."""
    settlement = Settlement()
    blocked: set[tuple[str, bytes]] = set()
    for row in rows:
        key = (row.topic, row.key)
        if key in blocked or row.id not in outcomes:
            blocked.add(key)
            settlement.held.append(row.id)
            continue
        error = outcomes[row.id]
        if error is None:
            settlement.delivered.append(row.id)
        elif not error.retriable:
            settlement.refused.append((row, error))
        else:
            blocked.add(key)
            settlement.failed.append((row.id, error))
    return settlement


class Drainer:
    """Moves the spool to Kafka while this replica holds the drainer lock."""

    def __init__(
        self,
        *,
        dsn: str,
        link: ProducerLink,
        durability: Durability,
        batch: int,
        interval: timedelta,
        wake: asyncio.Event | None = None,
        dead_letter_topic: str | None = None,
        drained: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._link = link
        self._dead_letter_topic = dead_letter_topic
        """Where a message Kafka refused for good goes, if it takes it (else spool_rejects)."""
        for destination in ("dlq", "table"):  # exported at 0, so the first reject is an increase
            GATEWAY_SPOOL_REJECTED.labels(destination)
        self._durability = durability
        self._batch = batch
        self._interval = interval.total_seconds()
        self._db: DedicatedSession | None = None
        """The drainer's own session, kept open whether or not it holds the lock."""
        self._locked = False
        self._wake = wake or asyncio.Event()
        """Set when something was spooled: look at once rather than at the next interval."""
        self._found_empty = False
        """The last round found the spool empty; only then does a spool write wake the drainer
        early (when it is blocked, waking on every write would only repeat the same query)."""
        self._failed = False
        """The last round lost PostgreSQL (or failed unexpectedly)."""
        self._blocked = Retry(
            Backoff(first=min(interval, BLOCKED_PAUSE_CAP), cap=max(interval, BLOCKED_PAUSE_CAP))
        )
        self._drained = drained or (lambda: None)

    @property
    def holds_lock(self) -> bool:
        db = self._db
        return self._locked and db is not None and not db.is_closed()

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until ``stop``; never raises for PostgreSQL or Kafka trouble."""
        try:
            while not stop.is_set():
                if await self._round_unless_stopped(stop) > 0:
                    self._blocked.succeeded()
                    self._drained()
                    continue
                pause = self._interval  # empty, or another replica's to drain: look again soon
                if self._failed or (self.holds_lock and not self._found_empty):
                    pause += self._blocked.failed()  # rows wait and none moved: back off
                else:
                    self._blocked.succeeded()
                await self._pause(stop, pause)
        finally:
            await self._release()

    async def _round_unless_stopped(self, stop: asyncio.Event) -> int:
        """One round; abandoned when ``stop`` is set (a send to a Kafka that is away can take
        the producer's whole request timeout). Its rows stay, to be sent again, at worst twice."""
        round_ = await until_stopped(self._guarded_round(), stop)
        if round_.cancelled():
            await self._release()  # the cancelled statement may have left the session unusable
            return 0
        return round_.result()

    async def _guarded_round(self) -> int:
        self._found_empty = False
        self._failed = False
        try:
            db = await self._lock()
            if db is None:
                return 0
            return await self._drain_round(db)
        except DatabaseError as exc:
            log.warning("spool drainer lost PostgreSQL; retrying", error=str(exc))
        except Exception:  # whatever a driver raises, the drainer must keep going
            log.exception("spool drain round failed unexpectedly; retrying")
        self._failed = True
        await self._release()
        return 0

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if self._found_empty:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()

    async def _lock(self) -> DedicatedSession | None:
        """Our locked session, taking the lock if it is free; None while another replica holds
        it (the session stays open, to try again next round without reconnecting)."""
        if self.holds_lock:
            return self._db
        db = self._db
        if db is None or db.is_closed():
            await self._release()
            db = await self._connect()
            self._db = db
        try:
            locked = await guarded(
                db.fetchval("SELECT pg_try_advisory_lock($1)", DRAINER_LOCK),
                "take the spool drainer lock",
            )
        except DatabaseError:
            await self._release()
            raise
        if not locked:
            return None
        log.info("this replica drains the spool")
        self._locked = True
        return db

    async def _connect(self) -> DedicatedSession:
        connecting = asyncio.ensure_future(connect(self._dsn))
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:  # stopping: a session that arrives anyway is closed
            connecting.add_done_callback(_terminate_when_connected)
            raise

    async def _release(self) -> None:
        db, self._db = self._db, None
        self._locked = False
        if db is not None:
            await _close(db)  # ends the session, which releases the lock

    async def _drain_round(self, db: DedicatedSession) -> int:
        """One batch; returns how many rows were moved (0 when nothing could be)."""
        mark = self._durability.mark()
        rows = await spool.oldest(db, limit=self._batch)
        if not rows:
            self._found_empty = True
            self._durability.observed(rows=0, since=mark)
            return 0
        if not self._link.connected:
            return 0
        by_topic: dict[str, list[spool.SpooledMessage]] = {}
        for row in rows:  # id order is kept within each topic, which is all order needs
            by_topic.setdefault(row.topic, []).append(row)
        # Topics are drained side by side, so a topic Kafka does not answer for (say, one that
        # was never created: each send waits out the request timeout) holds up only its own
        # rows. They share the locked session, one statement at a time.
        in_turn = asyncio.Lock()
        moved = await asyncio.gather(
            *(self._drain_topic(db, in_turn, group) for group in by_topic.values())
        )
        return sum(moved)

    async def _drain_topic(
        self, db: DbSession, in_turn: asyncio.Lock, group: list[spool.SpooledMessage]
    ) -> int:
        """Send one topic's rows and settle them (:func:`settle`); returns how many left the
        spool (acknowledged or moved aside)."""
        settled = settle(group, await self._send_topic(group))
        for row, error in settled.refused:
            await self._set_aside(db, in_turn, row, error)
        async with in_turn:
            for row_id, error in settled.failed:
                await spool.record_failure(db, [row_id], str(error))
            await spool.delete(db, settled.delivered)
        topic = group[0].topic
        if settled.delivered:
            GATEWAY_SPOOL_DRAINED.inc(len(settled.delivered))
            log.info("moved spooled messages to Kafka", topic=topic, rows=len(settled.delivered))
        if settled.failed:
            log.warning(
                "spooled messages Kafka did not take stay for the next round",
                topic=topic,
                failed=len(settled.failed),
                held_behind_them=len(settled.held),
                error=str(settled.failed[0][1]),
            )
        return len(settled.delivered) + len(settled.refused)

    async def _send_topic(self, group: list[spool.SpooledMessage]) -> dict[int, KafkaError | None]:
        """One topic's rows: the first alone (a probe: while Kafka is away only one message
        waits in the producer), then the rest pipelined in order. Returns each sent row's
        outcome (None: acknowledged); after a probe that failed retriably nothing else is sent."""
        probe, rest = group[0], group[1:]
        outcomes: dict[int, KafkaError | None] = {}
        try:
            await self._link.send(_message(probe))
            outcomes[probe.id] = None
        except KafkaError as exc:
            outcomes[probe.id] = exc
            if exc.retriable:
                return outcomes
        if not rest:
            return outcomes
        try:
            await self._link.send_in_order([_message(row) for row in rest])
        except DeliveryError as exc:
            outcomes.update({row.id: exc.failures.get(n) for n, row in enumerate(rest)})
        except KafkaError as exc:  # nothing was sent (the producer went away meanwhile)
            outcomes.update(dict.fromkeys((row.id for row in rest), exc))
        else:
            outcomes.update(dict.fromkeys((row.id for row in rest), None))
        return outcomes

    async def _set_aside(
        self,
        db: DbSession,
        in_turn: asyncio.Lock,
        row: spool.SpooledMessage,
        error: KafkaError,
    ) -> None:
        """Move a row Kafka refused for good out of the way: to the dead-letter topic when it
        takes it (then the row is deleted), else to ``spool_rejects``."""
        reason = str(error)
        destination, dead_letter_error = "table", None
        dead_letter_topic = self._dead_letter_topic
        if dead_letter_topic is not None and row.topic != dead_letter_topic:
            try:
                await self._link.send(_dead_letter(row, dead_letter_topic, reason))
                destination = "dlq"
            except KafkaError as exc:
                dead_letter_error = str(exc)
        async with in_turn:
            if destination == "dlq":
                await spool.delete(db, [row.id])
            else:
                await spool.reject(db, row.id, reason)
        GATEWAY_SPOOL_REJECTED.labels(destination).inc()
        log.error(
            "Kafka refused a spooled message for good; moved it aside, the spool drains on",
            spool_id=row.id,
            connection=row.connection,
            topic=row.topic,
            key=row.key.decode("utf-8", "replace"),
            size=len(row.value),
            reason=reason,
            destination="dead-letter topic" if destination == "dlq" else "spool_rejects",
            dead_letter_error=dead_letter_error,
        )


def _dead_letter(row: spool.SpooledMessage, topic: str, reason: str) -> OutboundMessage:
    return OutboundMessage(
        topic=topic,
        key=row.key,
        value=row.value,
        headers=dead_letter_headers(
            row.headers,
            error_class=KafkaError.__name__,
            message=reason,
            attempts=row.attempts + 1,
            first_failed_at=datetime.now(UTC),
            original_topic=row.topic,
        ),
        connection=row.connection,
        registration_id=row.registration_id,
        received_at=row.received_at,
    )


class SpoolWatcher:
    """Counts the spool every ``interval``: metrics, and whether new callouts must spool."""

    def __init__(self, *, pool: Pool, durability: Durability, interval: timedelta) -> None:
        self._pool = pool
        self._durability = durability
        self._interval = interval.total_seconds()
        self._failing = False
        self.rows = 0
        """The rows the last count found (the last known count while PostgreSQL is away)."""

    async def check(self) -> spool.SpoolStats | None:
        """Count now (None when PostgreSQL did not answer)."""
        mark = self._durability.mark()
        try:
            async with asyncio.timeout(max(self._interval, 1.0)):
                async with session(self._pool, "count the spool") as db:
                    stats = await spool.stats(db)
        except (DatabaseError, TimeoutError) as exc:
            if not self._failing:
                log.warning("could not count the spool", error=repr(exc))
            self._failing = True
            return None
        self._failing = False
        self.rows = stats.rows
        self._durability.observed(rows=stats.rows, since=mark)
        GATEWAY_SPOOL_ROWS.set(stats.rows)
        age = 0.0
        if stats.oldest_received_at is not None:
            age = max(0.0, (datetime.now(UTC) - stats.oldest_received_at).total_seconds())
        GATEWAY_SPOOL_OLDEST_AGE_SECONDS.set(age)
        return stats

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)


def _terminate_when_connected(connecting: asyncio.Future[DedicatedSession]) -> None:
    if connecting.cancelled():
        return
    if connecting.exception() is None:
        connecting.result().terminate()


async def _close(db: DedicatedSession) -> None:
    try:
        await asyncio.wait_for(guarded(db.close(), "close the spool drainer's session"), 5)
    except (DatabaseError, TimeoutError):
        db.terminate()


__all__ = ["DRAINER_LOCK", "Drainer", "Settlement", "SpoolWatcher", "settle"]

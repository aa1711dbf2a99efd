"""Moving spooled messages to Kafka: one drainer across replicas, id order, delete after ack.

Every replica runs a :class:`Drainer`; the one holding a PostgreSQL advisory lock (on a
session of its own, so the lock lives exactly as long as that session) drains, the others wait
for it. A round reads the oldest rows in id order and, per topic (order is per key, so per topic),
sends the first alone (a probe: while Kafka is away only one message waits in the producer),
then the rest pipelined in order, and deletes a topic's rows only once Kafka acknowledged all of
them. A failed topic deletes nothing: its rows are sent again next round, which can duplicate
messages but never lose or skip one, and the other topics' rows move on meanwhile.

:class:`SpoolWatcher` (every replica) counts the spool periodically: the depth metrics, and
whether another replica spooled (then this one spools too, see :mod:`.durability`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from services.webhook_gateway import spool
from services.webhook_gateway.durability import Durability
from services.webhook_gateway.producer import ProducerLink
from services.webhook_gateway.routing import OutboundMessage
from shared.db import DbSession, DedicatedSession, Pool, connect, guarded, session
from shared.errors import DatabaseError, KafkaError
from shared.logging import get_logger
from shared.metrics import (
    GATEWAY_SPOOL_DRAINED,
    GATEWAY_SPOOL_OLDEST_AGE_SECONDS,
    GATEWAY_SPOOL_ROWS,
)

log = get_logger(__name__)

DRAINER_LOCK = 0x4741_5445_5350_4F4F  # "GATESPOO": any constant, the same for every replica


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
    ) -> None:
        self._dsn = dsn
        self._link = link
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

    @property
    def holds_lock(self) -> bool:
        db = self._db
        return self._locked and db is not None and not db.is_closed()

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until ``stop``; never raises for PostgreSQL or Kafka trouble."""
        try:
            while not stop.is_set():
                if await self._round_unless_stopped(stop) == 0:
                    await self._pause(stop)  # empty, blocked or not ours: wait
        finally:
            await self._release()

    async def _round_unless_stopped(self, stop: asyncio.Event) -> int:
        """One round; abandoned when ``stop`` is set (a send to a Kafka that is away can take
        the producer's whole request timeout). Its rows stay, to be sent again, at worst twice."""
        round_ = asyncio.ensure_future(self._guarded_round())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({round_, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not round_.done():
            round_.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await round_
            await self._release()  # the cancelled statement may have left the session unusable
            return 0
        return round_.result()

    async def _guarded_round(self) -> int:
        self._found_empty = False
        try:
            db = await self._lock()
            if db is None:
                return 0
            return await self._drain_round(db)
        except DatabaseError as exc:
            log.warning("spool drainer lost PostgreSQL; retrying", error=str(exc))
        except Exception:  # whatever a driver raises, the drainer must keep going
            log.exception("spool drain round failed unexpectedly; retrying")
        await self._release()
        return 0

    async def _pause(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if self._found_empty:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
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
        # Topics are drained side by side, so a topic Kafka refuses (say, one that was never
        # created) holds up only its own rows, not every callout behind them. They share the
        # locked session, one statement at a time.
        in_turn = asyncio.Lock()
        moved = await asyncio.gather(
            *(self._drain_topic(db, in_turn, group) for group in by_topic.values())
        )
        return sum(moved)

    async def _drain_topic(
        self,
        db: DbSession,
        in_turn: asyncio.Lock,
        group: list[spool.SpooledMessage],
    ) -> int:
        """One topic's rows: the first alone (a probe: while Kafka is away only one message
        waits in the producer), then the rest pipelined in order; deleted once all are acked."""
        ids = [row.id for row in group]
        try:
            await self._link.send(_message(group[0]))
            await self._link.send_in_order([_message(row) for row in group[1:]])
        except KafkaError as exc:
            log.warning(
                "spool drain of a topic failed; its rows stay",
                topic=group[0].topic,
                rows=len(group),
                error=str(exc),
            )
            async with in_turn:
                await spool.record_failure(db, ids, str(exc))
            return 0
        async with in_turn:
            await spool.delete(db, ids)
        GATEWAY_SPOOL_DRAINED.inc(len(ids))
        log.info("moved spooled messages to Kafka", topic=group[0].topic, rows=len(ids))
        return len(ids)


class SpoolWatcher:
    """Counts the spool every ``interval``: metrics, and whether new callouts must spool."""

    def __init__(self, *, pool: Pool, durability: Durability, interval: timedelta) -> None:
        self._pool = pool
        self._durability = durability
        self._interval = interval.total_seconds()
        self._failing = False

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


__all__ = ["DRAINER_LOCK", "Drainer", "SpoolWatcher"]

"""Making a verified callout durable before it is answered: Kafka, else the spool, else 503.

The rule (architecture.md, "Delivery semantics" 1; docs/adr/0005-gateway-durability.md):

1. While the spool holds anything, a new message goes to the spool too, behind the older ones,
   so the drainer puts every message of one key on Kafka in the order they were answered.
   "Holds anything" is this replica's own knowledge (it spooled, and has not seen the spool
   empty since) plus what the periodic count of the table says (another replica spooled).
2. Otherwise the message is sent to Kafka (idempotent producer, ``acks=all``) and answered once
   acknowledged. Kafka not connected, refusing, or slower than ``produce_deadline``: the message
   is written to the spool instead. A send that missed its deadline may still land later; that
   is a duplicate of a spooled message, never a loss, and everything downstream is idempotent.
   While such an overdue send is unresolved, new messages do not try Kafka at all: Kafka is not
   answering, so each would only wait out the deadline and leave one more late copy behind.
3. The spool write failing or taking longer than ``spool_deadline``: when the spool was chosen
   only to keep order behind spooled rows and Kafka is connected, the message goes to Kafka after
   all (a callout accepted out of order beats one refused); otherwise :class:`Unavailable`, which
   the route answers 503 so Autotask retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from services.webhook_gateway import spool
from services.webhook_gateway.producer import DeadlineMissed, ProducerLink
from services.webhook_gateway.routing import OutboundMessage
from shared.db import Pool, session
from shared.errors import DatabaseError, KafkaError, SyncError
from shared.logging import get_logger
from shared.metrics import GATEWAY_PRODUCE_FAILURES, GATEWAY_PRODUCE_SECONDS, GATEWAY_SPOOLED

log = get_logger(__name__)


class Stored(StrEnum):
    """Where a message was made durable."""

    KAFKA = "kafka"
    SPOOL = "spool"


class Unavailable(SyncError):
    """Neither Kafka nor the spool took the message: answer 503 so Autotask retries."""

    retriable = True


@dataclass(frozen=True, slots=True)
class SpoolMark:
    """This replica's spool writes at one moment (see :meth:`Durability.mark`)."""

    generation: int
    in_flight: int


SpoolWriter = Callable[[OutboundMessage], Awaitable[int]]


def pool_spool_writer(pool: Pool, *, deadline: timedelta) -> SpoolWriter:
    """Spool writes through ``pool``, each bounded by ``deadline`` (acquiring included)."""

    async def write(message: OutboundMessage) -> int:
        try:
            async with asyncio.timeout(deadline.total_seconds()):
                async with session(pool, "reach the spool") as db:
                    return await spool.append(
                        db,
                        of_connection=message.connection,
                        registration_id=message.registration_id,
                        topic=message.topic,
                        key=message.key,
                        value=message.value,
                        headers=message.headers,
                        received_at=message.received_at,
                    )
        except TimeoutError:
            raise DatabaseError(
                f"the spool write took longer than {deadline.total_seconds():g} s"
            ) from None

    return write


class Durability:
    """Kafka, else the spool, else :class:`Unavailable` (see the module docstring)."""

    def __init__(
        self,
        *,
        link: ProducerLink,
        write_spool: SpoolWriter,
        produce_deadline: timedelta,
        spooled: asyncio.Event | None = None,
    ) -> None:
        self._link = link
        self._write_spool = write_spool
        self._deadline = produce_deadline.total_seconds()
        self._spooled = spooled or asyncio.Event()
        self._spool_holds_rows = False
        self._generation = 0
        self._in_flight = 0
        self._overdue: asyncio.Future[Any] | None = None
        """A send that missed its deadline and has not resolved yet (Kafka is not answering)."""

    @property
    def spooling(self) -> bool:
        """Whether new messages go to the spool (it holds rows, as far as this replica knows)."""
        return self._spool_holds_rows

    async def store(self, message: OutboundMessage) -> Stored:
        """Make ``message`` durable; raises :class:`Unavailable` when nothing can."""
        behind_spool = self._spool_holds_rows
        if not behind_spool and await self._try_kafka(message):
            return Stored.KAFKA
        try:
            await self._spool(message)
        except DatabaseError as exc:
            if behind_spool and self._link.connected and await self._try_kafka(message):
                log.warning(
                    "the spool is unreachable; sent straight to Kafka, ahead of spooled messages",
                    error=str(exc),
                )
                return Stored.KAFKA
            raise Unavailable(f"neither Kafka nor the spool accepted the message: {exc}") from exc
        return Stored.SPOOL

    @property
    def kafka_answering(self) -> bool:
        """False while a send that missed its deadline is unresolved."""
        return self._overdue is None or self._overdue.done()

    async def _try_kafka(self, message: OutboundMessage) -> bool:
        if not self._link.connected:
            GATEWAY_PRODUCE_FAILURES.labels("not_connected").inc()
            return False
        if not self.kafka_answering:
            GATEWAY_PRODUCE_FAILURES.labels("unresponsive").inc()
            return False
        started = time.perf_counter()
        try:
            await self._link.send_within(message, self._deadline)
        except DeadlineMissed as exc:
            if exc.pending is not None:
                self._overdue = exc.pending
            GATEWAY_PRODUCE_FAILURES.labels("deadline").inc()
            log.warning(
                "Kafka was slower than the produce deadline; spooling",
                deadline_s=self._deadline,
            )
            return False
        except KafkaError as exc:
            GATEWAY_PRODUCE_FAILURES.labels("error").inc()
            log.warning("Kafka refused a message; spooling", error=str(exc))
            return False
        GATEWAY_PRODUCE_SECONDS.observe(time.perf_counter() - started)
        return True

    def close(self) -> None:
        """Forget an overdue send (the producer's own close settles it)."""
        self._overdue = None

    async def _spool(self, message: OutboundMessage) -> None:
        self._generation += 1
        self._in_flight += 1
        try:
            await self._write_spool(message)
        finally:
            self._in_flight -= 1
            self._generation += 1
        # From now on the spool holds a row, and order needs everything after it there too.
        self._spool_holds_rows = True
        GATEWAY_SPOOLED.labels(message.topic).inc()
        self._spooled.set()

    # --- what the drainer and the periodic count tell us ------------------------------------
    def mark(self) -> SpoolMark:
        """Take just before counting the spool; pass to :meth:`observed`."""
        return SpoolMark(self._generation, self._in_flight)

    def observed(self, *, rows: int, since: SpoolMark) -> None:
        """The spool held ``rows`` rows at a moment after ``since`` was taken.

        Rows there: new messages queue behind them. None: back to Kafka, unless this replica
        started or finished a spool write since ``since`` (the count may have missed it).
        """
        if rows > 0:
            self._spool_holds_rows = True
        elif since.in_flight == 0 and self._in_flight == 0 and since.generation == self._generation:
            if self._spool_holds_rows:
                log.info("the spool is empty; callouts go straight to Kafka again")
            self._spool_holds_rows = False


__all__ = ["Durability", "SpoolMark", "SpoolWriter", "Stored", "Unavailable", "pool_spool_writer"]

"""Autotask's DeactivationUrl calls: record, ask the provisioner to look, and nothing more.

The call is unsigned (autotask-api.md §8.4), so anyone who learns the URL can make it. It
therefore changes no secret and no state: the route answers 200 at once and hands the
registration to :class:`DeactivationNotices`, which, off the request path,

1. records the time on the registration, unless it already did less than ``interval`` ago
   (a conditional UPDATE, so exactly one replica wins per interval), and
2. if it won, publishes ``webhook_deactivated`` on the control topic (through the same
   Kafka-else-spool path as callouts), asking the provisioner to read the webhook back and
   reactivate it if Autotask really switched it off.

A flood of calls thus yields at most one control event per registration per interval, and a
per-process :class:`Throttle` keeps the flood from reaching PostgreSQL at all.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.webhook_gateway.durability import Durability, Unavailable
from services.webhook_gateway.routing import OutboundMessage
from shared.db import Pool, session
from shared.errors import DatabaseError
from shared.logging import get_logger
from shared.messages.control import WebhookDeactivated, encode_control
from shared.messages.topics import Topics
from shared.metrics import GATEWAY_DEACTIVATION_CHECKS
from shared.registrations import Registration, claim_deactivation

log = get_logger(__name__)

Clock = Callable[[], float]
_CLAIM_TIMEOUT = timedelta(seconds=5)


class Throttle:
    """Lets one event per key through per ``interval`` (pure; monotonic ``clock``)."""

    def __init__(
        self, *, interval: timedelta, clock: Clock = time.monotonic, capacity: int = 100_000
    ) -> None:
        self._interval = interval.total_seconds()
        self._clock = clock
        self._capacity = capacity
        self._last: OrderedDict[str, float] = OrderedDict()

    def allow(self, key: str) -> bool:
        """True (and the interval restarts) unless ``key`` passed less than an interval ago."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last.pop(key, None)
        self._last[key] = now
        while len(self._last) > self._capacity:
            self._last.popitem(last=False)
        return True


class DeactivationNotices:
    """Turns deactivation calls into at most one control event per registration per interval."""

    def __init__(
        self,
        *,
        pool: Pool,
        durability: Durability,
        topics: Topics,
        interval: timedelta,
        clock: Clock = time.monotonic,
        queue_size: int = 1000,
    ) -> None:
        self._pool = pool
        self._durability = durability
        self._topics = topics
        self._interval = interval
        self._throttle = Throttle(interval=interval, clock=clock)
        self._queue: asyncio.Queue[Registration] = asyncio.Queue(maxsize=queue_size)

    def submit(self, registration: Registration) -> bool:
        """Queue a check of ``registration`` (False: one was asked for within the interval)."""
        if not self._throttle.allow(registration.registration_id):
            GATEWAY_DEACTIVATION_CHECKS.labels(registration.connection, "suppressed").inc()
            return False
        try:
            self._queue.put_nowait(registration)
        except asyncio.QueueFull:
            GATEWAY_DEACTIVATION_CHECKS.labels(registration.connection, "failed").inc()
            log.error("deactivation notices queue full; notice dropped")
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Handle queued notices until ``stop``, then the ones still queued."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if stop.is_set() and self._queue.empty():
                    return
                getting = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    continue
                await self._handle(getting.result())
        finally:
            stopping.cancel()

    async def _handle(self, registration: Registration) -> None:
        connection = registration.connection
        try:
            claimed = await self._claim(registration.registration_id)
        except DatabaseError as exc:
            # The per-process throttle still holds; without the row, each replica may publish.
            log.warning("could not record a deactivation; publishing anyway", error=str(exc))
            claimed = True
        if not claimed:
            GATEWAY_DEACTIVATION_CHECKS.labels(connection, "suppressed").inc()
            log.info("webhook deactivation already reported within the interval")
            return
        event = WebhookDeactivated(
            connection=connection,
            registration_id=registration.registration_id,
            entity=registration.entity,
        )
        key, value = encode_control(event)
        message = OutboundMessage(
            topic=self._topics.control,
            key=key,
            value=value,
            headers=(),
            connection=connection,
            registration_id=registration.registration_id,
            received_at=datetime.now(UTC),
        )
        try:
            stored = await self._durability.store(message)
        except Unavailable as exc:
            GATEWAY_DEACTIVATION_CHECKS.labels(connection, "failed").inc()
            log.error("could not publish webhook_deactivated", error=str(exc))
            return
        GATEWAY_DEACTIVATION_CHECKS.labels(connection, "requested").inc()
        log.info(
            "asked the provisioner to check a deactivated webhook",
            connection=connection,
            registration=registration.registration_id[:8],
            entity=registration.entity,
            event_id=event.event_id,
            stored=stored.value,
        )

    async def _claim(self, registration_id: str) -> bool:
        try:
            async with asyncio.timeout(_CLAIM_TIMEOUT.total_seconds()):
                async with session(self._pool, "record a deactivation") as db:
                    return await claim_deactivation(db, registration_id, interval=self._interval)
        except TimeoutError:
            raise DatabaseError("recording a deactivation timed out") from None


__all__ = ["DeactivationNotices", "Throttle"]

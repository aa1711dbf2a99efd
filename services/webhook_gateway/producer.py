"""The gateway's Kafka producer: connected in the background, so the gateway serves without it.

``make_producer`` gives the project's idempotent ``acks=all`` producer; starting it needs a
reachable broker, and the gateway must start and answer (through the spool) while Kafka is down.
So :class:`ProducerLink` starts it in a background task, trying again with back-off (at most
``retry_interval`` apart) until it succeeds; until then :attr:`ProducerLink.connected` is False
and sends fail at once. Once started, the producer reconnects by itself when brokers come and go.

There is one producer at a time, for order: a new producer would not keep the old one's
per-partition order for messages the old one still holds. It is replaced only when the broker no
longer accepts its idempotence state (a refused or expired batch left a gap in its sequence
numbers: every later send to that partition would fail), and only once the sends the old one
holds have ended (:class:`shared.kafka.producer.Producer`): those that failed are spooled, or
stay in the spool for the drainer's next round, so nothing answered 2xx is lost and nothing of
the old producer lands after the new one's. While it is replaced, ``connected`` is False and
callouts go to the spool.

Plain and batched sends go through :mod:`shared.kafka.factory`; starting, pinging and the
request path's send with a deadline (which must let a late send go on, to learn when Kafka
answers again) are done here. Either way aiokafka's exceptions become
:class:`~shared.errors.KafkaError` before they leave this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from itertools import groupby
from typing import Any

from services.webhook_gateway.routing import OutboundMessage
from shared.errors import KafkaError
from shared.kafka import (
    KafkaClientConfig,
    OutgoingMessage,
    make_producer,
    produce,
    produce_many,
)
from shared.kafka.errors import kafka_errors
from shared.kafka.producer import Producer, ProducerFactory
from shared.logging import get_logger
from shared.metrics import KAFKA_PRODUCE_ERRORS, KAFKA_PRODUCED
from shared.runtime.backoff import Backoff, Retry
from shared.settings import DEFAULT_KAFKA_MAX_REQUEST_SIZE

log = get_logger(__name__)

FIRST_RETRY = timedelta(milliseconds=250)
"""The longest wait before the second attempt to start the producer (doubling from there up to
``retry_interval``)."""


class DeadlineMissed(KafkaError):
    """Kafka did not acknowledge a message in time (see :meth:`ProducerLink.send_within`)."""

    def __init__(self, message: str, pending: asyncio.Future[Any] | None) -> None:
        super().__init__(message)
        self.pending = pending
        """The send still under way, or None when it never left this process."""


class ProducerLink:
    """One producer for the process, started in the background and kept (replaced only as the
    module docstring says).

    ``bootstrap_servers``: the cluster, with its security (``client_config(settings)``), or a
    bootstrap string for a PLAINTEXT one."""

    def __init__(
        self,
        *,
        bootstrap_servers: KafkaClientConfig | str,
        client_id: str,
        retry_interval: timedelta,
        warm_topics: Sequence[str] = (),
        max_request_size: int = DEFAULT_KAFKA_MAX_REQUEST_SIZE,
        factory: ProducerFactory | None = None,
    ) -> None:
        self._kafka = KafkaClientConfig.of(bootstrap_servers)
        self._retry = Retry(Backoff(first=min(FIRST_RETRY, retry_interval), cap=retry_interval))
        self._warm_topics = tuple(warm_topics)
        self.producer = Producer(
            factory
            or (
                lambda: make_producer(
                    self._kafka, client_id=client_id, max_request_size=max_request_size
                )
            ),
            self._kafka,
        )
        self._produced: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """Whether the producer has started and is not being replaced (it may still find no
        broker right now)."""
        return self.producer.started

    async def run(self, stop: asyncio.Event) -> None:
        """Start the producer, trying again until it starts or ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.producer.start()
            except KafkaError as exc:
                delay = self._retry.failed()
                # A refused password or certificate stays refused until the settings are fixed
                # (and the gateway restarted): said as an error, with the setting to fix.
                (log.warning if exc.retriable else log.error)(
                    "the Kafka producer could not connect; callouts go to the spool meanwhile",
                    kafka=self._kafka.describe(),
                    attempt=self._retry.failures,
                    error=str(exc),
                    retry_in_s=round(delay, 2),
                )
                await self._retry.wait(delay, stop)
                continue
            log.info(
                "Kafka producer connected",
                kafka=self._kafka.describe(),
                attempt=self._retry.failures + 1,
            )
            await self._warm()
            return

    async def _warm(self) -> None:
        """Fetch the topics' metadata now, so the first callout does not wait for it."""
        for topic in self._warm_topics:
            try:
                await asyncio.wait_for(self.producer.partitions_for(topic), 5)
            except (KafkaError, TimeoutError) as exc:
                log.warning("could not read a topic's metadata", topic=topic, error=repr(exc))

    async def send(self, message: OutboundMessage) -> None:
        """Send one message and wait for the broker's acknowledgement (KafkaError if not)."""
        await produce(
            self.producer,
            message.topic,
            key=message.key,
            value=message.value,
            headers=message.headers,
        )

    async def send_within(self, message: OutboundMessage, deadline: float) -> None:
        """Send one message and wait at most ``deadline`` seconds for its acknowledgement.

        Raises :class:`DeadlineMissed` when the time is up: the message may still be in the
        producer (``pending``, which then resolves on its own) or may never have left this
        process (``pending`` is None: the producer waited for metadata or buffer space).
        KafkaError when Kafka refused it.
        """
        ack: asyncio.Future[Any] | None = None
        try:
            async with asyncio.timeout(deadline):
                with kafka_errors(f"send a message to {message.topic}"):
                    ack = await self.producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=message.headers,
                    )
                    # Shielded: at the deadline the wait ends, the send does not.
                    await asyncio.shield(ack)
        except TimeoutError:
            pending = ack if ack is not None and not ack.done() else None
            raise DeadlineMissed(f"no acknowledgement within {deadline:g} s", pending) from None
        except KafkaError:
            KAFKA_PRODUCE_ERRORS.labels(message.topic).inc()
            raise
        produced = self._produced.get(message.topic)
        if produced is None:  # the labelled child, looked up once per topic (lookups are costly)
            produced = self._produced[message.topic] = KAFKA_PRODUCED.labels(message.topic)
        produced.inc()

    async def send_in_order(self, messages: Sequence[OutboundMessage]) -> None:
        """Send ``messages`` (pipelined, order kept within each topic) and wait for all acks."""
        for topic, group in groupby(messages, key=lambda m: m.topic):
            await produce_many(
                self.producer,
                topic,
                [OutgoingMessage(key=m.key, value=m.value, headers=m.headers) for m in group],
            )

    async def ping(self) -> None:
        """A metadata round trip to the cluster (for readiness); KafkaError when it fails."""
        await self.producer.ping()

    async def close(self, *, budget: timedelta = timedelta(seconds=5)) -> None:
        """Flush what the producer holds and close it, for at most ``budget``. Idempotent.

        Whatever is still unacknowledged then is safe to abandon: every message the gateway
        answered for is acknowledged or in the spool, and a drained row is deleted only after
        its acknowledgement.
        """
        await self.producer.stop(budget)


__all__ = ["DeadlineMissed", "ProducerFactory", "ProducerLink"]

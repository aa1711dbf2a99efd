"""The gateway's Kafka producer: connected in the background, so the gateway serves without it.

``make_producer`` gives the project's idempotent ``acks=all`` producer; starting it needs a
reachable broker, and the gateway must start and answer (through the spool) while Kafka is down.
So :class:`ProducerLink` starts it in a background task, trying again every ``retry_interval``
until it succeeds; until then :attr:`ProducerLink.connected` is False and sends fail at once.
Once started, the producer reconnects by itself when brokers come and go, and is kept for the
life of the process: a new producer would not keep the old one's per-partition order for messages
the old one still holds.

Plain and batched sends go through :mod:`shared.kafka.factory`; starting, pinging and the
request path's send with a deadline (which must let a late send go on, to learn when Kafka
answers again) are done here. Either way aiokafka's exceptions become
:class:`~shared.errors.KafkaError` before they leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from itertools import groupby
from typing import Any

from aiokafka import AIOKafkaProducer

from services.webhook_gateway.routing import OutboundMessage
from shared.errors import KafkaError
from shared.kafka import OutgoingMessage, make_producer, produce, produce_many
from shared.kafka.errors import kafka_errors
from shared.logging import get_logger
from shared.metrics import KAFKA_PRODUCE_ERRORS, KAFKA_PRODUCED
from shared.settings import DEFAULT_KAFKA_MAX_REQUEST_SIZE

log = get_logger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]


class DeadlineMissed(KafkaError):
    """Kafka did not acknowledge a message in time (see :meth:`ProducerLink.send_within`)."""

    def __init__(self, message: str, pending: asyncio.Future[Any] | None) -> None:
        super().__init__(message)
        self.pending = pending
        """The send still under way, or None when it never left this process."""


class ProducerLink:
    """One producer for the process, started in the background and kept."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        client_id: str,
        retry_interval: timedelta,
        warm_topics: Sequence[str] = (),
        max_request_size: int = DEFAULT_KAFKA_MAX_REQUEST_SIZE,
        factory: ProducerFactory | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._retry_interval = retry_interval
        self._warm_topics = tuple(warm_topics)
        self._factory = factory or (
            lambda: make_producer(
                bootstrap_servers, client_id=client_id, max_request_size=max_request_size
            )
        )
        self._producer: AIOKafkaProducer | None = None
        self._produced: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """Whether the producer has started (it may still find no broker right now)."""
        return self._producer is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Start the producer, trying again until it starts or ``stop`` is set."""
        attempt = 0
        while self._producer is None and not stop.is_set():
            attempt += 1
            producer = self._factory()
            try:
                with kafka_errors("start the Kafka producer"):
                    await producer.start()
            except (KafkaError, OSError) as exc:
                await _quietly_stop(producer)
                log.warning(
                    "Kafka is not reachable yet; callouts go to the spool meanwhile",
                    bootstrap_servers=self._bootstrap,
                    attempt=attempt,
                    error=repr(exc),
                    retry_in_s=self._retry_interval.total_seconds(),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._retry_interval.total_seconds())
                continue
            except BaseException:
                await _quietly_stop(producer)
                raise
            self._producer = producer
            log.info("Kafka producer connected", bootstrap_servers=self._bootstrap, attempt=attempt)
        await self._warm()

    async def _warm(self) -> None:
        """Fetch the topics' metadata now, so the first callout does not wait for it."""
        producer = self._producer
        if producer is None:
            return
        for topic in self._warm_topics:
            try:
                with kafka_errors(f"read the metadata of {topic}"):
                    await asyncio.wait_for(producer.partitions_for(topic), 5)
            except (KafkaError, TimeoutError) as exc:
                log.warning("could not read a topic's metadata", topic=topic, error=repr(exc))

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaError("the Kafka producer is not connected")
        return self._producer

    async def send(self, message: OutboundMessage) -> None:
        """Send one message and wait for the broker's acknowledgement (KafkaError if not)."""
        await produce(
            self._require(),
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
        producer = self._require()
        ack: asyncio.Future[Any] | None = None
        try:
            async with asyncio.timeout(deadline):
                with kafka_errors(f"send a message to {message.topic}"):
                    ack = await producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=list(message.headers),
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
        producer = self._require()
        for topic, group in groupby(messages, key=lambda m: m.topic):
            await produce_many(
                producer,
                topic,
                [OutgoingMessage(key=m.key, value=m.value, headers=m.headers) for m in group],
            )

    async def ping(self) -> None:
        """A metadata round trip to the cluster (for readiness); KafkaError when it fails."""
        producer = self._require()
        with kafka_errors("read the cluster's metadata"):
            await producer.client.fetch_all_metadata()

    async def close(self, *, budget: timedelta = timedelta(seconds=5)) -> None:
        """Flush what the producer holds and close it, for at most ``budget``. Idempotent.

        Whatever is still unacknowledged then is safe to abandon: every message the gateway
        answered for is acknowledged or in the spool, and a drained row is deleted only after
        its acknowledgement.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            await _quietly_stop(producer, budget=budget)


async def _quietly_stop(
    producer: AIOKafkaProducer, *, budget: timedelta = timedelta(seconds=5)
) -> None:
    try:
        with kafka_errors("stop the Kafka producer"):
            await asyncio.wait_for(producer.stop(), budget.total_seconds())
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("the Kafka producer did not stop cleanly", error=repr(exc))


__all__ = ["DeadlineMissed", "ProducerFactory", "ProducerLink"]

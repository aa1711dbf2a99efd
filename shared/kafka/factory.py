"""aiokafka producers and consumers with the project's defaults: the Kafka I/O boundary.

Defaults (architecture.md, "Delivery semantics"):
- producers are idempotent with ``acks=all``: an acknowledged message is on every in-sync replica
  and retries never duplicate it within a partition;
- consumers never auto-commit: services commit offsets only after the work derived from a message
  is durable, so a crash means redelivery, never loss;
- consumers read only committed data (``read_committed``) and start from the earliest offset when
  a group has none;
- producers send at most ``max_request_size`` bytes per message, record overhead included
  (``AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE``, 1 MiB like aiokafka's default): the gateway's body
  cap is derived from it, and each topic's ``max.message.bytes`` must be at least as large;
- every client backs off reconnecting to a broker that is away (:mod:`shared.kafka.pacing`);
  services send through :class:`shared.kafka.producer.Producer`, which replaces a producer whose
  idempotence state the broker no longer accepts.

Every client is made for a :class:`~shared.kafka.security.KafkaClientConfig` (the bootstrap
servers with TLS and SASL; a bare bootstrap string is a PLAINTEXT cluster) and started with
:func:`start_client`, so a client that cannot connect says why in one line naming the setting to
fix. aiokafka exceptions are translated into :class:`shared.errors.KafkaError` here, retriable or
not as :func:`shared.kafka.errors.is_retriable` says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.kafka.errors import DeliveryError, connect_error, translate
from shared.kafka.pacing import pace
from shared.kafka.security import KafkaClientConfig, probe
from shared.logging import get_logger
from shared.metrics import KAFKA_PRODUCE_ERRORS, KAFKA_PRODUCED
from shared.settings import DEFAULT_KAFKA_MAX_REQUEST_SIZE

log = get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


def make_producer(
    kafka: KafkaClientConfig | str,
    /,
    *,
    client_id: str,
    max_request_size: int = DEFAULT_KAFKA_MAX_REQUEST_SIZE,
    **overrides: Any,
) -> AIOKafkaProducer:
    """An idempotent, ``acks=all`` producer (not started) of ``kafka`` sending messages of at
    most ``max_request_size`` bytes (pass the ``kafka_max_request_size`` setting)."""
    options: dict[str, Any] = {
        **KafkaClientConfig.of(kafka).options(),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "max_request_size": max_request_size,
        # No linger: callers await each ack on a request path, and aiokafka still batches
        # whatever accumulates while a request is in flight (bench/bench_kafka.py: awaited sends
        # at 64 callers ran 3.6x faster with p50 1.8 ms instead of 7.5 ms at linger 5 ms).
        "linger_ms": 0,
        "request_timeout_ms": 30_000,
        "compression_type": None,
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    pace(producer.client)  # reconnects back off (aiokafka has no option for it)
    return producer


def make_consumer(
    kafka: KafkaClientConfig | str,
    /,
    *topics: str,
    group_id: str | None,
    client_id: str,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer of ``kafka`` with manual commits, reading committed data from the earliest
    offset (``group_id`` None: no group, for reading by assignment)."""
    options: dict[str, Any] = {
        **KafkaClientConfig.of(kafka).options(),
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **options)
    pace(consumer._client)  # reconnects back off (aiokafka has no option for it)
    return consumer


class Startable(Protocol):
    """A producer, consumer or admin client: ``start()`` connects to the cluster."""

    async def start(self) -> None: ...


async def start_client(client: Startable, kafka: KafkaClientConfig | str, *, what: str) -> None:
    """``await client.start()`` for a client made for ``kafka``. When it cannot connect, the
    cluster is probed for the reason (:func:`~shared.kafka.security.probe`) and a
    :class:`KafkaError` says it in one line ("could not {what}: ..."), naming the setting to fix
    and retriable only when waiting can help (:func:`~shared.kafka.errors.connect_error`). The
    caller still stops the client."""
    try:
        await client.start()
    except (AIOKafkaError, OSError) as exc:
        config = KafkaClientConfig.of(kafka)
        refusals = await probe(config)
        raise connect_error(config, refusals, what, cause=exc) from exc


@asynccontextmanager
async def started(
    consumer: AIOKafkaConsumer,
    kafka: KafkaClientConfig | str,
    *,
    what: str,
    commit_on_stop: bool = False,
) -> AsyncIterator[AIOKafkaConsumer]:
    """``consumer`` (made for ``kafka``) started, stopped at exit; a failure to start is a
    KafkaError naming ``what`` it consumes and why (:func:`start_client`). With
    ``commit_on_stop`` its position is committed before it stops."""
    try:
        await start_client(consumer, kafka, what=f"start the {what} consumer")
    except KafkaError:
        await consumer.stop()
        raise
    try:
        yield consumer
    finally:
        if commit_on_stop:
            try:
                await consumer.commit()
            except AIOKafkaError as exc:
                log.warning("offsets not committed at stop", consumer=what, error=repr(exc))
        await consumer.stop()


def control_consumer(
    kafka: KafkaClientConfig | str,
    topic: str,
    *,
    group_id: str,
    client_id: str,
    commit_on_stop: bool = False,
) -> contextlib.AbstractAsyncContextManager[AIOKafkaConsumer]:
    """A started consumer of the control topic (manual commits); see :func:`started`."""
    consumer = make_consumer(kafka, topic, group_id=group_id, client_id=client_id)
    return started(consumer, kafka, what="control-topic", commit_on_stop=commit_on_stop)


class Sender(Protocol):
    """What :func:`produce` and :func:`produce_many` send with besides a bare
    ``AIOKafkaProducer`` (which a command-line run starts for itself): a service's
    :class:`shared.kafka.producer.Producer`, which answers like one."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]: ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message for :func:`produce_many`."""

    key: bytes | None
    value: bytes | None
    headers: Headers = ()


async def produce_many(
    producer: Sender | AIOKafkaProducer, topic: str, messages: Sequence[OutgoingMessage]
) -> None:
    """Send ``messages`` in order and wait until the broker acknowledged all of them.

    Each is enqueued before the next (so the producer keeps their order within a partition),
    then all acknowledgements are awaited together (so they share batches and round trips).

    Raises :class:`~shared.kafka.errors.DeliveryError` naming each message that was not
    acknowledged, and why; the others were. A message the producer refuses at once (too large)
    does not stop the ones after it; one it could not take in time (no metadata, a full buffer:
    Kafka is away) does, and those after it are reported as not sent.
    """
    if not messages:
        return
    failures: dict[int, KafkaError] = {}
    pending: dict[int, asyncio.Future[Any]] = {}
    for index, m in enumerate(messages):
        try:
            pending[index] = await producer.send(
                topic, value=m.value, key=m.key, headers=list(m.headers)
            )
        except (AIOKafkaError, KafkaError) as exc:
            failures[index] = _translated(exc, f"send a message to {topic}")
            if failures[index].retriable:
                for later in range(index + 1, len(messages)):
                    failures[later] = KafkaError(
                        f"not sent to {topic}: an earlier message could not be queued"
                    )
                break
    acks = await asyncio.gather(*pending.values(), return_exceptions=True)
    for index, ack in zip(pending, acks, strict=True):
        if isinstance(ack, AIOKafkaError | KafkaError):
            failures[index] = _batched(_translated(ack, f"send a message to {topic}"))
        elif isinstance(ack, BaseException):
            raise ack
    acknowledged = len(messages) - len(failures)
    if acknowledged:
        KAFKA_PRODUCED.labels(topic).inc(acknowledged)
    if failures:
        KAFKA_PRODUCE_ERRORS.labels(topic).inc()
        first = failures[min(failures)]
        raise DeliveryError(
            f"Kafka did not acknowledge {len(failures)} of {len(messages)} message(s) to "
            f"{topic}: {first}",
            failures=failures,
        )


def _batched(error: KafkaError) -> KafkaError:
    """A broker's answer is per record batch: a refusal (too large, say) fails every message
    that shared the batch with the one refused. So only a message sent alone (:func:`produce`)
    or refused before it left (at enqueue) is known to be refused for good; here the refusal is
    passed on as retriable."""
    if error.retriable:
        return error
    return KafkaError(
        f"{error} (refused with the messages batched with it; sent alone it gets its own answer)",
        retriable=True,
    )


def _translated(exc: AIOKafkaError | KafkaError, what: str) -> KafkaError:
    """aiokafka's error translated; a :class:`Sender` that has no producer to send with raises
    the project's already."""
    return exc if isinstance(exc, KafkaError) else translate(exc, what)


async def produce(
    producer: Sender | AIOKafkaProducer,
    topic: str,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Headers = (),
) -> tuple[int, int]:
    """Send one message and wait for the broker's acknowledgement; returns (partition, offset)."""
    try:
        metadata = await producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
    except AIOKafkaError as exc:
        KAFKA_PRODUCE_ERRORS.labels(topic).inc()
        raise translate(exc, f"send a message to {topic}") from exc
    except KafkaError:  # a Producer without a producer to send with
        KAFKA_PRODUCE_ERRORS.labels(topic).inc()
        raise
    KAFKA_PRODUCED.labels(topic).inc()
    return metadata.partition, metadata.offset

"""The control topic, both ways: deactivation and reprovision events in, sweep requests out.

The consumer reads ``autotask.control.v1`` in its own group with manual commits: a batch is
committed after each of its events has been handed to the healer (which only schedules a pass).
A crash before the pass ran loses nothing, because every pass at start-up covers what was asked
before it. Events of other types (the provisioner's own sweep requests, backfill notices) and
unreadable ones are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer

from shared.errors import KafkaError, MessageError
from shared.kafka import produce
from shared.kafka.errors import kafka_errors
from shared.kafka.producer import AnyProducer
from shared.logging import get_logger
from shared.messages.control import (
    ReprovisionRequested,
    SweepRequested,
    WebhookDeactivated,
    decode_control,
    encode_control,
)
from shared.metrics import PROVISIONER_CONTROL_EVENTS

log = get_logger(__name__)

Notify = Callable[[str, datetime, str], str | None]
"""``notify(connection, at, trigger)`` → what came of it (None: connection not served)."""
_RETRY = timedelta(seconds=2)
_PUBLISH_TIMEOUT = timedelta(seconds=10)


class KafkaSweepPublisher:
    """Publishes :class:`SweepRequested` on the control topic, keyed by connection."""

    def __init__(
        self, producer: AnyProducer, topic: str, *, timeout: timedelta = _PUBLISH_TIMEOUT
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout = timeout

    async def publish(self, event: SweepRequested) -> None:
        """Send and wait for the broker's acknowledgement; KafkaError if it does not come in
        time (the request then stays owed)."""
        key, value = encode_control(event)
        try:
            await asyncio.wait_for(
                produce(self.producer, self.topic, key=key, value=value),
                self.timeout.total_seconds(),
            )
        except TimeoutError:
            raise KafkaError(
                f"Kafka did not acknowledge a sweep request to {self.topic} within "
                f"{self.timeout.total_seconds():.0f} s: check the brokers, and that the topic "
                "exists (`autotask-sync topics ensure`)"
            ) from None


async def consume(consumer: AIOKafkaConsumer, notify: Notify, stop: asyncio.Event) -> None:
    """Hand every deactivation / reprovision event to ``notify`` until ``stop``."""
    while not stop.is_set():
        try:
            with kafka_errors("consume the control topic"):
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                handled = 0
                for messages in batches.values():
                    for message in messages:
                        handle(message.value, notify)
                        handled += 1
                if handled:
                    await consumer.commit()
        except KafkaError as exc:
            log.warning("control topic unavailable; retrying", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=_RETRY.total_seconds())
            except TimeoutError:
                continue


def handle(value: bytes | None, notify: Notify) -> str:
    """Route one control message; returns what came of it (for metrics and tests)."""
    if value is None:
        return "ignored"
    try:
        event = decode_control(value)
    except MessageError as exc:
        log.warning("unreadable control event skipped", error=str(exc))
        PROVISIONER_CONTROL_EVENTS.labels("unreadable", "ignored").inc()
        return "ignored"
    if isinstance(event, WebhookDeactivated):
        trigger = "deactivation"
    elif isinstance(event, ReprovisionRequested):
        trigger = "reprovision"
    else:
        PROVISIONER_CONTROL_EVENTS.labels(event.type, "ignored").inc()
        return "ignored"
    outcome = notify(event.connection, event.at, trigger) or "ignored"
    PROVISIONER_CONTROL_EVENTS.labels(event.type, outcome).inc()
    # One line per pass asked for; the rest of a flood only at debug level.
    emit = log.info if outcome == "scheduled" else log.debug
    emit(
        "control event",
        type=event.type,
        connection=event.connection,
        outcome=outcome,
        registration=(getattr(event, "registration_id", None) or "")[:8] or None,
    )
    return outcome


__all__ = ["KafkaSweepPublisher", "consume", "handle"]

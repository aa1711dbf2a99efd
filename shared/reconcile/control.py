"""``SweepRequested`` from the control topic, handed to the scheduler as catch-up jobs.

The provisioner publishes one after it created or reactivated a webhook, with ``since`` the time
the webhook stopped (``full`` asks for a full sweep instead). Every process that runs sweeps
reads the topic in one consumer group (``AUTOTASK_SYNC_CONTROL_GROUP``), so each request reaches
one of them; the duplicate rule and the sweep lock make it run once per connection and entity.
Offsets are committed once a batch is handed over; other event types and unreadable ones are
skipped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Protocol

from aiokafka import AIOKafkaConsumer

from shared.entities import find_rest_name
from shared.errors import KafkaError, MessageError
from shared.kafka.errors import kafka_errors
from shared.logging import get_logger
from shared.messages.control import SweepRequested, decode_control
from shared.reconcile.due import Job

log = get_logger(__name__)
_RETRY = timedelta(seconds=2)


class Requests(Protocol):
    """Where requests go (the scheduler)."""

    def request(self, job: Job) -> None: ...


async def consume(consumer: AIOKafkaConsumer, requests: Requests, stop: asyncio.Event) -> None:
    """Hand every ``SweepRequested`` to ``requests`` until ``stop``."""
    while not stop.is_set():
        try:
            with kafka_errors("consume the control topic"):
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                handled = 0
                for messages in batches.values():
                    for message in messages:
                        job = job_for(message.value)
                        if job is not None:
                            requests.request(job)
                        handled += 1
                if handled:
                    await consumer.commit()
        except KafkaError as exc:
            log.warning("control topic unavailable; retrying", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=_RETRY.total_seconds())
            except TimeoutError:
                continue


def job_for(value: bytes | None) -> Job | None:
    """The job a control message asks for, or None (another event type, unreadable)."""
    if value is None:
        return None
    try:
        event = decode_control(value)
    except MessageError as exc:
        log.warning("unreadable control event skipped", error=str(exc))
        return None
    if not isinstance(event, SweepRequested):
        return None
    spec = find_rest_name(event.entity)
    if spec is None:
        log.warning("sweep requested for an unknown entity", entity=event.entity,
                    connection=event.connection)  # fmt: skip
        return None
    since = event.since.isoformat() if event.since else None
    log.info("sweep requested", connection=event.connection, entity=spec.rest_name,
             since=since, reason=event.reason)  # fmt: skip
    return Job(
        connection=event.connection,
        entity=spec.rest_name,
        mode="full" if event.full else "catchup",
        trigger="control",
        since=event.since,
        requested_at=event.at,
    )


__all__ = ["Requests", "consume", "job_for"]

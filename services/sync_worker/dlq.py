"""Dead letters: callouts the worker cannot process, with why, on ``autotask.callouts.dlq.v1``.

Only for failures retrying cannot fix (an unreadable body, an entity type the registry does not
know, a connection no longer served, the API user not allowed to read the entity), and only after
a bounded number of attempts. Load and outages (429, 5xx, network, PostgreSQL, Kafka) are retried
without limit instead: dead-lettering them would turn an outage into lost data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.kafka import OutgoingMessage, produce_many
from shared.kafka.consumer import Record
from shared.kafka.producer import AnyProducer
from shared.messages.deadletter import dead_letter_headers
from shared.messages.topics import Topics
from shared.metrics import WORKER_DEAD_LETTERS


class DeadLetters:
    """Produces failed callouts to the dead-letter topic (acknowledged before returning)."""

    def __init__(self, producer: AnyProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    async def send(
        self,
        messages: Iterable[Record],
        *,
        connection: str,
        error: BaseException,
        attempts: int,
        first_failed_at: datetime,
    ) -> int:
        """Dead-letter ``messages`` (original key, value and headers kept); returns how many."""
        outgoing = [
            OutgoingMessage(
                key=message.key,
                value=message.value,
                headers=dead_letter_headers(
                    list(message.headers or ()),
                    error_class=type(error).__name__,
                    message=str(error),
                    attempts=attempts,
                    first_failed_at=first_failed_at,
                    original_topic=message.topic,
                ),
            )
            for message in messages
        ]
        await produce_many(self._producer, self._topics.callouts_dlq, outgoing)
        WORKER_DEAD_LETTERS.labels(connection or "unknown", type(error).__name__).inc(len(outgoing))
        return len(outgoing)


__all__ = ["DeadLetters"]

"""Dead letters as the operator sees them: read from the dead-letter topic, each one pending or
replayed according to the replay record (``dead_letter_replays``, migration 0014).

``autotask-sync dlq replay`` puts a copy of each selected letter back on the topic it came from;
the letter itself stays on the dead-letter topic until retention removes it. So once Kafka has
acknowledged the copies the replay is recorded here, letter by letter (topic, partition, offset):
``dlq list`` shows when, and ``dlq list --pending``, ``dlq replay`` and ``status`` leave it out.
A replayed callout that fails again is dead-lettered again: a new letter, pending.

A letter's text never includes its body: it may hold customer data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import DbSession, guarded
from shared.kafka import KafkaClientConfig
from shared.kafka.consumer import Record
from shared.kafka.reader import read_to_end
from shared.messages.callout import HEADER_CONNECTION, header_map, parse_instant
from shared.messages.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_ERROR_CLASS,
    HEADER_ERROR_MESSAGE,
    HEADER_FIRST_FAILED_AT,
    HEADER_ORIGINAL_TOPIC,
)
from shared.messages.topics import Topics


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter's facts (no body) and its Kafka record (for a replay)."""

    partition: int
    offset: int
    key: str
    connection: str
    error_class: str
    error_message: str
    attempts: str
    first_failed_at: datetime | None
    """When the callout first failed (None: the header is missing or unreadable)."""
    original_topic: str
    dead_lettered_at: datetime
    """When it reached the dead-letter topic (its Kafka timestamp)."""
    record: Record = dataclasses.field(repr=False, compare=False)
    replayed_at: datetime | None = None
    """When a replay of it was acknowledged (None: pending)."""

    @classmethod
    def of(cls, record: Record, default_topic: str) -> DeadLetter:
        headers = header_map(record.headers)
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=(record.key or b"").decode("utf-8", "replace"),
            connection=headers.get(HEADER_CONNECTION, ""),
            error_class=headers.get(HEADER_ERROR_CLASS, ""),
            error_message=headers.get(HEADER_ERROR_MESSAGE, ""),
            attempts=headers.get(HEADER_ATTEMPTS, ""),
            first_failed_at=_instant(headers.get(HEADER_FIRST_FAILED_AT, "")),
            original_topic=headers.get(HEADER_ORIGINAL_TOPIC, default_topic),
            dead_lettered_at=_kafka_time(record.timestamp),
            record=record,
        )

    @property
    def pending(self) -> bool:
        """Not replayed yet: it still waits for a fix."""
        return self.replayed_at is None

    @property
    def failed_at(self) -> datetime:
        """When it first failed, or else when it was dead-lettered."""
        return self.first_failed_at or self.dead_lettered_at

    def facts(self) -> dict[str, Any]:
        """Everything but the record, for JSON."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "record"
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """A recorded replay of the letter dead-lettered at ``dead_lettered_at``."""

    dead_lettered_at: datetime
    replayed_at: datetime


Place = tuple[int, int]
"""A letter's partition and offset on the dead-letter topic."""


async def read_dead_letters(
    kafka: KafkaClientConfig | str, topics: Topics, *, client_id: str
) -> list[DeadLetter]:
    """Every letter on the dead-letter topic now, partition by partition in offset order."""
    return [
        DeadLetter.of(record, topics.callouts)
        async for record in read_to_end(kafka, topics.callouts_dlq, client_id=client_id)
    ]


async def replays(db: DbSession, topic: str) -> dict[Place, Replay]:
    """The replays recorded for the letters of ``topic``."""
    rows = await guarded(
        db.fetch(
            "SELECT kafka_partition, kafka_offset, dead_lettered_at, replayed_at "
            "FROM dead_letter_replays WHERE topic = $1",
            topic,
        ),
        "read the dead-letter replays",
    )
    return {
        (row["kafka_partition"], row["kafka_offset"]): Replay(
            row["dead_lettered_at"], row["replayed_at"]
        )
        for row in rows
    }


def marked(letters: Sequence[DeadLetter], known: Mapping[Place, Replay]) -> list[DeadLetter]:
    """``letters``, those with a recorded replay marked replayed."""
    result = []
    for letter in letters:
        replay = known.get((letter.partition, letter.offset))
        if replay is not None and replay.dead_lettered_at == letter.dead_lettered_at:
            letter = dataclasses.replace(letter, replayed_at=replay.replayed_at)
        result.append(letter)
    return result


async def record_replays(
    db: DbSession, topic: str, letters: Sequence[DeadLetter], *, oldest_on_topic: datetime
) -> None:
    """Record that ``letters`` (of ``topic``) were replayed now, and forget the replays of
    letters dead-lettered before ``oldest_on_topic``: retention removed those from the topic."""
    await guarded(
        db.execute(
            "INSERT INTO dead_letter_replays (topic, kafka_partition, kafka_offset, "
            "dead_lettered_at) SELECT $1, * FROM unnest($2::integer[], $3::bigint[], "
            "$4::timestamptz[]) ON CONFLICT (topic, kafka_partition, kafka_offset) DO UPDATE "
            "SET dead_lettered_at = excluded.dead_lettered_at, replayed_at = now()",
            topic,
            [letter.partition for letter in letters],
            [letter.offset for letter in letters],
            [letter.dead_lettered_at for letter in letters],
        ),
        "record the dead-letter replay",
    )
    await guarded(
        db.execute(
            "DELETE FROM dead_letter_replays WHERE topic = $1 AND dead_lettered_at < $2",
            topic,
            oldest_on_topic,
        ),
        "forget the replays of dead letters retention removed",
    )


def _kafka_time(milliseconds: int) -> datetime:
    # Whole milliseconds, as PostgreSQL stores them back: a float division could be a
    # microsecond off, and the replay record would no longer match its letter.
    return datetime.fromtimestamp(milliseconds // 1000, UTC) + timedelta(
        milliseconds=milliseconds % 1000
    )


def _instant(text: str) -> datetime | None:
    try:
        return parse_instant(text)
    except ValueError:
        return None


__all__ = ["DeadLetter", "Replay", "marked", "read_dead_letters", "record_replays", "replays"]

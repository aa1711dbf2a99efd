"""The fallback spool (``callout_spool``, migration 0001): messages accepted while Kafka was not.

The gateway writes a message here when Kafka cannot acknowledge it in time, answers Autotask 2xx,
and a drainer later moves the rows to Kafka in id order, deleting each only after Kafka
acknowledged it (architecture.md, "Delivery semantics"). A row holds everything needed to produce
the message exactly as it would have been: topic, key, value (the raw callout bytes) and headers.

Headers are stored as JSON ``[[name, text], ...]``; a value that is not UTF-8 is stored as
``{"base64": "..."}`` so every byte survives the round trip.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import DbSession, Record, guarded

_MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """One spooled row."""

    id: int
    connection: str
    registration_id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    received_at: datetime
    attempts: int

    @classmethod
    def from_record(cls, record: Record) -> SpooledMessage:
        return cls(
            id=record["id"],
            connection=record["connection"],
            registration_id=record["registration_id"],
            topic=record["topic"],
            key=bytes(record["key"]),
            value=bytes(record["value"]),
            headers=decode_headers(record["headers"]),
            received_at=record["received_at"],
            attempts=record["attempts"],
        )


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """How much the spool holds."""

    rows: int
    oldest_received_at: datetime | None
    """When the oldest spooled message was received (None when the spool is empty)."""


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> list[list[Any]]:
    """Headers as JSON-friendly pairs (text where the bytes are UTF-8)."""
    encoded: list[list[Any]] = []
    for name, value in headers:
        try:
            encoded.append([name, value.decode("utf-8")])
        except UnicodeDecodeError:
            encoded.append([name, {"base64": base64.b64encode(value).decode("ascii")}])
    return encoded


def decode_headers(stored: Sequence[Sequence[Any]] | None) -> list[tuple[str, bytes]]:
    """The inverse of :func:`encode_headers`."""
    decoded: list[tuple[str, bytes]] = []
    for name, value in stored or ():
        if isinstance(value, dict):
            decoded.append((str(name), base64.b64decode(value["base64"])))
        else:
            decoded.append((str(name), str(value).encode("utf-8")))
    return decoded


async def append(
    db: DbSession,
    *,
    of_connection: str,
    registration_id: str,
    topic: str,
    key: bytes,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    received_at: datetime,
) -> int:
    """Spool one message; returns its id (ids give the order the drainer keeps)."""
    row_id: int = await guarded(
        db.fetchval(
            "INSERT INTO callout_spool (connection, registration_id, topic, key, value, headers, "
            "received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            of_connection,
            registration_id,
            topic,
            key,
            value,
            encode_headers(headers),
            received_at,
        ),
        "write a message to the spool",
    )
    return row_id


async def oldest(db: DbSession, *, limit: int) -> list[SpooledMessage]:
    """The first ``limit`` rows in id order."""
    records = await guarded(
        db.fetch(
            "SELECT id, connection, registration_id, topic, key, value, headers, received_at, "
            "attempts FROM callout_spool ORDER BY id LIMIT $1",
            limit,
        ),
        "read the spool",
    )
    return [SpooledMessage.from_record(record) for record in records]


async def delete(db: DbSession, ids: Sequence[int]) -> int:
    """Remove rows that Kafka acknowledged; returns how many were removed."""
    if not ids:
        return 0
    status: str = await guarded(
        db.execute("DELETE FROM callout_spool WHERE id = ANY($1::bigint[])", list(ids)),
        "delete drained rows from the spool",
    )
    return int(status.rsplit(" ", 1)[-1])


async def record_failure(db: DbSession, ids: Sequence[int], error: str) -> None:
    """Note a failed attempt to move rows to Kafka (they stay, in place, for the next one)."""
    if not ids:
        return
    await guarded(
        db.execute(
            "UPDATE callout_spool SET attempts = attempts + 1, last_error = $2 "
            "WHERE id = ANY($1::bigint[])",
            list(ids),
            error[:_MAX_ERROR],
        ),
        "record a failed drain of the spool",
    )


async def stats(db: DbSession, *, connection: str | None = None) -> SpoolStats:
    """Rows in the spool (of one connection, or all) and when the oldest was received."""
    record = await guarded(
        db.fetchrow(
            "SELECT count(*) AS rows, min(received_at) AS oldest FROM callout_spool "
            "WHERE $1::text IS NULL OR connection = $1",
            connection,
        ),
        "count the spool",
    )
    assert record is not None
    return SpoolStats(rows=record["rows"], oldest_received_at=record["oldest"])


__all__ = [
    "SpoolStats",
    "SpooledMessage",
    "append",
    "decode_headers",
    "delete",
    "encode_headers",
    "oldest",
    "record_failure",
    "stats",
]

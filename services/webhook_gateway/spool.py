"""The fallback spool (``callout_spool``, migration 0001): messages accepted while Kafka was not.

The gateway writes a message here when Kafka cannot acknowledge it in time, answers Autotask 2xx,
and a drainer later moves the rows to Kafka in id order, deleting each only after Kafka
acknowledged it (architecture.md, "Delivery semantics"). A row holds everything needed to produce
the message exactly as it would have been: topic, key, value (the raw callout bytes) and headers.

A row Kafka refuses for good (too large, its topic refused) and that the dead-letter topic does
not take either is moved to ``spool_rejects`` (migration 0009) with the reason, keeping its id:
:func:`reject`. The operator's view of both tables (``autotask-sync spool``) is :func:`entries`,
:func:`find`, :func:`body`, :func:`retry` and :func:`drop`.

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
    last_error: str | None = None

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
            last_error=record["last_error"],
        )


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """A spooled row or a reject as the operator sees it: everything but the body."""

    id: int
    rejected: bool
    """True for a row in ``spool_rejects``, False for one still in the spool."""
    connection: str
    registration_id: str
    topic: str
    key: bytes
    size: int
    """The body's length in bytes."""
    headers: list[tuple[str, bytes]]
    received_at: datetime
    attempts: int
    last_error: str | None
    reason: str | None
    """Why Kafka refused it for good (rejects only)."""
    rejected_at: datetime | None

    @classmethod
    def from_record(cls, record: Record) -> SpoolEntry:
        return cls(
            id=record["id"],
            rejected=record["rejected"],
            connection=record["connection"],
            registration_id=record["registration_id"],
            topic=record["topic"],
            key=bytes(record["key"]),
            size=record["size"],
            headers=decode_headers(record["headers"]),
            received_at=record["received_at"],
            attempts=record["attempts"],
            last_error=record["last_error"],
            reason=record["reason"],
            rejected_at=record["rejected_at"],
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
            "attempts, last_error FROM callout_spool ORDER BY id LIMIT $1",
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


async def reject(db: DbSession, row_id: int, reason: str) -> bool:
    """Move a row Kafka refused for good to ``spool_rejects`` with ``reason`` (one statement:
    it leaves the spool and arrives there together, or neither). False when it was gone."""
    status: str = await guarded(
        db.execute(
            "WITH moved AS (DELETE FROM callout_spool WHERE id = $1 RETURNING *) "
            "INSERT INTO spool_rejects (id, connection, registration_id, topic, key, value, "
            "headers, received_at, attempts, last_error, reason) "
            "SELECT id, connection, registration_id, topic, key, value, headers, received_at, "
            "attempts + 1, last_error, $2 FROM moved",
            row_id,
            reason[:_MAX_ERROR],
        ),
        "move a refused message from the spool to spool_rejects",
    )
    return status.rsplit(" ", 1)[-1] == "1"


_ENTRIES = """
    SELECT id, false AS rejected, connection, registration_id, topic, key,
           octet_length(value) AS size, headers, received_at, attempts, last_error,
           NULL::text AS reason, NULL::timestamptz AS rejected_at
      FROM callout_spool
     WHERE ($1::text IS NULL OR connection = $1) AND ($2::bigint IS NULL OR id = $2)
       AND NOT $3::boolean
    UNION ALL
    SELECT id, true, connection, registration_id, topic, key,
           octet_length(value), headers, received_at, attempts, last_error,
           reason, rejected_at
      FROM spool_rejects
     WHERE ($1::text IS NULL OR connection = $1) AND ($2::bigint IS NULL OR id = $2)
     ORDER BY id
"""
"""Rows of both tables as :class:`SpoolEntry` ($1 connection, $2 id, $3 rejects only)."""


async def entries(
    db: DbSession, *, connection: str | None = None, rejects_only: bool = False
) -> list[SpoolEntry]:
    """Spooled rows and rejects (of one connection, or all; only rejects if asked), in id
    order."""
    records = await guarded(
        db.fetch(_ENTRIES, connection, None, rejects_only),
        "read the spool and its rejects",
    )
    return [SpoolEntry.from_record(record) for record in records]


async def find(db: DbSession, row_id: int) -> SpoolEntry | None:
    """The spooled row or reject with ``row_id`` (None when neither table has it)."""
    record = await guarded(
        db.fetchrow(_ENTRIES, None, row_id, False),
        "find a spooled message",
    )
    return None if record is None else SpoolEntry.from_record(record)


async def body(db: DbSession, row_id: int) -> bytes | None:
    """The body (the raw callout bytes) of a spooled row or reject; None when unknown."""
    value = await guarded(
        db.fetchval(
            "SELECT value FROM callout_spool WHERE id = $1 "
            "UNION ALL SELECT value FROM spool_rejects WHERE id = $1 LIMIT 1",
            row_id,
        ),
        "read a spooled message's body",
    )
    return None if value is None else bytes(value)


async def retry(db: DbSession, row_id: int) -> int | None:
    """Send a message again: a reject goes back to the spool, behind every row there (its new
    id is returned); a spooled row's attempts start again from 0 (its id is returned). None
    when neither table has ``row_id``."""
    new_id: int | None = await guarded(
        db.fetchval(
            "WITH moved AS (DELETE FROM spool_rejects WHERE id = $1 RETURNING *) "
            "INSERT INTO callout_spool (connection, registration_id, topic, key, value, headers, "
            "received_at, attempts, last_error) "
            "SELECT connection, registration_id, topic, key, value, headers, received_at, 0, "
            "'retried after: ' || reason FROM moved RETURNING id",
            row_id,
        ),
        "put a rejected message back in the spool",
    )
    if new_id is not None:
        return new_id
    kept: int | None = await guarded(
        db.fetchval(
            "UPDATE callout_spool SET attempts = 0 WHERE id = $1 RETURNING id",
            row_id,
        ),
        "reset a spooled message's attempts",
    )
    return kept


async def drop(db: DbSession, row_id: int) -> bool:
    """Delete a spooled row or a reject for good; False when neither table has ``row_id``."""
    found: int | None = await guarded(
        db.fetchval(
            "WITH spooled AS (DELETE FROM callout_spool WHERE id = $1 RETURNING id), "
            "rejected AS (DELETE FROM spool_rejects WHERE id = $1 RETURNING id) "
            "SELECT id FROM spooled UNION ALL SELECT id FROM rejected LIMIT 1",
            row_id,
        ),
        "delete a spooled message",
    )
    return found is not None


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
    "SpoolEntry",
    "SpoolStats",
    "SpooledMessage",
    "append",
    "body",
    "decode_headers",
    "delete",
    "drop",
    "encode_headers",
    "entries",
    "find",
    "oldest",
    "record_failure",
    "reject",
    "retry",
    "stats",
]

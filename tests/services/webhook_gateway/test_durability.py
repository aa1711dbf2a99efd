"""The ordering rule of :mod:`services.webhook_gateway.durability` as pure logic.

Kafka never connects here (the producer link is not started), so every message takes the spool
path; the spool writer is a recording function. What Kafka and PostgreSQL really do is covered
by the integration tests (test_faults.py, test_callouts.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.webhook_gateway.durability import Durability, Stored, Unavailable
from services.webhook_gateway.producer import ProducerLink
from services.webhook_gateway.routing import OutboundMessage
from shared.errors import DatabaseError

MESSAGE = OutboundMessage(
    topic="t",
    key=b"k",
    value=b"v",
    headers=(),
    connection="acme",
    registration_id="r" * 32,
    received_at=datetime(2026, 12, 1, tzinfo=UTC),
)


class Spool:
    """A spool writer that records, fails on demand, or waits until released."""

    def __init__(self) -> None:
        self.rows: list[OutboundMessage] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, message: OutboundMessage) -> int:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise DatabaseError("the spool is down")
        self.rows.append(message)
        return len(self.rows)


def _durability(spool: Spool) -> Durability:
    link = ProducerLink(
        bootstrap_servers="127.0.0.1:9", client_id="t", retry_interval=timedelta(seconds=1)
    )
    return Durability(link=link, write_spool=spool, produce_deadline=timedelta(seconds=1))


async def test_without_kafka_messages_are_spooled_and_the_spool_then_holds_rows() -> None:
    spool = Spool()
    durability = _durability(spool)
    assert not durability.spooling
    assert await durability.store(MESSAGE) is Stored.SPOOL
    assert spool.rows == [MESSAGE]
    assert durability.spooling


async def test_neither_kafka_nor_spool_is_unavailable() -> None:
    spool = Spool()
    spool.fail = True
    durability = _durability(spool)
    with pytest.raises(Unavailable):
        await durability.store(MESSAGE)
    assert not durability.spooling  # nothing was spooled


async def test_an_empty_count_ends_spooling_only_if_no_write_happened_meanwhile() -> None:
    spool = Spool()
    durability = _durability(spool)
    await durability.store(MESSAGE)

    mark = durability.mark()
    await durability.store(MESSAGE)  # a write after the mark: the count may have missed it
    durability.observed(rows=0, since=mark)
    assert durability.spooling

    mark = durability.mark()
    durability.observed(rows=3, since=mark)
    assert durability.spooling

    mark = durability.mark()
    durability.observed(rows=0, since=mark)
    assert not durability.spooling


async def test_a_write_in_flight_at_the_count_keeps_spooling() -> None:
    spool = Spool()
    durability = _durability(spool)
    await durability.store(MESSAGE)
    spool.gate = asyncio.Event()
    pending = asyncio.create_task(durability.store(MESSAGE))
    await asyncio.sleep(0)  # the write has started, not committed
    mark = durability.mark()
    spool.gate.set()
    await pending  # it finishes before the (empty) count result arrives
    durability.observed(rows=0, since=mark)
    assert durability.spooling

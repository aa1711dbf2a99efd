"""What retrying cannot fix does not hold up the spool: a row Kafka refuses for good is moved
aside (dead-letter topic, else ``spool_rejects``) and the rows behind it, of every tenant, reach
Kafka in the same run. Against real PostgreSQL and Kafka; the per-key rule itself is pure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.webhook_gateway import spool
from services.webhook_gateway.drainer import Drainer, settle
from services.webhook_gateway.durability import Durability, pool_spool_writer
from services.webhook_gateway.producer import ProducerLink
from shared.db import connect, create_pool
from shared.errors import KafkaError
from shared.kafka import ensure_topics
from shared.messages.deadletter import (
    HEADER_ATTEMPTS,
    HEADER_ERROR_CLASS,
    HEADER_ERROR_MESSAGE,
    HEADER_ORIGINAL_TOPIC,
)
from shared.messages.topics import TopicSpec
from shared.metrics import GATEWAY_SPOOL_REJECTED
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    callout_body,
    read_topic,
    serve_gateway,
    spooled,
)

TOO_LARGE = 1024 * 1024 + 1  # more than the producer sends (1 MiB, record overhead included)
HEADERS = [("connection", b"acme"), ("binary", b"\xff\x00")]


async def _spool(deployment: Deployment, rows: Sequence[tuple[str, str, bytes, bytes]]) -> None:
    """Spool ``(connection, topic, key, value)`` rows as a gateway would have left them."""
    db = await connect(deployment.dsn)
    try:
        for connection, topic, key, value in rows:
            await spool.append(
                db,
                of_connection=connection,
                registration_id="r" * 32,
                topic=topic,
                key=key,
                value=value,
                headers=HEADERS,
                received_at=datetime.now(UTC),
            )
    finally:
        await db.close()


async def _rejects(dsn: str) -> list[spool.SpoolEntry]:
    db = await connect(dsn)
    try:
        return await spool.entries(db, rejects_only=True)
    finally:
        await db.close()


@asynccontextmanager
async def _draining(
    deployment: Deployment, *, dead_letter_topic: str | None
) -> AsyncIterator[None]:
    """A producer and a drainer as the gateway runs them, for the block."""
    link = ProducerLink(
        bootstrap_servers=deployment.bootstrap,
        client_id="test-drainer",
        retry_interval=timedelta(milliseconds=200),
    )
    pool = await create_pool(deployment.dsn, min_size=1, max_size=2)
    durability = Durability(
        link=link,
        write_spool=pool_spool_writer(pool, deadline=timedelta(seconds=3)),
        produce_deadline=timedelta(seconds=2),
    )
    drainer = Drainer(
        dsn=deployment.dsn,
        link=link,
        durability=durability,
        batch=100,
        interval=timedelta(milliseconds=100),
        dead_letter_topic=dead_letter_topic,
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(link.run(stop)), asyncio.create_task(drainer.run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await link.close()
        await pool.close()


def _rejected(destination: str) -> float:
    return GATEWAY_SPOOL_REJECTED.labels(destination)._value.get()


@pytest.mark.integration
@pytest.mark.parametrize("dead_letters", [True, False], ids=["dlq-configured", "no-dlq"])
async def test_a_row_too_large_for_kafka_goes_to_spool_rejects_and_another_tenant_behind_it_drains(
    deployment: Deployment, dead_letters: bool
) -> None:
    """Too large for the producer is too large for the dead-letter topic too (it adds headers):
    the row goes to spool_rejects, whether a dead-letter topic is configured or not."""
    callouts = deployment.topics.callouts
    poison = b"{" + b" " * (TOO_LARGE - 2) + b"}"
    behind = [callout_body(8, sequence=n) for n in range(3)]
    await _spool(
        deployment,
        [
            ("acme", callouts, b"acme:Ticket:7", poison),
            *(("globex", callouts, b"globex:Ticket:8", body) for body in behind),
        ],
    )
    before = _rejected("table")
    dead_letter_topic = deployment.topics.callouts_dlq if dead_letters else None
    async with _draining(deployment, dead_letter_topic=dead_letter_topic):
        records = await read_topic(deployment.bootstrap, callouts, at_least=3)
        await eventually(_spool_empty(deployment))
    assert [r.value for r in records] == behind  # the other tenant's rows, in order
    rejects = await _rejects(deployment.dsn)
    assert [(r.id, r.connection, r.key, r.size, r.topic) for r in rejects] == [
        (1, "acme", b"acme:Ticket:7", TOO_LARGE, callouts)
    ]
    assert "MessageSizeTooLargeError" in (rejects[0].reason or "")
    assert rejects[0].headers == HEADERS
    assert rejects[0].attempts == 1
    assert _rejected("table") == before + 1
    assert await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq) == []


@pytest.mark.integration
async def test_the_real_gateway_moves_a_poison_row_aside_and_drains_the_rest(
    deployment: Deployment,
) -> None:
    """The incident: a row no producer can send ahead of later callouts of every tenant."""
    callouts = deployment.topics.callouts
    behind = [callout_body(9, sequence=n) for n in range(5)]
    await _spool(
        deployment,
        [
            ("acme", callouts, b"acme:Ticket:7", b" " * TOO_LARGE),
            *(("globex", callouts, b"globex:Ticket:9", body) for body in behind),
        ],
    )
    async with serve_gateway(deployment.settings()) as served:
        records = await read_topic(deployment.bootstrap, callouts, at_least=5)
        await eventually(_spool_empty(deployment))
        gateway = served.gateway
        assert gateway is not None

        async def back_to_kafka() -> bool:
            return not gateway.durability.spooling

        await eventually(back_to_kafka)  # the reject does not keep new callouts in the spool
    assert [r.value for r in records] == behind
    assert [r.key for r in await _rejects(deployment.dsn)] == [b"acme:Ticket:7"]


@pytest.mark.integration
async def test_a_row_its_topic_refuses_goes_to_the_dead_letter_topic_with_why(
    deployment: Deployment,
) -> None:
    """A topic configured to take at most 2,000 bytes (below the producer's limit, so the broker
    refuses, not the producer): the row is dead-lettered with its headers and the reason, and
    another connection's rows behind it go on."""
    small = f"{deployment.topics.prefix}.small.v1"
    await ensure_topics(
        deployment.bootstrap,
        [TopicSpec(small, 1, {"max.message.bytes": "2000"})],
        replication_factor=1,
    )
    poison = b"x" * 5000
    behind = [callout_body(2, sequence=n) for n in range(3)]
    await _spool(
        deployment,
        [
            ("acme", small, b"acme:Ticket:1", poison),
            *(("globex", deployment.topics.callouts, b"globex:Ticket:2", b) for b in behind),
        ],
    )
    before = _rejected("dlq")
    async with _draining(deployment, dead_letter_topic=deployment.topics.callouts_dlq):
        letters = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq, at_least=1)
        await eventually(_spool_empty(deployment))
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=3)
    assert [r.value for r in records] == behind
    [letter] = letters
    assert (letter.key, letter.value) == (b"acme:Ticket:1", poison)
    headers = dict(letter.headers)
    assert headers["binary"] == b"\xff\x00"  # the original headers kept
    assert headers[HEADER_ORIGINAL_TOPIC] == small.encode()
    assert headers[HEADER_ERROR_CLASS] == b"KafkaError"
    assert b"MessageSizeTooLargeError" in headers[HEADER_ERROR_MESSAGE]
    assert headers[HEADER_ATTEMPTS] == b"1"
    assert await _rejects(deployment.dsn) == []
    assert _rejected("dlq") == before + 1


def _spool_empty(deployment: Deployment) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return not await spooled(deployment.dsn)

    return empty


# --- the per-key rule (pure) -------------------------------------------------------------------
def _row(row_id: int, key: bytes, topic: str = "t") -> spool.SpooledMessage:
    return spool.SpooledMessage(
        id=row_id,
        connection="acme",
        registration_id="r",
        topic=topic,
        key=key,
        value=b"v",
        headers=[],
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
        attempts=0,
    )


AWAY = KafkaError("Kafka did not answer")
REFUSED = KafkaError("too large", retriable=False)


def test_a_key_with_a_retriable_failure_keeps_its_later_rows_while_another_key_drains() -> None:
    rows = [_row(1, b"a"), _row(2, b"b"), _row(3, b"a"), _row(4, b"b"), _row(5, b"a")]
    settled = settle(rows, {1: None, 2: None, 3: AWAY, 4: None, 5: None})
    assert settled.delivered == [1, 2, 4]  # a's prefix up to its failure, and all of b
    assert settled.failed == [(3, AWAY)]
    assert settled.held == [5]  # acknowledged, but behind 3: sent again after it
    assert settled.refused == []


def test_a_row_refused_for_good_is_moved_aside_and_its_key_goes_on() -> None:
    rows = [_row(1, b"a"), _row(2, b"a"), _row(3, b"a")]
    settled = settle(rows, {1: REFUSED, 2: None, 3: None})
    assert [row.id for row, _ in settled.refused] == [1]
    assert settled.delivered == [2, 3]


def test_after_a_retriable_failure_a_refused_row_of_that_key_waits_its_turn() -> None:
    rows = [_row(1, b"a"), _row(2, b"a"), _row(3, b"c")]
    settled = settle(rows, {1: AWAY, 2: REFUSED, 3: REFUSED})
    assert settled.failed == [(1, AWAY)]
    assert settled.held == [2]
    assert [row.id for row, _ in settled.refused] == [3]


def test_a_row_not_sent_holds_its_key_and_the_same_key_on_another_topic_is_another_key() -> None:
    rows = [_row(1, b"a"), _row(2, b"a"), _row(3, b"a", topic="u")]
    settled = settle(rows, {2: None, 3: None})
    assert settled.held == [1, 2]
    assert settled.delivered == [3]

"""The spool drainer against real PostgreSQL and Kafka: rows left by an earlier run, order, a
topic Kafka refuses, and a prompt stop."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from services.webhook_gateway import spool
from services.webhook_gateway.app import ADMISSION
from shared.db import connect
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    callout_body,
    read_topic,
    serve_gateway,
    signed_headers,
    spooled,
)
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"


async def _spool_rows(deployment: Deployment, rows: list[tuple[str, bytes, bytes]]) -> None:
    """Spool ``(topic, key, value)`` rows as a gateway that crashed would have left them."""
    db = await connect(deployment.dsn)
    try:
        for topic, key, value in rows:
            await spool.append(
                db,
                of_connection="acme",
                registration_id="r" * 32,
                topic=topic,
                key=key,
                value=value,
                headers=[("connection", b"acme"), ("binary", b"\xff\x00")],
                received_at=datetime.now(UTC),
            )
    finally:
        await db.close()


async def test_rows_left_by_an_earlier_run_are_drained_first_and_new_callouts_queue_behind(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    registration = await deployment.registration(secret=SECRET)
    left = [callout_body(5, sequence=n) for n in range(10)]
    await _spool_rows(deployment, [(deployment.topics.callouts, b"acme:Ticket:5", b) for b in left])
    async with serve_gateway(deployment.settings()) as served:
        gateway = served.gateway
        assert gateway is not None
        newer = [callout_body(5, sequence=n) for n in range(10, 20)]
        for body in newer:
            url = served.callout_url(registration.registration_id)
            async with http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
                assert r.status == 200

        async def drained() -> bool:
            return not gateway.durability.spooling and not await spooled(deployment.dsn)

        await eventually(drained)
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=20)
    sequences = [json.loads(r.value)["SequenceNumber"] for r in records]  # type: ignore[arg-type]
    assert sequences == list(range(20))  # one key: the spooled ones first, then the newer ones
    assert list(records[0].headers) == [("connection", b"acme"), ("binary", b"\xff\x00")]


async def test_a_topic_kafka_refuses_holds_up_only_its_own_rows_and_not_the_stop(
    deployment: Deployment,
) -> None:
    missing = f"{deployment.topics.prefix}.never.created.v1"
    bodies = [callout_body(7, sequence=n) for n in range(5)]
    await _spool_rows(
        deployment,
        [
            (missing, b"acme", b"first in line"),
            *((deployment.topics.callouts, b"k", b) for b in bodies),
        ],
    )
    async with serve_gateway(deployment.settings()):

        async def only_the_refused_row_left() -> bool:
            return [row.topic for row in await spooled(deployment.dsn)] == [missing]

        await eventually(only_the_refused_row_left)  # the callouts moved on meanwhile
        records = await read_topic(deployment.bootstrap, deployment.topics.callouts, at_least=5)
        stopping = time.monotonic()
    stop_took = time.monotonic() - stopping
    assert [r.value for r in records] == bodies
    assert [row.value for row in await spooled(deployment.dsn)] == [b"first in line"]  # kept
    assert stop_took < 15, stop_took  # the stuck send (30 s request timeout) did not hold it up
    await asyncio.sleep(0)


async def test_beyond_the_concurrency_cap_callouts_are_refused_at_once_not_queued(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    """Kafka unreachable and the spool table locked: three callouts wait in their spool write,
    the others are answered 503 at once; once the lock goes, the three are spooled."""
    registration = await deployment.registration(secret=SECRET)
    settings = deployment.settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        max_concurrent_callouts=3,
        spool_deadline=timedelta(seconds=60),
    )
    bodies = [callout_body(9, sequence=n) for n in range(8)]
    async with serve_gateway(settings) as served:
        url = served.callout_url(registration.registration_id)
        locker = await connect(deployment.dsn)
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE callout_spool IN ACCESS EXCLUSIVE MODE")
        try:

            async def post(body: bytes) -> int:
                async with http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
                    return r.status

            first = [asyncio.create_task(post(body)) for body in bodies[:3]]
            await eventually(lambda: served.gateway.app[ADMISSION].callouts.current == 3)  # type: ignore[union-attr]
            started = time.monotonic()
            refused = [await post(body) for body in bodies[3:]]
            refusing_took = time.monotonic() - started
        finally:
            await transaction.rollback()
            await locker.close()
        accepted = await asyncio.gather(*first)
        rows = await spooled(deployment.dsn)
    assert refused == [503] * 5
    assert refusing_took < 20  # answered at once, not after the 60 s spool deadline
    assert accepted == [200, 200, 200]
    assert sorted(row.value for row in rows) == sorted(bodies[:3])

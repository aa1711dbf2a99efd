"""The gateway's probes tell the truth: a spool that does not drain while Kafka answers is not
ready, then not alive; Kafka away fails neither (the spool takes the callouts meanwhile).

Each test runs the gateway as a real process (``python -m services.webhook_gateway``, probes
served as in production) with short stall bounds. Kafka goes away on a broker the module owns
(tests/helpers/servers.py); the session's shared Kafka is never stopped. A spool stuck while
Kafka answers is one whose topic does not exist yet (the brokers do not create topics).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.messages.topics import Topics
from tests.helpers.servers import Broker
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    Served,
    callout_body,
    create_topics,
    gateway_process,
    read_topic,
    signed_headers,
    spooled,
)
from tools.deployment import ServiceProcess

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"
UNREADY_AFTER = timedelta(seconds=2)
UNHEALTHY_AFTER = timedelta(seconds=4)
STALL_BOUNDS = {
    "AUTOTASK_SYNC_STALL_UNREADY_AFTER": f"{UNREADY_AFTER.total_seconds():g}s",
    "AUTOTASK_SYNC_STALL_UNHEALTHY_AFTER": f"{UNHEALTHY_AFTER.total_seconds():g}s",
}
PATIENCE = timedelta(seconds=60)
"""How long a probe may take to change its answer on a busy machine (the bounds are seconds)."""


async def _probe(http: aiohttp.ClientSession, process: ServiceProcess, path: str) -> Any:
    async with http.get(f"{process.ops_url}{path}") as response:
        body = await response.json()
        return response.status, body


async def _callouts(
    http: aiohttp.ClientSession, process: ServiceProcess, registration_id: str, count: int
) -> list[bytes]:
    """``count`` callouts, each answered 200 (in the spool or on Kafka: durable)."""
    bodies = [callout_body(500 + n, sequence=n) for n in range(count)]
    url = Served(process.url).callout_url(registration_id)
    for body in bodies:
        async with http.post(url, data=body, headers=signed_headers(SECRET, body)) as response:
            assert response.status == 200, await response.text()
    return bodies


def _failing(answer: tuple[int, Any], check: str) -> bool:
    status, body = answer
    return status == 503 and check in body.get("failing", {})


async def test_kafka_away_keeps_a_spooling_gateway_ready_and_alive_then_it_drains(
    broker: Broker, on_own_broker: Deployment, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    own = on_own_broker
    registration = await own.registration(secret=SECRET)
    process = gateway_process(own.settings(), tmp_path / "gateway.log", **STALL_BOUNDS)
    await process.start()
    try:
        await asyncio.to_thread(broker.stop)
        bodies = await _callouts(http, process, registration.registration_id, 5)
        assert len(await spooled(own.dsn)) == 5

        # Stalled past both bounds by now, but Kafka is away: the spool takes the callouts, so
        # the replica stays in the Service (ready) and a restart would not help (alive).
        await eventually(
            lambda: _stalled_longer_than(process, "spool", UNHEALTHY_AFTER),
            within=PATIENCE,
            what="the spool stalled past the liveness bound",
        )
        assert await _ready(http, process)
        assert (await _probe(http, process, "/healthz"))[0] == 200
        assert (
            await process.metric("autotask_sync_probe_failing", probe="readiness", check="spool")
            == 0
        )

        await asyncio.to_thread(broker.start)
        await eventually(lambda: _ready(http, process), within=PATIENCE, what="/readyz ready again")

        async def drained() -> bool:
            return await spooled(own.dsn) == []

        await eventually(drained, within=PATIENCE, what="the spool drained")
        records = await read_topic(own.bootstrap, own.topics.callouts, at_least=5)
        assert set(bodies) <= {r.value for r in records}
    finally:
        await process.stop()
        await asyncio.to_thread(broker.start)


async def test_a_spool_stuck_while_kafka_answers_fails_liveness_until_it_drains(
    deployment: Deployment,
    kafka_bootstrap: str,
    unique: str,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    topics = Topics(prefix=f"gwq{unique}")  # not created yet: nothing the gateway sends lands
    stuck = Deployment(deployment.dsn, kafka_bootstrap, topics, deployment.key)
    registration = await stuck.registration(secret=SECRET)
    process = gateway_process(stuck.settings(), tmp_path / "gateway.log", **STALL_BOUNDS)
    await process.start()
    try:
        bodies = await _callouts(http, process, registration.registration_id, 3)
        status, health = await eventually(
            lambda: _liveness_failing(http, process),
            within=PATIENCE,
            what="/healthz failing on the spool",
        )
        assert status == 503
        assert health["status"] == "stuck"
        assert "spool" in health["failing"]
        readiness = await _probe(http, process, "/readyz")
        assert _failing(readiness, "spool")

        await create_topics(kafka_bootstrap, topics.prefix)  # the operator's fix
        await eventually(lambda: _ready(http, process), within=PATIENCE, what="/readyz ready again")
        assert (await _probe(http, process, "/healthz"))[0] == 200
        records = await read_topic(kafka_bootstrap, topics.callouts, at_least=3)
        assert set(bodies) <= {r.value for r in records}
    finally:
        await process.stop()


async def _liveness_failing(
    http: aiohttp.ClientSession, process: ServiceProcess
) -> tuple[int, Any] | None:
    answer = await _probe(http, process, "/healthz")
    return answer if _failing(answer, "spool") else None


async def _ready(http: aiohttp.ClientSession, process: ServiceProcess) -> bool:
    return (await _probe(http, process, "/readyz"))[0] == 200


async def _stalled_longer_than(process: ServiceProcess, part: str, bound: timedelta) -> bool:
    stalled = await process.metric("autotask_sync_stalled_seconds", part=part)
    return stalled > bound.total_seconds() + 1

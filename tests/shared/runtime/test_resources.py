"""A service's base resources: the producer's progress is on the probes. Sends that are never
acknowledged make ``/readyz`` fail, naming the producer; an acknowledgement clears it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from shared.kafka import ensure_topics, produce
from shared.messages.topics import TopicSpec
from shared.runtime.bootstrap import BaseResources, open_base_resources, serve_ops
from shared.runtime.runner import ServiceRunner
from shared.settings import BaseServiceSettings
from tests.helpers.waiting import eventually
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration


async def test_sends_never_acknowledged_make_the_service_unready_until_one_is(
    database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    topic = f"test.resources.{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)], replication_factor=1)
    port = free_port()
    settings = BaseServiceSettings(
        database_url=SecretStr(database_url),
        kafka_bootstrap_servers=kafka_bootstrap,
        http_host="127.0.0.1",
        ops_port=port,
        stall_unready_after=timedelta(seconds=1),
        stall_unhealthy_after=timedelta(seconds=30),
    )
    opened: list[BaseResources] = []

    async def start(runner: ServiceRunner) -> None:
        resources = await open_base_resources(runner, settings, kafka=True)
        opened.append(resources)
        await serve_ops(
            runner, settings, checks=resources.readiness_checks(), progress=resources.progress
        )

    runner = ServiceRunner("test", grace=timedelta(seconds=5))
    async with runner.running(start), aiohttp.ClientSession() as http:
        producer = opened[0].producer
        assert producer is not None

        async def readyz() -> tuple[int, Any]:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status, await response.json()

        assert (await readyz())[0] == 200
        # A topic that does not exist: the send waits for its metadata and is never acknowledged.
        stuck = asyncio.create_task(produce(producer, f"{topic}.missing", key=b"k", value=b"lost"))
        try:
            status, body = await eventually(
                _failing(readyz), within=timedelta(seconds=20), what="/readyz failing"
            )
            assert status == 503
            assert body["failing"]["kafka-producer"].startswith(
                "Stalled: kafka-producer: sends waiting and nothing done"
            )
            assert set(body["failing"]) == {"kafka-producer"}  # Kafka itself answers

            await produce(producer, topic, key=b"k", value=b"acknowledged")
            await eventually(
                lambda: _status(readyz, 200), within=timedelta(seconds=20), what="/readyz ready"
            )
            assert producer.unacknowledged == 1  # the stuck send, still waiting
        finally:
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stuck
        assert producer.unacknowledged == 0


def _failing(readyz: Any) -> Any:
    async def check() -> tuple[int, Any] | None:
        answer = await readyz()
        return answer if answer[0] == 503 else None

    return check


async def _status(readyz: Any, wanted: int) -> bool:
    return (await readyz())[0] == wanted

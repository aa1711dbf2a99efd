"""Each service starts as ``python -m services.<name>``, serves its ops endpoints, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.secrets import SecretBox
from tests.helpers.pipeline import create_topics
from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SERVICES = ["webhook_gateway", "sync_worker", "provisioner", "reconciler"]


def _own_groups(prefix: str) -> dict[str, str]:
    """Consumer groups of the test's own: tests running at the same time share the broker."""
    return {
        "AUTOTASK_SYNC_CONSUMER_GROUP": f"{prefix}-workers",
        "AUTOTASK_SYNC_CONTROL_GROUP": f"{prefix}-sweeps",
        "AUTOTASK_SYNC_PROVISIONER_GROUP_ID": f"{prefix}-provisioner",
    }


async def _readiness(service: ServiceProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{service.ops_url}/readyz") as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


@pytest.mark.parametrize("service", SERVICES)
async def test_service_serves_ops_endpoints_and_stops_on_sigterm(
    service: str, stack, migrated_database: str, unique: str, tmp_path: Path
) -> None:
    topics = await create_topics(stack.kafka_bootstrap_servers, f"l{unique}", partitions=1)
    env = {
        **stack.as_env(),
        "DATABASE_URL": migrated_database,  # a deployment migrates before it starts services
        "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        **_own_groups(topics.prefix),
    }
    process = ServiceProcess(service, env, log_path=tmp_path / f"{service}.log")
    try:
        await process.start(ready=timedelta(seconds=20))
        ready = await _readiness(process)
        # The gateway is ready when Kafka *or* its spool works (docs/adr/0005); the others
        # need PostgreSQL.
        wanted = {"registrations", "durability"} if service == "webhook_gateway" else {"postgres"}
        assert wanted <= set(ready["checks"])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{process.ops_url}/metrics") as response:
                metrics = await response.text()
            async with session.get(f"{process.ops_url}/healthz") as response:
                assert response.status == 200
        assert f'autotask_sync_service_up{{service="{service}",version="0.1.0"}} 1.0' in metrics
        code = await process.stop(within=timedelta(seconds=15))
    finally:
        await process.kill()
    output = process.log()
    assert code == 0, output
    assert '"event":"service stopped"' in output
    assert "postgresql://" not in output  # the database URL is never logged


async def test_malformed_variable_stops_startup_with_its_name(tmp_path: Path) -> None:
    env = {"AUTOTASK_SYNC_HTTP_PORT": "not-a-port"}
    process = ServiceProcess("webhook_gateway", env, log_path=tmp_path / "gateway.log")
    await process.start(ready=None)
    try:
        code = await process.wait(timedelta(seconds=30))
    finally:
        await process.kill()
    assert code == 2
    assert "AUTOTASK_SYNC_HTTP_PORT" in process.log()


async def _forward(port: int, target: tuple[str, int]) -> asyncio.Server:
    """A TCP forwarder on ``port``: the dependency "comes up" when this starts."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)


def _service_env(stack, database_url: str, topics_prefix: str) -> dict[str, str]:
    return {
        **stack.as_env(),
        "DATABASE_URL": database_url,
        "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics_prefix,
        **_own_groups(topics_prefix),
    }


def _line_with(service: ServiceProcess, text: str) -> str:
    """The first line of the service's log holding ``text`` ("" if none does yet)."""
    assert service.running, f"{service.name} exited:\n{service.log()}"
    return next((line for line in service.log().splitlines() if text in line), "")


async def test_a_service_started_before_postgres_waits_for_it(
    stack, migrated_database: str, unique: str, tmp_path: Path
) -> None:
    """Pods start in any order: the worker retries PostgreSQL and becomes ready when it is up."""
    from urllib.parse import urlsplit

    topics = await create_topics(stack.kafka_bootstrap_servers, f"w{unique}", partitions=1)
    real = urlsplit(migrated_database)
    late = free_port()
    dsn = migrated_database.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{late}")
    process = ServiceProcess(
        "sync_worker", _service_env(stack, dsn, topics.prefix), log_path=tmp_path / "worker.log"
    )
    await process.start(ready=None)
    forwarder = None
    try:
        waiting = await eventually(
            lambda: _line_with(process, "dependency not reachable yet"),
            within=timedelta(seconds=30),
            what="the worker to say it waits for PostgreSQL",
        )
        assert '"dependency":"PostgreSQL"' in waiting
        forwarder = await _forward(late, (real.hostname or "127.0.0.1", real.port or 5432))
        await process.wait_ready(timedelta(seconds=20))
        ready = await _readiness(process)
        assert "postgres" in ready["checks"]
        code = await process.stop(within=timedelta(seconds=15))
    finally:
        await process.kill()
        if forwarder is not None:
            forwarder.close()
    output = process.log()
    assert code == 0, output
    assert "postgresql://postgres@" not in output  # the user (and a password) is never logged


async def test_a_service_gives_up_on_kafka_after_the_startup_wait(
    stack, migrated_database: str, unique: str, tmp_path: Path
) -> None:
    env = _service_env(stack, migrated_database, f"k{unique}")
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    env["AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    env["AUTOTASK_SYNC_STARTUP_WAIT"] = "2s"
    process = ServiceProcess("provisioner", env, log_path=tmp_path / "provisioner.log")
    await process.start(ready=None)
    try:
        code = await process.wait(timedelta(seconds=60))
    finally:
        await process.kill()
    output = process.log()
    assert code == 1, output
    assert '"dependency":"Kafka"' in output
    assert f"could not reach Kafka at {env['KAFKA_BOOTSTRAP_SERVERS']}" in output

"""Each service starts as ``python -m services.<name>``, serves its ops endpoints, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from shared.secrets import SecretBox
from tests.helpers.pipeline import create_topics
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SERVICES = ["webhook_gateway", "sync_worker", "provisioner", "reconciler"]


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> dict[str, object]:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process.returncode is not None:
                break
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        body: dict[str, object] = await response.json()
                        return body
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


@pytest.mark.parametrize("service", SERVICES)
async def test_service_serves_ops_endpoints_and_stops_on_sigterm(
    service: str, stack, migrated_database: str, unique: str
) -> None:
    topics = await create_topics(stack.kafka_bootstrap_servers, f"l{unique}", partitions=1)
    port = free_port()
    env = {
        **os.environ,
        **stack.as_env(),
        "DATABASE_URL": migrated_database,  # a deployment migrates before it starts services
        "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        ready = await _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        # The gateway is ready when Kafka *or* its spool works (docs/adr/0005); the others
        # need PostgreSQL.
        wanted = {"registrations", "durability"} if service == "webhook_gateway" else {"postgres"}
        assert wanted <= set(ready["checks"])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        assert f'autotask_sync_service_up{{service="{service}",version="0.1.0"}} 1.0' in metrics
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = (await process.stdout.read()).decode()
    assert code == 0, output
    assert '"event": "service stopped"' in output
    assert "postgresql://" not in output  # the database URL is never logged


async def test_malformed_variable_stops_startup_with_its_name() -> None:
    env = {**os.environ, "AUTOTASK_SYNC_HTTP_PORT": "not-a-port"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.webhook_gateway",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert "AUTOTASK_SYNC_HTTP_PORT" in err.decode()


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


def _service_env(stack, database_url: str, topics_prefix: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        **stack.as_env(),
        "DATABASE_URL": database_url,
        "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics_prefix,
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
    }


async def test_a_service_started_before_postgres_waits_for_it(
    stack, migrated_database: str, unique: str
) -> None:
    """Pods start in any order: the worker retries PostgreSQL and becomes ready when it is up."""
    from urllib.parse import urlsplit

    topics = await create_topics(stack.kafka_bootstrap_servers, f"w{unique}", partitions=1)
    real = urlsplit(migrated_database)
    late = free_port()
    dsn = migrated_database.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{late}")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sync_worker",
        env=_service_env(stack, dsn, topics.prefix, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    forwarder = None
    early: list[bytes] = []
    try:
        assert process.stdout is not None
        while b"dependency not reachable yet" not in (line := await process.stdout.readline()):
            assert line, "the worker exited instead of waiting for PostgreSQL"
            early.append(line)
        early.append(line)
        assert b'"dependency": "PostgreSQL"' in line
        forwarder = await _forward(late, (real.hostname or "127.0.0.1", real.port or 5432))
        ready = await _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        assert "postgres" in ready["checks"]
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if forwarder is not None:
            forwarder.close()
    output = b"".join(early).decode() + (await process.stdout.read()).decode()
    assert code == 0, output
    assert "postgresql://postgres@" not in output  # the user (and a password) is never logged


async def test_a_service_gives_up_on_kafka_after_the_startup_wait(
    stack, migrated_database: str, unique: str
) -> None:
    env = _service_env(stack, migrated_database, f"k{unique}", free_port())
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    env["AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    env["AUTOTASK_SYNC_STARTUP_WAIT"] = "2s"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.provisioner",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    output = out.decode()
    assert process.returncode == 1, output
    assert '"dependency": "Kafka"' in output
    assert "Unable to bootstrap" in output

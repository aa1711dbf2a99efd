"""The services as real processes (``python -m services.<name>``): the provisioner, and the
webhook gateway its webhooks call, each with its own port and a log kept for failures."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from tests.helpers.cli import ROOT
from tests.services.provisioner.harness import KEY
from tools.deployment import metric_total
from tools.dev_infra.processes import free_port

PASSES = "autotask_sync_provisioner_passes_total"


@dataclass
class Service:
    """A running service: its process, port, and output so far."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    output: bytearray

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base_url}/metrics") as response,
        ):
            text = await response.text()
        return metric_total(text, name, **labels)

    def log(self) -> str:
        return self.output.decode(errors="replace")


@asynccontextmanager
async def service(name: str, env: Mapping[str, str]) -> AsyncIterator[Service]:
    """Start ``services.<name>`` with ``env`` (on top of a clean environment), wait until it is
    ready, and stop it with SIGTERM at the end (its log is printed, for failing tests)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")}
    base.pop("DATABASE_URL", None)
    base.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    full = {
        **base,
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"services.{name}", cwd=ROOT, env=full,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = bytearray()

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            output.extend(chunk)

    reader = asyncio.create_task(collect())
    running = Service(name, process, port, output)
    try:
        await _ready(running)
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader
        print(f"--- {name} ---\n{running.log()[-20_000:]}")  # shown when the test fails


async def stop(running: Service) -> int:
    """SIGTERM and the exit code."""
    running.process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(running.process.wait(), 20)


async def _ready(running: Service, max_wait: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + max_wait
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            if running.process.returncode is not None:
                break
            try:
                async with session.get(f"{running.base_url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{running.name} never became ready:\n{running.log()[-5000:]}")


def provisioner_env(dsn: str, kafka: str, prefix: str, gateway: str) -> dict[str, str]:
    """The provisioner's environment for a test deployment (stored connections only)."""
    return {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
        "AUTOTASK_SYNC_TOPIC_PREFIX": prefix,
        "AUTOTASK_SYNC_PROVISIONER_GROUP_ID": f"provisioner-{prefix}",
        "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL": gateway,
        "AUTOTASK_SYNC_PRODUCTION_MODE": "false",
        "AUTOTASK_SYNC_PROVISIONER_INTERVAL": "1h",
    }


async def passes(running: Service, trigger: str, connection: str = "acme") -> int:
    """Successful passes of ``connection`` with ``trigger``, from the service's ``/metrics``."""
    total = 0.0
    for outcome in ("applied", "in_sync"):
        total += await running.metric(
            PASSES, connection=connection, trigger=trigger, outcome=outcome
        )
    return int(total)

"""Each service starts as ``python -m services.<name>``, serves its ops endpoints, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SERVICES = ["webhook_gateway", "sync_worker", "provisioner"]


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
    service: str, stack, tmp_path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **stack.as_env(),
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
        assert "postgres" in ready["checks"]
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

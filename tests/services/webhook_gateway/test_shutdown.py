"""The gateway's stop, in this process under the shared runner: callouts in flight when it is
asked to stop are answered (and stored) while the loops still run; new connections are refused."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

import aiohttp
import pytest

from services.webhook_gateway.app import start
from services.webhook_gateway.settings import GatewaySettings
from shared.runtime.runner import ServiceRunner
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import Deployment, callout_body, spooled
from tests.services.webhook_gateway.inflight import (
    callouts_waiting_in_the_spool,
    refuses_connections,
)
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"
IN_FLIGHT = 3


async def test_sigterm_answers_callouts_in_flight_before_the_loops_stop(
    deployment: Deployment,
) -> None:
    registration = await deployment.registration(secret=SECRET)
    port, ops_port = free_port(), free_port()
    settings: GatewaySettings = deployment.settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nobody there: callouts spool
        spool_deadline=timedelta(seconds=20),
        http_port=port,
        ops_port=ops_port,
    )
    base_url = f"http://127.0.0.1:{port}"
    url = f"{base_url}/v1/callouts/{registration.registration_id}"
    bodies = [callout_body(7, sequence=n) for n in range(IN_FLIGHT)]
    runner = ServiceRunner("webhook_gateway", grace=settings.shutdown_grace)
    running = asyncio.create_task(runner.run(lambda r: start(r, settings)))
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{ops_port}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, within=timedelta(seconds=20))

            async with callouts_waiting_in_the_spool(
                http, url, bodies, secret=SECRET, dsn=deployment.dsn
            ) as posts:
                os.kill(os.getpid(), signal.SIGTERM)
                await eventually(runner.stop_requested.is_set)
                await eventually(
                    lambda: refuses_connections(f"{base_url}/healthz"),
                    what="the stopping gateway to refuse new connections",
                )
                assert not any(p.done() for p in posts)
                assert not runner.stopping.is_set()  # the loops run while requests finish
            statuses = await asyncio.wait_for(asyncio.gather(*posts), timeout=10)
        code = await asyncio.wait_for(running, timeout=20)
    finally:
        if not running.done():
            runner.request_stop("the test ended")
            await asyncio.wait_for(running, timeout=30)
    assert statuses == [200] * IN_FLIGHT
    assert code == 0
    assert sorted(row.value for row in await spooled(deployment.dsn)) == sorted(bodies)

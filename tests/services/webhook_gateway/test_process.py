"""The gateway as a real process (``python -m services.webhook_gateway``): killed mid-burst it
loses no answered callout, stopped with SIGTERM it finishes what it accepted (callouts still in
flight are answered before it exits, while its ops port still answers), it starts and serves
with Kafka unreachable, and its public port serves the callout routes only."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    Served,
    callout_body,
    gateway_process,
    read_topic,
    signed_headers,
    spooled,
)
from tests.services.webhook_gateway.inflight import (
    callouts_waiting_in_the_spool,
    refuses_connections,
)
from tools.dev_infra.processes import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-key-0123"
BURST = 600
SENDERS = 24


async def _burst(
    process: ServiceProcess, registration_id: str, *, stop_after: int, sig: int
) -> tuple[dict[bytes, int], list[str]]:
    """Send BURST callouts from SENDERS at once; signal the process after ``stop_after``
    answers. Returns status by body (absent: no answer) and the errors seen."""
    url = Served(process.url).callout_url(registration_id)
    bodies = [callout_body(1000 + n % 50, sequence=n) for n in range(BURST)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    answered: dict[bytes, int] = {}
    errors: list[str] = []
    signalled = asyncio.Event()

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            try:
                async with session.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
                    answered[body] = r.status
            except (aiohttp.ClientError, OSError) as exc:
                errors.append(type(exc).__name__)
            if len(answered) >= stop_after and not signalled.is_set():
                signalled.set()
                assert process.process is not None
                process.process.send_signal(sig)

    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    return answered, errors


@pytest.mark.parametrize("path", ["kafka", "spool"])
async def test_sigkill_mid_burst_loses_no_callout_that_got_a_2xx(
    deployment: Deployment, tmp_path: Path, path: str
) -> None:
    registration = await deployment.registration(secret=SECRET)
    settings = deployment.settings()
    if path == "spool":  # no broker at all: the gateway must start, serve and spool
        settings = deployment.settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    process = await gateway_process(settings, tmp_path / "gateway.log").start()
    try:
        answered, _errors = await _burst(
            process, registration.registration_id, stop_after=BURST // 3, sig=signal.SIGKILL
        )
        code = await process.wait(timedelta(seconds=10))
    finally:
        await process.stop(sig=signal.SIGKILL)
    accepted = {body for body, status in answered.items() if status == 200}
    assert code == -signal.SIGKILL
    assert len(accepted) >= BURST // 3
    assert set(answered.values()) <= {200}  # nothing refused before the kill
    records = await read_topic(deployment.bootstrap, deployment.topics.callouts)
    rows = await spooled(deployment.dsn)
    durable = {r.value for r in records} | {row.value for row in rows}
    assert accepted <= durable, f"{len(accepted - durable)} answered callouts were lost"
    if path == "spool":
        assert {row.value for row in rows} >= accepted
        assert records == []


async def test_sigterm_mid_burst_finishes_accepted_requests_and_exits_cleanly(
    deployment: Deployment, tmp_path: Path
) -> None:
    registration = await deployment.registration(secret=SECRET)
    process = await gateway_process(deployment.settings(), tmp_path / "gateway.log").start()
    try:
        answered, errors = await _burst(
            process, registration.registration_id, stop_after=BURST // 3, sig=signal.SIGTERM
        )
        code = await process.wait(timedelta(seconds=30))
    finally:
        await process.stop(sig=signal.SIGKILL)
    accepted = {body for body, status in answered.items() if status == 200}
    assert code == 0, process.log()[-3000:]
    assert set(answered.values()) <= {200}  # refused connections, never a 5xx
    assert set(errors) <= {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}
    records = await read_topic(deployment.bootstrap, deployment.topics.callouts)
    assert accepted <= {r.value for r in records}  # flushed before exit: nothing in the spool
    assert await spooled(deployment.dsn) == []
    events = [line.get("event") for line in process.log_lines()]
    assert "service stopped" in events
    assert not [line for line in process.log_lines() if line.get("level") == "error"]


async def test_sigterm_with_callouts_in_flight_answers_them_and_then_exits_cleanly(
    deployment: Deployment, tmp_path: Path
) -> None:
    registration = await deployment.registration(secret=SECRET)
    settings = deployment.settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    process = await gateway_process(
        settings, tmp_path / "gateway.log", AUTOTASK_SYNC_SPOOL_DEADLINE="20s"
    ).start()
    assert process.process is not None
    url = Served(process.url).callout_url(registration.registration_id)
    bodies = [callout_body(3, sequence=n) for n in range(3)]
    try:
        async with aiohttp.ClientSession() as http:
            async with callouts_waiting_in_the_spool(
                http, url, bodies, secret=SECRET, dsn=deployment.dsn
            ) as posts:
                process.process.send_signal(signal.SIGTERM)
                await eventually(
                    lambda: refuses_connections(url),
                    what="the stopping gateway to refuse new connections",
                )
                assert process.running  # waiting for the callouts in flight
                assert not any(p.done() for p in posts)
                # The ops server outlives the public one's drain: probes and scrapes still work.
                async with http.get(f"{process.ops_url}/healthz") as response:
                    assert response.status == 200
            statuses = await asyncio.wait_for(asyncio.gather(*posts), timeout=10)
        code = await process.wait(timedelta(seconds=20))
    finally:
        await process.stop(sig=signal.SIGKILL)
    assert statuses == [200] * len(bodies), process.log()[-3000:]
    assert code == 0, process.log()[-3000:]
    assert sorted(row.value for row in await spooled(deployment.dsn)) == sorted(bodies)
    events = [line.get("event") for line in process.log_lines()]
    assert "service stopped" in events
    errors = [line for line in process.log_lines() if line.get("level") == "error"]
    assert [e for e in errors if e.get("logger") != "aiokafka"] == []  # its own: no broker there


async def test_the_public_port_serves_only_the_callout_routes_and_names_no_server(
    deployment: Deployment, tmp_path: Path
) -> None:
    registration = await deployment.registration(secret=SECRET)
    process = await gateway_process(deployment.settings(), tmp_path / "gateway.log").start()
    try:
        async with aiohttp.ClientSession() as http:

            async def get(url: str) -> tuple[int, str | None]:
                async with http.get(url) as response:
                    return response.status, response.headers.get("Server")

            for path in ("/metrics", "/healthz", "/readyz"):
                assert await get(process.url + path) == (404, None), path
                assert await get(process.ops_url + path) == (200, None), path
            body = callout_body(5)
            url = Served(process.url).callout_url(registration.registration_id)
            async with http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
                assert (r.status, r.headers.get("Server")) == (200, None)
            async with http.post(url, data=body, headers={"X-Hook-Signature": "sha1=x"}) as r:
                assert (r.status, r.headers.get("Server")) == (401, None)
            async with http.post(Served(process.ops_url).callout_url("x"), data=body) as r:
                assert r.status == 404  # and no callout route on the ops port
    finally:
        await process.stop()

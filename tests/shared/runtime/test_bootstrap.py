"""Where a service serves: its public routes on the public port, the ops endpoints on an ops
port of their own; at stop the public server drains first while the ops server still answers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from shared.errors import ConfigError
from shared.runtime.bootstrap import ops_address, serve_public
from shared.runtime.ops import ReadinessCheck
from shared.runtime.runner import ServiceRunner
from shared.settings import OPS_PORTS, BaseServiceSettings
from tests.helpers.waiting import eventually
from tools.dev_infra.processes import free_port

NO_CHECKS: Mapping[str, ReadinessCheck] = {}


def test_every_service_has_its_own_default_ops_port() -> None:
    settings = BaseServiceSettings(ops_port=None)  # whatever the environment says
    ports = [ops_address(settings, service)[1] for service in OPS_PORTS]
    assert len(set(ports)) == len(ports) == 4
    assert BaseServiceSettings.model_fields["http_port"].default not in ports  # the gateway's


def test_the_ops_address_follows_the_settings() -> None:
    settings = BaseServiceSettings(http_host="10.0.0.5", ops_port=7000)
    assert ops_address(settings, "sync_worker") == ("10.0.0.5", 7000)
    settings = BaseServiceSettings(ops_host="127.0.0.1", ops_port=None)
    assert ops_address(settings, "reconciler") == ("127.0.0.1", OPS_PORTS["reconciler"])
    with pytest.raises(ConfigError, match="AUTOTASK_SYNC_OPS_PORT"):
        ops_address(BaseServiceSettings(ops_port=None), "something-else")


async def test_public_routes_and_ops_endpoints_answer_on_their_own_ports() -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/v1/hello", hello)
    public, ops = free_port(), free_port()
    settings = BaseServiceSettings(http_host="127.0.0.1", http_port=public, ops_port=ops)
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start(r: ServiceRunner) -> None:
        await serve_public(r, settings, app, checks=NO_CHECKS)

    async with runner.running(start), aiohttp.ClientSession() as http:

        async def status(port: int, path: str) -> int:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                assert "Server" not in response.headers
                return response.status

        assert await status(public, "/v1/hello") == 200
        for path in ("/metrics", "/healthz", "/readyz"):
            assert await status(public, path) == 404, path
            assert await status(ops, path) == 200, path
        assert await status(ops, "/v1/hello") == 404


async def test_the_ops_port_must_differ_from_the_public_one() -> None:
    port = free_port()
    settings = BaseServiceSettings(http_host="127.0.0.1", http_port=port, ops_port=port)
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start(r: ServiceRunner) -> None:
        await serve_public(r, settings, web.Application(), checks=NO_CHECKS)

    with pytest.raises(ConfigError, match="must not share"):
        async with runner.running(start):
            pass


async def test_at_stop_the_public_server_drains_while_the_ops_server_still_answers() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/v1/slow", slow)
    public, ops = free_port(), free_port()
    settings = BaseServiceSettings(http_host="127.0.0.1", http_port=public, ops_port=ops)
    runner = ServiceRunner("test", grace=timedelta(seconds=10))
    stop = asyncio.Event()

    async def start(r: ServiceRunner) -> None:
        await serve_public(r, settings, app, checks=NO_CHECKS)

    async def life() -> None:
        async with runner.running(start):
            await stop.wait()

    living = asyncio.create_task(life())
    async with aiohttp.ClientSession() as http:

        async def get(port: int, path: str) -> tuple[int, str]:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                return response.status, await response.text()

        await eventually(lambda: get(ops, "/healthz"))
        in_flight = asyncio.create_task(get(public, "/v1/slow"))
        await eventually(entered.is_set)
        stop.set()  # the drain begins: the public server stops accepting, finishes in flight

        async def public_refused() -> bool:
            async with aiohttp.ClientSession() as fresh:
                try:
                    async with fresh.get(f"http://127.0.0.1:{public}/v1/slow"):
                        return False
                except aiohttp.ClientConnectionError:
                    return True

        await eventually(public_refused)
        assert not in_flight.done()
        assert (await get(ops, "/healthz"))[0] == 200
        assert (await get(ops, "/metrics"))[0] == 200
        release.set()
        assert await asyncio.wait_for(in_flight, timeout=10) == (200, "late")
    await asyncio.wait_for(living, timeout=15)

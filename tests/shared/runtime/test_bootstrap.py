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
from shared.runtime.bootstrap import main, ops_address, serve_ops, serve_public
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


@pytest.mark.parametrize("taken", ["ops", "public"])
async def test_a_port_in_use_stops_the_start_with_the_setting_to_change(taken: str) -> None:
    """The second service started on a host with the same port says which setting to change
    (services/*/__main__ logs it as one line) instead of a traceback."""
    public, ops = free_port(), free_port()
    settings = BaseServiceSettings(http_host="127.0.0.1", http_port=public, ops_port=ops)
    squatter = await asyncio.start_server(
        lambda _r, _w: None, "127.0.0.1", ops if taken == "ops" else public
    )
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start(r: ServiceRunner) -> None:
        await serve_public(r, settings, web.Application(), checks=NO_CHECKS)

    try:
        with pytest.raises(ConfigError) as info:
            async with runner.running(start):
                pass
    finally:
        squatter.close()
        await squatter.wait_closed()
    variable, port = ("OPS_PORT", ops) if taken == "ops" else ("HTTP_PORT", public)
    assert str(info.value) == (
        f"port {port} is already in use on 127.0.0.1 (another service, or this one twice?): "
        f"set AUTOTASK_SYNC_{variable} to a free port (docs/configuration.md, Ports)"
    )


async def test_an_address_not_of_this_host_names_the_host_setting() -> None:
    settings = BaseServiceSettings(ops_host="192.0.2.1", ops_port=free_port())  # TEST-NET-1
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start(r: ServiceRunner) -> None:
        await serve_ops(r, settings, checks=NO_CHECKS)

    with pytest.raises(ConfigError) as info:
        async with runner.running(start):
            pass
    assert str(info.value).endswith("check AUTOTASK_SYNC_OPS_HOST and AUTOTASK_SYNC_OPS_PORT")


def test_a_malformed_database_url_stops_the_service_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not waited for like an unreachable one (STARTUP_WAIT): exit status 2, the variable
    named, the password not shown."""
    monkeypatch.delenv("AUTOTASK_SYNC_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://sync:kept-secret@db:54x2/sync")

    async def start(_runner: ServiceRunner, _settings: BaseServiceSettings) -> None:
        raise AssertionError("the service started")

    assert main("sync_worker", BaseServiceSettings, start, about=None, argv=[]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sync_worker: DATABASE_URL has a port that is not a number")
    assert "kept-secret" not in error


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

"""The ops endpoints: readiness checks run together, each within its own timeout. The server
every service runs (``serve``): no banner, a deadline for request headers, bodies as sent."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web

from shared.runtime.ops import CHECK_TIMEOUT, ReadinessCheck, add_ops_routes, serve


def _sleeping(seconds: float) -> ReadinessCheck:
    async def check() -> None:
        await asyncio.sleep(seconds)

    return check


async def _hanging() -> None:
    await asyncio.Event().wait()


async def _broken() -> None:
    raise ValueError("not today")


async def _readyz(checks: Mapping[str, ReadinessCheck]) -> tuple[int, Any, float]:
    """Status, body and seconds taken by ``GET /readyz`` with ``checks``."""
    app = web.Application()
    add_ops_routes(app, checks)
    async with serve(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        port = server.addresses[0][1]
        began = time.monotonic()
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status, await response.json(), time.monotonic() - began


async def test_slow_checks_run_together_not_one_after_another() -> None:
    # Each takes 1.5 s: together about 1.5 s, one after another 4.5 s.
    checks = {name: _sleeping(1.5) for name in ("postgres", "kafka", "connections")}
    status, body, took = await _readyz(checks)
    assert (status, body) == (200, {"status": "ready", "checks": sorted(checks)})
    assert took < 3, took


async def test_each_check_keeps_its_own_timeout_and_every_failure_is_listed() -> None:
    checks = {
        "postgres": _hanging,
        "kafka": _sleeping(1.5),
        "connections": _broken,
        "registrations": _sleeping(0),
    }
    status, body, took = await _readyz(checks)
    assert status == 503
    assert body == {
        "status": "unready",
        "failing": {
            "postgres": f"no answer within {CHECK_TIMEOUT.total_seconds():g} s",
            "connections": "ValueError: not today",
        },
    }
    # The hanging check ends at its timeout, and the slow one passes meanwhile.
    assert took < CHECK_TIMEOUT.total_seconds() + 1.5, took


# --- the server's hardening --------------------------------------------------------------------


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


def _echo_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/echo", _echo)
    add_ops_routes(app, {})
    return app


async def test_no_response_names_the_server_software() -> None:
    async with serve(_echo_app(), "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.addresses[0][1]}"
        answers = [
            await http.get(f"{base}/healthz"),
            await http.get(f"{base}/metrics"),
            await http.get(f"{base}/no-such-route"),  # 404
            await http.get(f"{base}/echo"),  # 405
            await http.post(f"{base}/echo", data=b"x"),
        ]
        for response in answers:
            response.release()
    assert [r.status for r in answers] == [200, 200, 404, 405, 200]
    assert [r.headers.get("Server") for r in answers] == [None] * len(answers)


async def test_a_client_dribbling_its_request_headers_is_disconnected_at_the_deadline() -> None:
    deadline = timedelta(seconds=1)
    async with serve(_echo_app(), "127.0.0.1", 0, header_deadline=deadline) as server:
        port = server.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            began = time.monotonic()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            await writer.drain()
            # The server closes the connection: EOF, or a reset, without an answer.
            try:
                left = await asyncio.wait_for(reader.read(), timeout=10)
            except ConnectionResetError:
                left = b""
            took = time.monotonic() - began
        finally:
            writer.close()
        assert left == b""
        assert took < deadline.total_seconds() + 3, took
        # A complete request is answered as usual.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200


async def test_a_slow_handler_is_not_cut_by_the_header_deadline() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/slow", slow)
    deadline = timedelta(seconds=0.5)
    async with (
        serve(app, "127.0.0.1", 0, header_deadline=deadline) as server,
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{server.addresses[0][1]}/slow"
        async with http.get(url) as response:
            assert (response.status, await response.text()) == (200, "done")


async def test_request_bodies_are_taken_as_sent_never_decompressed() -> None:
    body = gzip.compress(b'{"Id": 1}')
    async with serve(_echo_app(), "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.addresses[0][1]}/echo"
        headers = {"Content-Encoding": "gzip"}
        async with http.post(url, data=body, headers=headers) as response:
            assert await response.read() == body


async def test_an_address_not_admitted_is_reset_before_its_request_is_read() -> None:
    """``admit``: a refused address costs an accept and a reset; the others are served."""
    seen: list[str] = []

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    def admit(address: str) -> bool:
        seen.append(address)
        return address != "127.0.0.2"

    app = web.Application()
    app.router.add_get("/", hello)
    async with serve(app, "127.0.0.1", 0, admit=admit) as server:
        port = server.addresses[0][1]

        async def get(source: str) -> str:
            connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
            async with aiohttp.ClientSession(connector=connector) as http:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/") as response:
                        return await response.text()
                except aiohttp.ClientError as exc:
                    return type(exc).__name__

        served, refused = await get("127.0.0.1"), await get("127.0.0.2")
    assert served == "hello"
    assert refused in ("ServerDisconnectedError", "ClientOSError"), refused
    assert seen[0] == "127.0.0.1"
    assert set(seen[1:]) == {"127.0.0.2"}  # (the client tries a GET again once)

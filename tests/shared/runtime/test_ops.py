"""The ops endpoints: readiness checks run together, each within its own timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
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
        "failing": {"postgres": "TimeoutError", "connections": "ValueError"},
    }
    # The hanging check ends at its timeout, and the slow one passes meanwhile.
    assert took < CHECK_TIMEOUT.total_seconds() + 1.5, took

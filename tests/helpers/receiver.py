"""A real HTTP server standing in for a webhook endpoint: records every request it gets, and
how many it was answering at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from tests.helpers.waiting import describe, eventually


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server standing in for a webhook endpoint."""

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    status_for: Callable[[Received], int] = lambda _r: 200
    delay_for: Callable[[Received], float] = lambda _r: 0.0
    """Seconds to hold the answer to a request."""
    in_flight: int = 0
    peak_in_flight: int = 0
    """Most requests being answered at the same time."""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def at(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/{name}"]

    async def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        *,
        within: timedelta = timedelta(seconds=5),
    ) -> None:
        """Until ``predicate(requests)`` holds; the test fails after ``within``, showing the
        paths received so far."""

        def satisfied() -> bool:
            assert predicate(self.requests), f"received {[r.path for r in self.requests]}"
            return True

        await eventually(
            satisfied,
            within=within,
            interval=timedelta(milliseconds=5),
            what=f"requests to the receiver such that {describe(predicate)}",
        )


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    """Serve a :class:`Receiver` on a free loopback port until the context exits."""
    state = Receiver()

    async def handle(request: web.Request) -> web.Response:
        item = Received(request.path, dict(request.headers), await request.read())
        state.requests.append(item)
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            delay = state.delay_for(item)
            if delay:
                await asyncio.sleep(delay)
            return web.Response(status=state.status_for(item))
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_route("POST", "/{name:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()

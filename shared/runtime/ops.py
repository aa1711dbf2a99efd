"""The operations endpoints every service serves: liveness, readiness and metrics.

- ``GET /healthz``: the process is alive and its loop answers (no dependency checks: a database
  outage must not make Kubernetes restart every pod);
- ``GET /readyz``: every readiness check passes (PostgreSQL, Kafka...); 503 with the failing
  checks otherwise, so the pod leaves the Service's endpoints until it recovers. The checks run
  concurrently, each within :data:`CHECK_TIMEOUT`;
- ``GET /metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import web

from shared.metrics import metrics_handler

ReadinessCheck = Callable[[], Awaitable[None]]
CHECK_TIMEOUT = timedelta(seconds=2)
"""A readiness check that takes longer counts as failing."""
SHUTDOWN_TIMEOUT = timedelta(seconds=5)
"""How long open connections may finish when the server stops."""


def add_ops_routes(app: web.Application, checks: Mapping[str, ReadinessCheck]) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to ``app``."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        # Together: a slow dependency must not eat the time another one's check has.
        outcomes = await asyncio.gather(*(_outcome(check) for check in checks.values()))
        failures = {
            name: failure for name, failure in zip(checks, outcomes, strict=True) if failure
        }
        if failures:
            return web.json_response({"status": "unready", "failing": failures}, status=503)
        return web.json_response({"status": "ready", "checks": sorted(checks)})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())


async def _outcome(check: ReadinessCheck) -> str | None:
    """None when ``check`` passes within :data:`CHECK_TIMEOUT`, else the name of its error."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT.total_seconds())
    except Exception as exc:
        return type(exc).__name__
    return None


@asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[web.AppRunner]:
    """Serve ``app`` until the context exits; the bound port is in ``runner.addresses``."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT.total_seconds(),
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()

"""The operations endpoints every service serves: liveness, readiness and metrics.

- ``GET /healthz``: the process is alive: its loop answers and no part of it is stuck. A part
  stalled past its liveness bound (:mod:`shared.runtime.progress`) fails it, but only while the
  readiness checks of the dependencies pass: a database or Kafka outage must not make Kubernetes
  restart every pod, a process stuck while everything around it answers must be replaced;
- ``GET /readyz``: every readiness check passes (PostgreSQL, Kafka, and each part that has work
  making progress); 503 otherwise, so the pod leaves the Service's endpoints until it recovers.
  The checks run concurrently, each within :data:`CHECK_TIMEOUT`;

Both answer JSON with each failing check's reason (``{"status": ..., "failing": {name: reason}}``)
and set ``autotask_sync_probe_failing{probe,check}``;
- ``GET /metrics``: Prometheus text format.

They are served on a port of their own (:func:`shared.runtime.bootstrap.serve_ops`), never on
a public one: ``/metrics`` names tenants and counts bad signatures. :func:`serve` is every HTTP
server of the services, public or not, hardened the same way: no ``Server`` banner, a deadline
for a request's headers, and request bodies taken as sent (never decompressed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import hdrs, web, web_response

from shared.metrics import PROBE_FAILING, metrics_handler

ReadinessCheck = Callable[[], Awaitable[None]]
CHECK_TIMEOUT = timedelta(seconds=2)
"""A readiness check that takes longer counts as failing."""
SHUTDOWN_TIMEOUT = timedelta(seconds=5)
"""How long open connections may finish when the server stops."""
HEADER_DEADLINE = timedelta(seconds=10)
"""How long a client may take to send a request's headers, counted from its connection (or
from the previous answer on a kept-alive connection); then the connection is closed. Also the
longest a kept-alive connection stays open idle."""


def add_ops_routes(
    app: web.Application,
    checks: Mapping[str, ReadinessCheck],
    *,
    liveness: Mapping[str, ReadinessCheck] | None = None,
) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to ``app``.

    ``checks``: the readiness checks (dependencies and progress); ``liveness``: checks that fail
    when a part of the process is stuck (:meth:`shared.runtime.progress.Progress.liveness`).
    A liveness failure counts only while every readiness check that is not itself a progress
    check (``checks`` minus the names in ``liveness``) passes."""
    live_checks = dict(liveness or {})
    dependencies = {name: check for name, check in checks.items() if name not in live_checks}

    async def healthz(_request: web.Request) -> web.Response:
        stuck = await _failures(live_checks)
        if stuck and await _failures(dependencies):
            stuck = {}  # an outage explains the stall, and a restart would not cure it
        _export("liveness", live_checks, stuck)
        if stuck:
            return web.json_response({"status": "stuck", "failing": stuck}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        failures = await _failures(checks)
        _export("readiness", checks, failures)
        if failures:
            return web.json_response({"status": "unready", "failing": failures}, status=503)
        return web.json_response({"status": "ready", "checks": sorted(checks)})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())


async def _failures(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    """Run ``checks`` together (a slow one must not eat another's time); the failing ones with
    their reasons."""
    outcomes = await asyncio.gather(*(_outcome(check) for check in checks.values()))
    return {name: failure for name, failure in zip(checks, outcomes, strict=True) if failure}


def _export(probe: str, checks: Mapping[str, ReadinessCheck], failures: Mapping[str, str]) -> None:
    """``probe_failing{probe,check}``: 1 for each failing check, 0 for the others."""
    for name in checks:
        PROBE_FAILING.labels(probe, name).set(1 if name in failures else 0)


REASON_LIMIT = 300
"""A failing check's reason is cut to this many characters in the probe's answer."""


async def _outcome(check: ReadinessCheck) -> str | None:
    """None when ``check`` passes within :data:`CHECK_TIMEOUT`, else why it failed."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT.total_seconds())
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT.total_seconds():g} s"
    except Exception as exc:
        detail = str(exc)
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return reason[:REASON_LIMIT]
    return None


Admit = Callable[[str], bool]
"""Whether a new connection from this address may be served (False: it is closed at once)."""


@asynccontextmanager
async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    header_deadline: timedelta = HEADER_DEADLINE,
    admit: Admit | None = None,
) -> AsyncIterator[web.AppRunner]:
    """Serve ``app`` until the context exits; the bound port is in ``runner.addresses``.

    Hardened for a public endpoint:

    - no ``Server`` header (aiohttp's names the Python and aiohttp versions) on any response
      the application answers, its 404s and 405s included;
    - a connection whose request headers are not complete ``header_deadline`` after it opened
      (or after the previous answer) is closed: a client dribbling its headers holds a
      connection for that long at most. aiohttp's keep-alive timer does this (it starts at
      connect and closes a connection still waiting for a complete request; a request being
      handled, its body included, is not affected);
    - request bodies are never decompressed: a callout's signature covers the bytes as sent,
      and inflating a body is work anyone could make the server do;
    - a request answered before its body was read (refused, too large, too slow) has its
      connection closed at once, rather than the rest of its body read and discarded for up to
      aiohttp's default ten seconds of "lingering";
    - with ``admit``, a connection from an address it refuses is reset as soon as it is accepted,
      before anything is read or parsed: a client the application has already told off (too
      many bad requests, too many slow ones) costs an accept and a close, not a request.
    """
    if _without_server_header not in app.on_response_prepare:  # served before: frozen, has it
        app.on_response_prepare.append(_without_server_header)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT.total_seconds(),
        keepalive_timeout=header_deadline.total_seconds(),
        auto_decompress=False,
        lingering_time=0,
    )
    await runner.setup()
    # A deeper accept queue than aiohttp's 128 (_BACKLOG): a burst of connections (a flood,
    # Autotask catching up) waits to be accepted instead of being reset by the kernel.
    site = (
        web.TCPSite(runner, host, port, backlog=_BACKLOG)
        if admit is None
        else _AdmittingSite(runner, host, port, admit=admit)
    )
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()


_BACKLOG = 1024


class _AdmittingSite(web.TCPSite):
    """A TCP site whose new connections first pass ``admit`` (:class:`_Gate`)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, admit: Admit) -> None:
        super().__init__(runner, host, port, backlog=_BACKLOG)
        self._admit = admit

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner, as TCPSite does
        handlers = self._runner.server
        assert handlers is not None
        admit = self._admit
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Gate(handlers, admit), self._host, self._port, backlog=_BACKLOG
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


class _Gate(asyncio.Protocol):
    """One connection: reset at once when its address is not admitted, else handed to aiohttp's
    request handler (created only then), which sees every event as if it were the protocol."""

    __slots__ = ("_admit", "_handler", "_handlers")

    def __init__(self, handlers: Callable[[], asyncio.Protocol], admit: Admit) -> None:
        self._handlers = handlers
        self._admit = admit
        self._handler: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self._admit(address):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._handler = self._handlers()
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handler is not None:
            self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()


# aiohttp answers a request it cannot parse (400) without the application's signals; the banner
# it would put there is this constant, so it is emptied once for every server of the process.
setattr(web_response, "SERVER_SOFTWARE", "")  # noqa: B010 - not an exported name


async def _without_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp adds its banner before this signal and never after it.
    response.headers.popall(hdrs.SERVER, None)

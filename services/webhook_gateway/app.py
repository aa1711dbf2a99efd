"""Wires the webhook gateway's parts together; the parts themselves hold no wiring.

Start order: the secret box (no keys, no start), the PostgreSQL pool, the registrations (loaded
into memory, then kept current), the Kafka producer (started in the background: the gateway
serves through the spool while Kafka is away), durability, and the background loops (producer
connection, spool drainer, spool count, last-callout bookkeeping, deactivation notices). Then
the HTTP server.

Shutdown (SIGTERM) runs it backwards: the HTTP server stops accepting and lets in-flight
requests finish (each is bounded by the produce and spool deadlines), then the loops stop (the
bookkeeping flushes, the notices queued so far are handled), the producer flushes, and the
registrations and the pool close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from services.webhook_gateway import handlers
from services.webhook_gateway.bookkeeping import LastCallouts
from services.webhook_gateway.deactivation import DeactivationNotices
from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.drainer import Drainer, SpoolWatcher
from services.webhook_gateway.durability import Durability, pool_spool_writer
from services.webhook_gateway.handlers import Admission, CalloutLimits, RegistrationLookup
from services.webhook_gateway.producer import ProducerLink
from services.webhook_gateway.settings import GatewaySettings
from shared.db import create_pool
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.metrics import GATEWAY_REGISTRATIONS
from shared.registrations import RegistrationState, RegistrationStore
from shared.runtime.bootstrap import serve_ops
from shared.runtime.ops import ReadinessCheck
from shared.runtime.runner import ServiceRunner
from shared.secrets import SecretBox

log = get_logger(__name__)

# The keys the routes read (typed; defined next to the handlers that use them).
REGISTRATIONS = handlers.REGISTRATIONS
DURABILITY = handlers.DURABILITY
RECENT = handlers.RECENT
LAST_CALLOUTS = handlers.LAST_CALLOUTS
DEACTIVATIONS = handlers.DEACTIVATIONS
LIMITS = handlers.LIMITS
ADMISSION = handlers.ADMISSION

CALLOUT_PATH = "/v1/callouts/{registration_id}"
DEACTIVATION_PATH = "/v1/deactivations/{registration_id}"
_LOOP_STOP_BUDGET = timedelta(seconds=5)
_CHECK_BUDGET = 0.9  # seconds per dependency; two fit in the ops route's 2 s


def init_app(
    *,
    registrations: RegistrationLookup,
    durability: Durability,
    recent: RecentCallouts,
    last_callouts: LastCallouts,
    deactivations: DeactivationNotices,
    limits: CalloutLimits,
    max_concurrent_callouts: int,
) -> web.Application:
    """The gateway's HTTP application (the ops routes are added by ``serve_ops``)."""
    # The body cap is aiohttp's too, so it stops reading an oversized body early.
    app = web.Application(client_max_size=limits.max_body_size)
    app[REGISTRATIONS] = registrations
    app[DURABILITY] = durability
    app[RECENT] = recent
    app[LAST_CALLOUTS] = last_callouts
    app[DEACTIVATIONS] = deactivations
    app[LIMITS] = limits
    app[ADMISSION] = Admission(max_concurrent_callouts)
    app.router.add_post(CALLOUT_PATH, handlers.callout)
    app.router.add_post(DEACTIVATION_PATH, handlers.deactivation)
    return app


@dataclass
class Gateway:
    """Every part of a running gateway (tests reach in; production only serves ``app``)."""

    app: web.Application
    settings: GatewaySettings
    pool: asyncpg.Pool
    registrations: RegistrationStore
    link: ProducerLink
    durability: Durability
    drainer: Drainer
    watcher: SpoolWatcher
    last_callouts: LastCallouts
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)


class _Loops:
    """The gateway's background loops: started together, stopped together (after HTTP)."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_failure = on_failure

    def spawn(
        self, name: str, coroutine: Coroutine[Any, Any, None], *, may_finish: bool = False
    ) -> None:
        """Run ``coroutine`` until :meth:`close`; one that fails (or, unless ``may_finish``,
        returns) before that stops the service."""
        task = asyncio.create_task(coroutine, name=f"gateway-{name}")
        task.add_done_callback(lambda t: self._done(t, may_finish=may_finish))
        self._tasks.append(task)

    def _done(self, task: asyncio.Task[None], *, may_finish: bool) -> None:
        if task.cancelled() or self.stop.is_set():
            return
        error = task.exception()
        if error is None and may_finish:
            return
        log.error("gateway loop ended unexpectedly", task=task.get_name(), exc_info=error)
        self._on_failure(f"loop {task.get_name()} ended")

    async def close(self, budget: timedelta = _LOOP_STOP_BUDGET) -> None:
        self.stop.set()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=budget.total_seconds())
            for task in late:
                log.warning("cancelling a gateway loop after the stop budget", task=task.get_name())
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)
        for task in self._tasks:  # retrieve outcomes so none is reported as never retrieved
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("gateway loop failed", task=task.get_name(), exc_info=task.exception())


@asynccontextmanager
async def open_gateway(
    settings: GatewaySettings,
    *,
    name: str = "webhook_gateway",
    on_failure: Callable[[str], None] = lambda _reason: None,
) -> AsyncIterator[Gateway]:
    """Open every part in order; close them in reverse when the context exits."""
    box = SecretBox.from_setting(settings.secret_keys)
    topics = Topics(prefix=settings.topic_prefix)
    database_url = settings.database_url.get_secret_value()
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max
        )
        stack.push_async_callback(_close_pool, pool)
        registrations = RegistrationStore(
            database_url=database_url,
            box=box,
            reload_interval=settings.registrations_reload_interval,
        )
        await stack.enter_async_context(registrations)
        link = ProducerLink(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.kafka_client_id}-{name}",
            retry_interval=settings.kafka_retry_interval,
            warm_topics=(topics.callouts, topics.callouts_dlq, topics.control),
        )
        stack.push_async_callback(link.close)
        spooled = asyncio.Event()  # set on each spool write: the drainer looks at once
        durability = Durability(
            link=link,
            write_spool=pool_spool_writer(pool, deadline=settings.spool_deadline),
            produce_deadline=settings.produce_deadline,
            spooled=spooled,
        )
        stack.callback(durability.close)
        drainer = Drainer(
            dsn=database_url,
            link=link,
            durability=durability,
            batch=settings.spool_drain_batch,
            interval=settings.spool_drain_interval,
            wake=spooled,
        )
        watcher = SpoolWatcher(
            pool=pool, durability=durability, interval=settings.spool_check_interval
        )
        await watcher.check()  # rows left by an earlier run: spool behind them from the start
        last_callouts = LastCallouts(pool=pool, interval=settings.last_callout_flush_interval)
        deactivations = DeactivationNotices(
            pool=pool,
            durability=durability,
            topics=topics,
            interval=settings.deactivation_interval,
        )
        loops = _Loops(on_failure)
        stack.push_async_callback(loops.close)
        loops.spawn("kafka", link.run(loops.stop), may_finish=True)
        loops.spawn("drainer", drainer.run(loops.stop))
        loops.spawn("spool-count", watcher.run(loops.stop))
        loops.spawn("last-callouts", last_callouts.run(loops.stop))
        loops.spawn("deactivations", deactivations.run(loops.stop))
        loops.spawn("registrations-gauge", _count_registrations(registrations, loops.stop))
        app = init_app(
            registrations=registrations,
            durability=durability,
            recent=RecentCallouts(window=settings.dedup_window, capacity=settings.dedup_size),
            last_callouts=last_callouts,
            deactivations=deactivations,
            limits=CalloutLimits(max_body_size=settings.max_body_size, topics=topics),
            max_concurrent_callouts=settings.max_concurrent_callouts,
        )
        yield Gateway(
            app=app,
            settings=settings,
            pool=pool,
            registrations=registrations,
            link=link,
            durability=durability,
            drainer=drainer,
            watcher=watcher,
            last_callouts=last_callouts,
            checks={
                "registrations": _registrations_check(registrations),
                "durability": _durability_check(link, pool),
            },
        )


class _MalformedRequests(logging.Filter):
    """aiohttp logs each unparsable request (answered 400) at ERROR with a traceback; on a
    public endpoint anyone can send those, so they become one WARNING line. Errors raised while
    handling a well-formed request keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"malformed request answered {error.code}: {error.message!r}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def _quiet_malformed_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in server_log.filters):
        server_log.addFilter(_MalformedRequests())


async def start(runner: ServiceRunner, settings: GatewaySettings) -> None:
    """Open the parts in order and serve the callout routes with the ops endpoints."""
    _quiet_malformed_requests()
    gateway = await runner.enter(
        open_gateway(settings, name=runner.name, on_failure=runner.request_stop)
    )
    await serve_ops(runner, settings, checks=gateway.checks, app=gateway.app)


def _registrations_check(registrations: RegistrationStore) -> ReadinessCheck:
    async def check() -> None:
        if not registrations.loaded:
            raise RuntimeError("webhook registrations not loaded yet")

    return check


def _durability_check(link: ProducerLink, pool: asyncpg.Pool) -> ReadinessCheck:
    """Ready while Kafka or the spool can take callouts (either one is enough)."""

    async def check() -> None:
        if link.connected:
            try:
                await asyncio.wait_for(link.ping(), _CHECK_BUDGET)
                return
            except Exception as exc:  # any failure means "try the spool"
                log.debug("readiness: Kafka did not answer", error=repr(exc))
        async with asyncio.timeout(_CHECK_BUDGET):
            async with pool.acquire() as db:
                await db.fetchval("SELECT 1 FROM callout_spool LIMIT 1")

    return check


async def _close_pool(pool: asyncpg.Pool, budget: timedelta = _LOOP_STOP_BUDGET) -> None:
    """Close gracefully, but within the shutdown budget: a connection PostgreSQL dropped
    half-way must not hold the exit up (asyncpg then terminates the rest)."""
    try:
        await asyncio.wait_for(pool.close(), budget.total_seconds())
    except TimeoutError:
        log.warning("PostgreSQL pool did not close in time; terminated its connections")


async def _count_registrations(registrations: RegistrationStore, stop: asyncio.Event) -> None:
    while not stop.is_set():
        counts = dict.fromkeys(RegistrationState, 0)
        for registration in registrations.all():
            counts[registration.state] += 1
        for state, count in counts.items():
            GATEWAY_REGISTRATIONS.labels(state.value).set(count)
        try:
            await asyncio.wait_for(stop.wait(), 15)
        except TimeoutError:
            continue


__all__ = ["Gateway", "init_app", "open_gateway", "start"]

"""Wires the webhook gateway's parts together; the parts themselves hold no wiring.

The gateway lives the life every service does (:mod:`shared.runtime.runner`). Start order: the
secret box (no keys, no start), the PostgreSQL pool, the registrations (loaded into memory, then
kept current), the Kafka producer (started in the background: the gateway serves through the
spool while Kafka is away), durability, and the background loops (producer connection, spool
drainer, spool count, last-callout bookkeeping, deactivation notices). Then the HTTP server, an
intake of the runner.

The probes see two parts that must keep moving (:mod:`shared.runtime.progress`): the spool
(rows waiting while this replica holds the drainer lock, and no round moving any) and the
producer (sends that are never acknowledged). Either stalled past ``STALL_UNREADY_AFTER`` while
Kafka answers fails ``/readyz`` with the reason; past ``STALL_UNHEALTHY_AFTER`` it fails
``/healthz`` too. While Kafka is away neither does: the replica takes callouts into the spool,
which is what a gateway is for then (a gateway leaving the Service during an outage would make
the ingress refuse Autotask's callouts, and Autotask deactivates webhooks whose callouts fail);
the outage shows in the spool's size and age and their alerts.

Shutdown (SIGTERM) runs it backwards: the HTTP server stops accepting and lets in-flight
requests finish (each is bounded by the produce and spool deadlines) while the loops still run,
then the loops stop (the bookkeeping flushes, the notices queued so far are handled), the
producer flushes, and the registrations and the pool close.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from services.webhook_gateway import handlers
from services.webhook_gateway.admission import Admission
from services.webhook_gateway.bookkeeping import LastCallouts
from services.webhook_gateway.deactivation import DeactivationNotices
from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.drainer import Drainer, SpoolWatcher
from services.webhook_gateway.durability import Durability, pool_spool_writer
from services.webhook_gateway.handlers import CalloutLimits, RegistrationLookup
from services.webhook_gateway.producer import ProducerLink
from services.webhook_gateway.settings import GatewaySettings
from shared.db import Pool, database_dsn, session
from shared.kafka import client_config
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.metrics import GATEWAY_REGISTRATIONS
from shared.registrations import RegistrationState, RegistrationStore
from shared.runtime.bootstrap import open_base_resources, serve_public, watch_progress
from shared.runtime.ops import ReadinessCheck
from shared.runtime.progress import Progress
from shared.runtime.runner import ServiceRunner, aiter_until
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
LOOP_STOP_BUDGET = timedelta(seconds=5)
"""How long each loop may take to finish once told to stop (HTTP has drained by then)."""
_CHECK_BUDGET = 0.9  # seconds per dependency; two fit in the ops route's 2 s
_REGISTRATIONS_GAUGE_INTERVAL = timedelta(seconds=15)


def init_app(
    *,
    registrations: RegistrationLookup,
    durability: Durability,
    recent: RecentCallouts,
    last_callouts: LastCallouts,
    deactivations: DeactivationNotices,
    limits: CalloutLimits,
    admission: Admission,
) -> web.Application:
    """The gateway's HTTP application: the public routes only (the ops routes are served on a
    port of their own by ``serve_public``)."""
    # The body cap is aiohttp's too, so it stops reading an oversized body early.
    app = web.Application(client_max_size=limits.max_body_size)
    app[REGISTRATIONS] = registrations
    app[DURABILITY] = durability
    app[RECENT] = recent
    app[LAST_CALLOUTS] = last_callouts
    app[DEACTIVATIONS] = deactivations
    app[LIMITS] = limits
    app[ADMISSION] = admission
    app.router.add_post(CALLOUT_PATH, handlers.callout)
    app.router.add_post(DEACTIVATION_PATH, handlers.deactivation)
    return app


@dataclass
class Gateway:
    """Every part of a running gateway (tests reach in; production only serves ``app``)."""

    app: web.Application
    settings: GatewaySettings
    pool: Pool
    registrations: RegistrationStore
    link: ProducerLink
    durability: Durability
    drainer: Drainer
    watcher: SpoolWatcher
    last_callouts: LastCallouts
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    """The dependencies' readiness checks."""
    progress: list[Progress] = field(default_factory=list)
    """The parts that must keep moving (their readiness and liveness join the probes)."""


async def open_parts(runner: ServiceRunner, settings: GatewaySettings) -> Gateway:
    """Open every part on ``runner`` in order and spawn the loops; the runner stops the loops
    and closes the parts in reverse order. The HTTP server is left to the caller."""
    box = SecretBox.from_setting(settings.secret_keys)
    topics = Topics(prefix=settings.topic_prefix)
    database_url = database_dsn(settings)
    pool = (await open_base_resources(runner, settings, kafka=False)).pool
    registrations = await runner.enter(
        RegistrationStore(
            database_url=database_url,
            box=box,
            reload_interval=settings.registrations_reload_interval,
        )
    )
    link = ProducerLink(
        bootstrap_servers=client_config(settings),
        client_id=f"{settings.kafka_client_id}-{runner.name}",
        retry_interval=settings.kafka_retry_interval,
        warm_topics=(topics.callouts, topics.callouts_dlq, topics.control),
        max_request_size=settings.kafka_max_request_size,
    )
    runner.on_close(link.close)
    spooled = asyncio.Event()  # set on each spool write: the drainer looks at once
    durability = Durability(
        link=link,
        write_spool=pool_spool_writer(pool, deadline=settings.spool_deadline),
        produce_deadline=settings.produce_deadline,
        spooled=spooled,
    )
    runner.on_close(durability.close)
    drainer = Drainer(
        dsn=database_url,
        link=link,
        durability=durability,
        batch=settings.spool_drain_batch,
        interval=settings.spool_drain_interval,
        wake=spooled,
        dead_letter_topic=topics.callouts_dlq,
        drained=lambda: spool_progress.advanced(),
    )
    watcher = SpoolWatcher(pool=pool, durability=durability, interval=settings.spool_check_interval)
    # The spool is stalled when rows wait and no round moves any; only the replica holding the
    # drainer lock owes the drain. The producer is stalled when it sends and nothing is
    # acknowledged. Both need Kafka to move (see _NeedsKafka): while it is away the spool takes
    # the callouts and the replica stays ready.
    spool_progress = watch_progress(
        runner,
        settings,
        "spool",
        pending=lambda: watcher.rows if drainer.holds_lock else 0,
        what="spooled callouts",
        kind=functools.partial(_NeedsKafka, kafka=link.ping),
    )
    sends_progress = watch_progress(
        runner,
        settings,
        "kafka-producer",
        pending=lambda: link.producer.unacknowledged,
        what="sends",
        kind=functools.partial(_NeedsKafka, kafka=link.ping),
    )
    link.producer.on_acknowledged(sends_progress.advanced)
    progress: list[Progress] = [spool_progress, sends_progress]
    await watcher.check()  # rows left by an earlier run: spool behind them from the start
    last_callouts = LastCallouts(pool=pool, interval=settings.last_callout_flush_interval)
    deactivations = DeactivationNotices(
        pool=pool,
        durability=durability,
        topics=topics,
        interval=settings.deactivation_interval,
    )
    stop, budget = runner.stopping, LOOP_STOP_BUDGET
    # The producer's loop ends once it has connected; any other loop ending stops the service.
    runner.spawn(link.run(stop), "gateway-kafka", may_finish=True, stop_within=budget)
    runner.spawn(drainer.run(stop), "gateway-drainer", stop_within=budget)
    runner.spawn(watcher.run(stop), "gateway-spool-count", stop_within=budget)
    runner.spawn(last_callouts.run(stop), "gateway-last-callouts", stop_within=budget)
    runner.spawn(deactivations.run(stop), "gateway-deactivations", stop_within=budget)
    runner.spawn(
        _count_registrations(registrations, stop), "gateway-registrations-gauge", stop_within=budget
    )
    app = init_app(
        registrations=registrations,
        durability=durability,
        recent=RecentCallouts(window=settings.dedup_window, capacity=settings.dedup_size),
        last_callouts=last_callouts,
        deactivations=deactivations,
        limits=CalloutLimits(
            max_body_size=settings.max_body_size,
            topics=topics,
            body_deadline=settings.body_deadline.total_seconds(),
            client_ip_header=settings.client_ip_header,
        ),
        admission=Admission.from_settings(settings),
    )
    return Gateway(
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
        progress=progress,
    )


async def start(runner: ServiceRunner, settings: GatewaySettings) -> None:
    """Open the parts in order and serve the callout routes with the ops endpoints."""
    _quiet_malformed_requests()
    gateway = await open_parts(runner, settings)
    # Behind a proxy every connection comes from the proxy: addresses are judged per request.
    admission = gateway.app[ADMISSION]
    await serve_public(
        runner,
        settings,
        gateway.app,
        checks=gateway.checks,
        progress=gateway.progress,
        header_deadline=settings.header_deadline,
        admit=None if settings.client_ip_header else admission.admits,
    )


@asynccontextmanager
async def open_gateway(
    settings: GatewaySettings, *, name: str = "webhook_gateway"
) -> AsyncIterator[Gateway]:
    """The gateway's parts for the block, on a runner of their own, without the HTTP server:
    the caller serves ``app`` and stops serving before the block ends. Then the parts stop as
    a stopped service's do (the loops finish, the parts close in reverse order)."""
    runner = ServiceRunner(name, grace=settings.shutdown_grace)
    async with runner.running(lambda r: open_parts(r, settings)) as gateway:
        yield gateway


class _MalformedRequests(logging.Filter):
    """aiohttp logs each unparsable request (answered 400) at ERROR with a traceback and the
    offending bytes; on a public endpoint anyone can send those, so they become one WARNING line
    naming the kind of error only (never the request's bytes, which may hold a callout URL). The
    logging's repeat limit then folds a flood of them into a count. Errors raised while handling
    a well-formed request keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"malformed request answered {error.code} ({type(error).__name__})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def _quiet_malformed_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in server_log.filters):
        server_log.addFilter(_MalformedRequests())


class _NeedsKafka(Progress):
    """A part that moves only when Kafka answers. While it does not, the stall is the outage's:
    the replica stays ready (the spool takes the callouts) and alive (a restart would not cure
    it, and every replica restarting would only add load as Kafka returns). The gateway has no
    Kafka readiness check the probes could ask instead: it is ready while the spool takes
    callouts."""

    def __init__(self, part: str, *, kafka: ReadinessCheck, **options: Any) -> None:
        super().__init__(part, **options)
        self._kafka = kafka

    async def readiness(self) -> None:
        if self._stalled_past(self.unready_after) and await self._kafka_answers():
            await super().readiness()

    async def liveness(self) -> None:
        if self._stalled_past(self.unhealthy_after) and await self._kafka_answers():
            await super().liveness()

    def _stalled_past(self, bound: timedelta) -> bool:
        """Kafka is asked only about a stall: a probe of a moving part costs nothing, and
        never waits on a Kafka that is away."""
        return self.sample() >= bound.total_seconds()

    async def _kafka_answers(self) -> bool:
        try:
            await asyncio.wait_for(self._kafka(), _CHECK_BUDGET)
        except Exception:  # Kafka away (or not connected yet)
            return False
        return True


def _registrations_check(registrations: RegistrationStore) -> ReadinessCheck:
    async def check() -> None:
        if not registrations.loaded:
            raise RuntimeError("webhook registrations not loaded yet")

    return check


def _durability_check(link: ProducerLink, pool: Pool) -> ReadinessCheck:
    """Ready while Kafka or the spool can take callouts (either one is enough)."""

    async def check() -> None:
        if link.connected:
            try:
                await asyncio.wait_for(link.ping(), _CHECK_BUDGET)
                return
            except Exception as exc:  # any failure means "try the spool"
                log.debug("readiness: Kafka did not answer", error=repr(exc))
        async with asyncio.timeout(_CHECK_BUDGET):
            async with session(pool, "check the callout spool") as db:
                await db.fetchval("SELECT 1 FROM callout_spool LIMIT 1")

    return check


async def _count_registrations(registrations: RegistrationStore, stop: asyncio.Event) -> None:
    async for _ in aiter_until(stop, _REGISTRATIONS_GAUGE_INTERVAL):
        counts = dict.fromkeys(RegistrationState, 0)
        for registration in registrations.all():
            counts[registration.state] += 1
        for state, count in counts.items():
            GATEWAY_REGISTRATIONS.labels(state.value).set(count)


__all__ = ["Gateway", "init_app", "open_gateway", "open_parts", "start"]

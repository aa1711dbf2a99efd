"""Entry-point plumbing shared by the services' ``__main__`` modules.

``main`` parses settings once (a bad variable stops the process with a message naming it),
configures logging, and runs the service's ``start`` under :class:`ServiceRunner`. ``start``
opens what the service needs on the runner: the PostgreSQL pool and Kafka producer
(:func:`open_base_resources`), its own resources and background tasks, and last its HTTP
servers: the ops endpoints on the ops port (:func:`serve_ops`), and for a service with public
routes those on the public port besides (:func:`serve_public`). The ops endpoints are never
served on the public port.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from shared.db import Pool, create_pool, session
from shared.errors import ConfigError, DatabaseError, KafkaError, SyncError
from shared.kafka import make_producer
from shared.kafka.errors import is_unreachable, kafka_errors
from shared.logging import configure_logging, get_logger, register_secret
from shared.runtime.ops import HEADER_DEADLINE, Admit, ReadinessCheck, add_ops_routes, serve
from shared.runtime.runner import ServiceRunner
from shared.settings import OPS_PORTS, BaseServiceSettings, load_settings

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)
T = TypeVar("T")
Start = Callable[[ServiceRunner, SettingsT], Awaitable[None]]

log = get_logger(__name__)

POOL_CLOSE_BUDGET = timedelta(seconds=5)
"""How long the pool may take to close gracefully before its connections are terminated."""


def main(name: str, settings_cls: type[SettingsT], start: Start[SettingsT]) -> int:
    """Run a service to completion; returns the process exit code."""
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for value in settings.model_dump().values():
        if isinstance(value, SecretStr):
            register_secret(value)
    runner = ServiceRunner(name, grace=settings.shutdown_grace)

    async def _start(r: ServiceRunner) -> None:
        await start(r, settings)

    try:
        return asyncio.run(runner.run(_start))
    except SyncError as exc:  # a dependency that never came up, say: one line, not a traceback
        log.error("service could not start", service=name, error=str(exc))
        return 1


def ops_address(settings: BaseServiceSettings, service: str) -> tuple[str, int]:
    """Where ``service`` serves its ops endpoints: ``OPS_HOST`` (else ``HTTP_HOST``) and
    ``OPS_PORT`` (else the service's default, ``shared.settings.OPS_PORTS``)."""
    host = settings.ops_host if settings.ops_host is not None else settings.http_host
    if settings.ops_port is not None:
        return host, settings.ops_port
    if service not in OPS_PORTS:
        raise ConfigError(
            f"AUTOTASK_SYNC_OPS_PORT is not set and {service!r} has no default ops port; "
            "set it (docs/configuration.md, Ports)"
        )
    return host, OPS_PORTS[service]


async def serve_ops(
    runner: ServiceRunner, settings: BaseServiceSettings, *, checks: Mapping[str, ReadinessCheck]
) -> web.AppRunner:
    """Serve the ops routes on the ops host and port (:func:`ops_address`).

    The server is a resource, not an intake: it answers ``/healthz``, ``/readyz`` and
    ``/metrics`` through the whole drain and closes with the resources entered before it."""
    app = web.Application()
    add_ops_routes(app, checks)
    host, port = ops_address(settings, runner.name)
    server = await runner.enter(serve(app, host, port))
    log.info("ops server listening", addresses=[str(a) for a in server.addresses])
    return server


async def serve_public(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
    app: web.Application,
    *,
    checks: Mapping[str, ReadinessCheck],
    header_deadline: timedelta = HEADER_DEADLINE,
    admit: Admit | None = None,
) -> web.AppRunner:
    """Serve ``app``, the service's own routes alone, on ``HTTP_HOST``:``HTTP_PORT``, and the
    ops routes on the ops port (:func:`serve_ops`); returns the public server.

    The public server is an intake (:meth:`ServiceRunner.intake`): at stop it stops accepting
    first, lets the requests in flight finish (for at most ``ops.SHUTDOWN_TIMEOUT``) while the
    background tasks still run, and only then are the tasks told to stop. The ops server,
    started before it, keeps answering until the resources close. ``header_deadline``: how
    long a client may take to send a request's headers, ``admit`` which addresses may connect
    at all (:func:`shared.runtime.ops.serve`)."""
    ops_host, ops_port = ops_address(settings, runner.name)
    if ops_port == settings.http_port != 0 and ops_host == settings.http_host:
        raise ConfigError(
            "AUTOTASK_SYNC_OPS_PORT and AUTOTASK_SYNC_HTTP_PORT are both "
            f"{ops_port}: the ops endpoints must not share the public port"
        )
    await serve_ops(runner, settings, checks=checks)
    server = await runner.intake(
        serve(
            app,
            settings.http_host,
            settings.http_port,
            header_deadline=header_deadline,
            admit=admit,
        )
    )
    log.info("public server listening", addresses=[str(a) for a in server.addresses])
    return server


def postgres_check(pool: Pool) -> ReadinessCheck:
    """PostgreSQL answers a query on a pooled session."""

    async def check() -> None:
        async with session(pool, "check PostgreSQL", wait=timedelta(seconds=1)) as db:
            await db.fetchval("SELECT 1")

    return check


def kafka_check(producer: AIOKafkaProducer) -> ReadinessCheck:
    """The cluster answers a metadata request."""

    async def check() -> None:
        with kafka_errors("fetch the cluster's metadata"):
            await producer.client.fetch_all_metadata()

    return check


@dataclass(frozen=True)
class BaseResources:
    """What most services open first: a PostgreSQL pool and, when asked, a Kafka producer."""

    pool: Pool
    producer: AIOKafkaProducer | None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """A check per dependency opened here, for ``/readyz``."""
        checks = {"postgres": postgres_check(self.pool)}
        if self.producer is not None:
            checks["kafka"] = kafka_check(self.producer)
        return checks


async def open_base_resources(
    runner: ServiceRunner, settings: BaseServiceSettings, *, kafka: bool
) -> BaseResources:
    """Open the pool (and producer) on the runner so they close in reverse order at shutdown.

    Each is waited for up to ``startup_wait`` (services start in any order), or until a stop
    is requested."""
    pool = await runner.enter(_pool(settings, runner.stop_requested))
    producer = None
    if kafka:
        producer = await runner.enter(_producer(settings, runner.name, runner.stop_requested))
    return BaseResources(pool, producer)


@asynccontextmanager
async def _pool(settings: BaseServiceSettings, stop: asyncio.Event) -> AsyncIterator[Pool]:
    async def open_pool() -> Pool:
        return await create_pool(
            settings.database_url.get_secret_value(),
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )

    pool = await _patiently(open_pool, "PostgreSQL", settings.startup_wait, stop)
    try:
        yield pool
    finally:
        await _close_pool(pool)


async def _close_pool(pool: Pool) -> None:
    """Close gracefully, but within the shutdown budget: a session PostgreSQL dropped half-way
    must not hold the exit up (the pool then terminates the rest)."""
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_BUDGET.total_seconds())
    except TimeoutError:
        log.warning("PostgreSQL pool did not close in time; terminated its connections")


@asynccontextmanager
async def _producer(
    settings: BaseServiceSettings, name: str, stop: asyncio.Event
) -> AsyncIterator[AIOKafkaProducer]:
    async def open_producer() -> AIOKafkaProducer:
        producer = make_producer(
            settings.kafka_bootstrap_servers,
            client_id=f"{settings.kafka_client_id}-{name}",
            max_request_size=settings.kafka_max_request_size,
        )
        try:
            await producer.start()
        except BaseException as exc:
            await producer.stop()
            if is_unreachable(exc):
                raise KafkaError(
                    f"could not reach Kafka at {settings.kafka_bootstrap_servers} ({exc}); check "
                    "KAFKA_BOOTSTRAP_SERVERS and that the brokers are up"
                ) from None
            raise
        return producer

    producer = await _patiently(open_producer, "Kafka", settings.startup_wait, stop)
    try:
        yield producer
    finally:
        await producer.stop()


async def _patiently(
    open_: Callable[[], Awaitable[T]], what: str, within: timedelta, stop: asyncio.Event
) -> T:
    """Open a dependency that may still be starting, trying again with backoff for ``within``
    (or until ``stop`` is set); then the last error stands."""
    deadline = time.monotonic() + within.total_seconds()
    delay = 0.5
    while True:
        try:
            return await open_()
        except (DatabaseError, KafkaError) as exc:
            if stop.is_set() or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "dependency not reachable yet; retrying",
                dependency=what,
                error=str(exc),
                retry_in_s=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)

"""Entry-point plumbing shared by the services' ``__main__`` modules.

``main`` parses settings once (a bad variable stops the process with a message naming it),
configures logging, and runs the service's ``start`` under :class:`ServiceRunner`.
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

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from shared.db import create_pool
from shared.errors import ConfigError, DatabaseError, KafkaError, SyncError
from shared.kafka import make_producer
from shared.logging import configure_logging, get_logger, register_secret
from shared.runtime.ops import ReadinessCheck, add_ops_routes, serve
from shared.runtime.runner import ServiceRunner
from shared.settings import BaseServiceSettings, load_settings

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)
T = TypeVar("T")
Start = Callable[[ServiceRunner, SettingsT], Awaitable[None]]

log = get_logger(__name__)


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


async def serve_ops(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
    *,
    checks: Mapping[str, ReadinessCheck],
    app: web.Application | None = None,
) -> web.AppRunner:
    """Serve ``app`` (or a bare one) with the ops routes on the configured host and port."""
    app = app or web.Application()
    add_ops_routes(app, checks)
    site = await runner.enter(serve(app, settings.http_host, settings.http_port))
    log.info("http server listening", addresses=[str(a) for a in site.addresses])
    return site


def postgres_check(pool: asyncpg.Pool) -> ReadinessCheck:
    async def check() -> None:
        async with pool.acquire(timeout=1.0) as db:
            await db.fetchval("SELECT 1")

    return check


def kafka_check(producer: AIOKafkaProducer) -> ReadinessCheck:
    async def check() -> None:
        await producer.client.fetch_all_metadata()

    return check


@dataclass(frozen=True)
class BaseResources:
    """What most services open first: a PostgreSQL pool and, when asked, a Kafka producer."""

    pool: asyncpg.Pool
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
    """Open the pool (and producer) on the runner so they close in reverse order at shutdown."""
    pool = await runner.enter(_pool(settings, runner.stopping))
    producer = None
    if kafka:
        producer = await runner.enter(_producer(settings, runner.name, runner.stopping))
    return BaseResources(pool, producer)


@asynccontextmanager
async def _pool(
    settings: BaseServiceSettings, stopping: asyncio.Event
) -> AsyncIterator[asyncpg.Pool]:
    async def open_pool() -> asyncpg.Pool:
        return await create_pool(
            settings.database_url.get_secret_value(),
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )

    pool = await _patiently(open_pool, "PostgreSQL", settings.startup_wait, stopping)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def _producer(
    settings: BaseServiceSettings, name: str, stopping: asyncio.Event
) -> AsyncIterator[AIOKafkaProducer]:
    async def open_producer() -> AIOKafkaProducer:
        producer = make_producer(
            settings.kafka_bootstrap_servers, client_id=f"{settings.kafka_client_id}-{name}"
        )
        try:
            await producer.start()
        except BaseException as exc:
            await producer.stop()
            if isinstance(exc, KafkaConnectionError):
                raise KafkaError(
                    f"could not reach Kafka at {settings.kafka_bootstrap_servers} ({exc}); check "
                    "KAFKA_BOOTSTRAP_SERVERS and that the brokers are up"
                ) from None
            raise
        return producer

    producer = await _patiently(open_producer, "Kafka", settings.startup_wait, stopping)
    try:
        yield producer
    finally:
        await producer.stop()


async def _patiently(
    open_: Callable[[], Awaitable[T]], what: str, within: timedelta, stopping: asyncio.Event
) -> T:
    """Open a dependency that may still be starting, trying again with backoff for ``within``
    (or until the service is asked to stop); then the last error stands."""
    deadline = time.monotonic() + within.total_seconds()
    delay = 0.5
    while True:
        try:
            return await open_()
        except (DatabaseError, KafkaError) as exc:
            if stopping.is_set() or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "dependency not reachable yet; retrying",
                dependency=what,
                error=str(exc),
                retry_in_s=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)

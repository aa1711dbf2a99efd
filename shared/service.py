"""Entry-point plumbing shared by the services' ``__main__`` modules.

``main`` parses settings once (a bad variable stops the process with a message naming it),
configures logging, and runs the service's ``start`` under :class:`ServiceRunner`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from shared.db import create_pool
from shared.errors import ConfigError
from shared.http import ReadinessCheck, add_ops_routes, serve
from shared.kafka import make_producer
from shared.logging import configure_logging, get_logger, register_secret
from shared.runner import ServiceRunner
from shared.settings import BaseServiceSettings, load_settings

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)
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
    runner = ServiceRunner(name, grace=settings.shutdown_grace.total_seconds())

    async def _start(r: ServiceRunner) -> None:
        await start(r, settings)

    return asyncio.run(runner.run(_start))


async def serve_ops(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
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
        async with pool.acquire(timeout=1.0) as connection:
            await connection.fetchval("SELECT 1")

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
    pool = await runner.enter(_pool(settings))
    producer = None
    if kafka:
        producer = await runner.enter(_producer(settings, runner.name))
    return BaseResources(pool, producer)


@asynccontextmanager
async def _pool(settings: BaseServiceSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(
        settings.database_url.get_secret_value(),
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def _producer(settings: BaseServiceSettings, name: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(
        settings.kafka_bootstrap_servers, client_id=f"{settings.kafka_client_id}-{name}"
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()

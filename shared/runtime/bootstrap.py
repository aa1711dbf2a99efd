"""Entry-point plumbing shared by the services' ``__main__`` modules.

``main`` answers ``--help`` (a service takes no other argument), parses settings once (a bad
variable, an unknown one or a malformed URL stops the process with a message naming it),
configures logging, and runs the service's ``start`` under :class:`ServiceRunner`. ``start``
opens what the service needs on the runner: the PostgreSQL pool and Kafka producer
(:func:`open_base_resources`), its own resources and background tasks, and last its HTTP
servers: the ops endpoints on the ops port (:func:`serve_ops`), and for a service with public
routes those on the public port besides (:func:`serve_public`). The ops endpoints are never
served on the public port, and a port this process cannot listen on (one already in use) stops
it with one line naming the setting to change.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from aiohttp import web
from pydantic import SecretStr

from shared.db import Pool, create_pool, database_dsn, session
from shared.errors import ConfigError, DatabaseError, KafkaError, SyncError
from shared.kafka import client_config, make_producer
from shared.kafka.producer import Producer
from shared.logging import configure_logging, get_logger, register_secret
from shared.runtime.backoff import Backoff, Retry
from shared.runtime.ops import HEADER_DEADLINE, Admit, ReadinessCheck, add_ops_routes, serve
from shared.runtime.progress import Progress
from shared.runtime.runner import ServiceRunner
from shared.settings import OPS_PORTS, BaseServiceSettings, env_name, load_settings

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)
T = TypeVar("T")
Start = Callable[[ServiceRunner, SettingsT], Awaitable[None]]

log = get_logger(__name__)

POOL_CLOSE_BUDGET = timedelta(seconds=5)
"""How long the pool may take to close gracefully before its connections are terminated."""
STARTUP_BACKOFF = Backoff(first=timedelta(milliseconds=500), cap=timedelta(seconds=5))
"""Waits between attempts to reach PostgreSQL or Kafka at start."""


def main(
    name: str,
    settings_cls: type[SettingsT],
    start: Start[SettingsT],
    *,
    about: str | None,
    public: str | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Run a service to completion; returns the process exit code.

    ``about`` says what the service does and ``public`` what its public port serves (None: it
    has none), for ``--help``; ``argv``: the arguments (``sys.argv[1:]``)."""
    _command_line(name, about, public).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(settings_cls)
        client_config(settings)  # Kafka's security settings are checked now, not at first use
        database_dsn(settings)  # and the database URL: a malformed one is not waited for
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


def _command_line(name: str, about: str | None, public: str | None) -> argparse.ArgumentParser:
    """The command line of ``python -m services.<name>``: no arguments (any is refused, named,
    exit status 2); ``--help`` prints what the service does, how it is configured and its
    default ports, and exits 0 without starting it."""
    ports = [f"  /healthz, /readyz, /metrics: {OPS_PORTS[name]} ({env_name('ops_port')})"]
    if public is not None:
        http_port = BaseServiceSettings.model_fields["http_port"].default
        ports.append(f"  {public}: {http_port} ({env_name('http_port')})")
    epilog = "\n".join(
        [
            "Configured by environment variables only: AUTOTASK_SYNC_* (and DATABASE_URL,",
            "KAFKA_BOOTSTRAP_SERVERS), every one listed in docs/configuration.md.",
            "",
            'Default ports (docs/configuration.md, "Ports"):',
            *ports,
        ]
    )
    return argparse.ArgumentParser(
        prog=f"python -m services.{name}",
        description=about,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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


def watch_progress(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
    part: str,
    *,
    pending: Callable[[], int],
    what: str,
    excused: Callable[[], str | None] | None = None,
    kind: Callable[..., Progress] = Progress,
) -> Progress:
    """A :class:`Progress` (or ``kind``, a subclass taking the same arguments) for one part of
    the service, with the settings' bounds, sampled in the background until stop. Give it to
    :func:`serve_ops` (``progress``)."""
    progress = kind(
        part,
        pending=pending,
        unready_after=settings.stall_unready_after,
        unhealthy_after=settings.stall_unhealthy_after,
        what=what,
        excused=excused,
    )
    runner.spawn(progress.watch(runner.stopping), name=f"progress-{part}")
    return progress


async def serve_ops(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
    *,
    checks: Mapping[str, ReadinessCheck],
    progress: Sequence[Progress] = (),
) -> web.AppRunner:
    """Serve the ops routes on the ops host and port (:func:`ops_address`): ``/readyz`` runs
    ``checks`` and each ``progress``'s readiness, ``/healthz`` their liveness.

    The server is a resource, not an intake: it answers ``/healthz``, ``/readyz`` and
    ``/metrics`` through the whole drain and closes with the resources entered before it."""
    app = web.Application()
    add_ops_routes(
        app,
        {**checks, **{p.part: p.readiness for p in progress}},
        liveness={p.part: p.liveness for p in progress},
    )
    host, port = ops_address(settings, runner.name)
    host_setting = "ops_host" if settings.ops_host is not None else "http_host"
    with _listening(host, port, host_setting=host_setting, port_setting="ops_port"):
        server = await runner.enter(serve(app, host, port))
    log.info("ops server listening", addresses=[str(a) for a in server.addresses])
    return server


async def serve_public(
    runner: ServiceRunner,
    settings: BaseServiceSettings,
    app: web.Application,
    *,
    checks: Mapping[str, ReadinessCheck],
    progress: Sequence[Progress] = (),
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
    await serve_ops(runner, settings, checks=checks, progress=progress)
    host, port = settings.http_host, settings.http_port
    with _listening(host, port, host_setting="http_host", port_setting="http_port"):
        server = await runner.intake(
            serve(app, host, port, header_deadline=header_deadline, admit=admit)
        )
    log.info("public server listening", addresses=[str(a) for a in server.addresses])
    return server


@contextmanager
def _listening(host: str, port: int, *, host_setting: str, port_setting: str) -> Iterator[None]:
    """A port this process cannot listen on, as a ConfigError naming the setting to change
    (a second service on one host with the same port gets one line, not a traceback)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} is already in use on {host} (another service, or this one "
                f"twice?): set {env_name(port_setting)} to a free port (docs/configuration.md, "
                "Ports)"
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): check "
            f"{env_name(host_setting)} and {env_name(port_setting)}"
        ) from None


def postgres_check(pool: Pool) -> ReadinessCheck:
    """PostgreSQL answers a query on a pooled session."""

    async def check() -> None:
        async with session(pool, "check PostgreSQL", wait=timedelta(seconds=1)) as db:
            await db.fetchval("SELECT 1")

    return check


def kafka_check(producer: Producer) -> ReadinessCheck:
    """The cluster answers a metadata request."""

    async def check() -> None:
        await producer.ping()

    return check


@dataclass(frozen=True)
class BaseResources:
    """What most services open first: a PostgreSQL pool and, when asked, a Kafka producer
    (replaced by itself when the broker no longer accepts its state: :mod:`shared.kafka.
    producer`) with its :class:`Progress` (``kafka-producer``: sends that are never
    acknowledged stall it). Pass ``progress`` to :func:`serve_ops`."""

    pool: Pool
    producer: Producer | None
    progress: tuple[Progress, ...] = ()

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
    if not kafka:
        return BaseResources(pool, None)
    producer = await runner.enter(_producer(settings, runner.name, runner.stop_requested))
    progress = watch_progress(
        runner,
        settings,
        "kafka-producer",
        pending=lambda: producer.unacknowledged,
        what="sends",
    )
    producer.on_acknowledged(progress.advanced)
    return BaseResources(pool, producer, (progress,))


@asynccontextmanager
async def _pool(settings: BaseServiceSettings, stop: asyncio.Event) -> AsyncIterator[Pool]:
    dsn = database_dsn(settings)  # a configuration mistake stops the start here, named

    async def open_pool() -> Pool:
        return await create_pool(
            dsn,
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
) -> AsyncIterator[Producer]:
    kafka = client_config(settings)
    producer = Producer(
        lambda: make_producer(
            kafka,
            client_id=f"{settings.kafka_client_id}-{name}",
            max_request_size=settings.kafka_max_request_size,
        ),
        kafka,
    )

    async def open_producer() -> Producer:
        # A refused password or certificate is not retried: the error names the setting.
        await producer.start()
        return producer

    await _patiently(open_producer, "Kafka", settings.startup_wait, stop)
    try:
        yield producer
    finally:
        await producer.stop()


async def _patiently(
    open_: Callable[[], Awaitable[T]], what: str, within: timedelta, stop: asyncio.Event
) -> T:
    """Open a dependency that may still be starting, trying again with back-off
    (:data:`STARTUP_BACKOFF`) for ``within`` (or until ``stop`` is set); then the last error
    stands."""
    deadline = time.monotonic() + within.total_seconds()
    retry = Retry(STARTUP_BACKOFF)
    while True:
        try:
            return await open_()
        except (DatabaseError, KafkaError) as exc:
            delay = retry.failed()
            if not exc.retriable or stop.is_set() or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "dependency not reachable yet; retrying",
                dependency=what,
                error=str(exc),
                retry_in_s=round(delay, 2),
            )
            await retry.wait(delay, stop)

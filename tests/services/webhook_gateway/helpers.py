"""Helpers for the gateway's tests: settings with fast timings, registrations, signed callouts,
the gateway served in-process or as a real process, and reading what reached Kafka and the spool.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from services.webhook_gateway import spool
from services.webhook_gateway.app import Gateway, open_gateway
from services.webhook_gateway.settings import GatewaySettings
from shared.db import connect
from shared.kafka import ensure_topics
from shared.messages.topics import Topics
from shared.registrations import Registration, RegistrationState, create_pending, set_state
from shared.runtime.ops import add_ops_routes
from shared.secrets import SecretBox
from tools.dev_infra.processes import free_port

ROOT = Path(__file__).resolve().parents[3]

FAST: dict[str, Any] = {
    "produce_deadline": timedelta(milliseconds=500),
    "spool_deadline": timedelta(seconds=2),
    "spool_drain_interval": timedelta(milliseconds=100),
    "spool_check_interval": timedelta(milliseconds=100),
    "kafka_retry_interval": timedelta(milliseconds=200),
    "last_callout_flush_interval": timedelta(milliseconds=200),
    "registrations_reload_interval": timedelta(seconds=30),
}
"""Timings that keep fault tests fast (retries are not slept through)."""


def settings_for(
    *, dsn: str, bootstrap: str, topics: Topics, key: str, **overrides: Any
) -> GatewaySettings:
    """Gateway settings for a test: its database, broker, topics and secret key."""
    values: dict[str, Any] = {
        "database_url": SecretStr(dsn),
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": topics.prefix,
        "secret_keys": SecretStr(key),
        "http_host": "127.0.0.1",
        "http_port": 0,
        **FAST,
        **overrides,
    }
    return GatewaySettings(**values)


def env_for(settings: GatewaySettings, *, port: int, **extra: str) -> dict[str, str]:
    """The same settings as environment variables, for ``python -m services.webhook_gateway``."""
    env = {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "AUTOTASK_SYNC_TOPIC_PREFIX": settings.topic_prefix,
        "AUTOTASK_SYNC_SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
    }
    for name, value in FAST.items():
        env[f"AUTOTASK_SYNC_{name.upper()}"] = f"{value.total_seconds()}s"
    env.update(extra)
    return env


async def create_topics(bootstrap: str, prefix: str) -> Topics:
    """The gateway's topics (callouts, dead letters, control) under ``prefix``."""
    topics = Topics(prefix=prefix, partitions=3)
    await ensure_topics(bootstrap, topics.declarations(entities=[]), replication_factor=1)
    return topics


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], max_wait: timedelta = timedelta(seconds=5)
) -> None:
    """Wait until ``check()`` (sync or async) is true; fail the test at the deadline."""
    deadline = asyncio.get_running_loop().time() + max_wait.total_seconds()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {max_wait.total_seconds():g} s")
        await asyncio.sleep(0.01)


# --- registrations and signed callouts ---------------------------------------------------------
async def add_registration(
    dsn: str,
    key: str,
    *,
    connection: str = "acme",
    entity: str = "Tickets",
    secret: str = "s3cret-key-0123",  # noqa: S107 - a test secret
    state: RegistrationState = RegistrationState.ACTIVE,
) -> Registration:
    """A registration as the provisioner leaves it (``state``), with ``secret``."""
    db = await connect(dsn)
    try:
        registration = await create_pending(
            db, SecretBox([key]), of_connection=connection, entity=entity, secret=SecretStr(secret)
        )
        if state is not RegistrationState.PENDING:
            await set_state(db, registration.registration_id, state)
    finally:
        await db.close()
    return registration


def signature(secret: str, body: bytes) -> str:
    """The documented algorithm, written out independently of the gateway's module."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return "sha1=" + base64.b64encode(digest).decode()


def callout_body(
    entity_id: int = 42,
    *,
    entity_type: str = "Ticket",
    action: str = "Update",
    sequence: int = 1,
    **extra: Any,
) -> bytes:
    """A compact callout body in Autotask's key order."""
    payload: dict[str, Any] = {
        "Action": action,
        "Guid": "00000000-0000-0000-0000-000000000001",
        "EntityType": entity_type,
        "Id": entity_id,
        "Fields": {"title": f"change {sequence}"},
        "EventTime": "2026-12-01T12:00:00.000Z",
        "SequenceNumber": sequence,
        "PersonID": 29682885,
        **extra,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hook-Signature": signature(secret, body)}


# --- the gateway -----------------------------------------------------------------------------
@dataclass
class Served:
    """A gateway answering HTTP on loopback."""

    base_url: str
    gateway: Gateway | None = None

    def callout_url(self, registration_id: str) -> str:
        return f"{self.base_url}/v1/callouts/{registration_id}"

    def deactivation_url(self, registration_id: str) -> str:
        return f"{self.base_url}/v1/deactivations/{registration_id}"


@asynccontextmanager
async def serve_gateway(settings: GatewaySettings) -> AsyncIterator[Served]:
    """The gateway in this process, wired as ``start`` wires it (ops routes included)."""
    async with open_gateway(settings) as gateway:
        add_ops_routes(gateway.app, gateway.checks)
        # As shared.runtime.ops.serve, with the shutdown timeout where aiohttp 3.14 wants it.
        runner = web.AppRunner(
            gateway.app, access_log=None, handle_signals=False, shutdown_timeout=5.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            yield Served(f"http://127.0.0.1:{port}", gateway)
        finally:
            await runner.cleanup()


@dataclass
class GatewayProcess:
    """``python -m services.webhook_gateway`` as a real process, output in a log file."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def served(self) -> Served:
        return Served(self.base_url)

    async def start(self, *, ready: bool = True) -> GatewayProcess:
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.webhook_gateway",
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        await self.wait_http(path="/readyz" if ready else "/healthz")
        return self

    async def wait_http(self, *, path: str, max_wait: timedelta = timedelta(seconds=30)) -> None:
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + max_wait.total_seconds()
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.process.returncode is not None:
                    break
                try:
                    async with session.get(self.base_url + path) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"{path} never answered 200:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self, *, sig: int = signal.SIGTERM, max_wait: float = 30) -> int:
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process and process.returncode is not None else 0
        process.send_signal(sig)
        try:
            return await asyncio.wait_for(process.wait(), max_wait)
        except TimeoutError:
            process.kill()
            return await process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


def gateway_process(settings: GatewaySettings, log_path: Path, **extra: str) -> GatewayProcess:
    port = free_port()
    return GatewayProcess(env_for(settings, port=port, **extra), log_path, port)


# --- what was stored ---------------------------------------------------------------------------
async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    at_least: int = 0,
    max_wait: timedelta = timedelta(seconds=15),
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message on ``topic`` (in partition order), waiting for ``at_least`` of them.

    Reads up to the end offsets as they are when the wait ends (or ``at_least`` is reached),
    so with ``at_least=0`` it is "everything there now".
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        # Without a group, the consumer is assigned every partition of the topic at start.
        partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        assert partitions, f"topic {topic} has no partitions"
        await consumer.seek_to_beginning(*partitions)
        deadline = asyncio.get_running_loop().time() + max_wait.total_seconds()
        while True:
            ends = await consumer.end_offsets(partitions)
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
            if len(records) >= at_least or asyncio.get_running_loop().time() > deadline:
                return records
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def spooled(dsn: str) -> list[spool.SpooledMessage]:
    """Every row in the spool, in id order."""
    db = await connect(dsn)
    try:
        return await spool.oldest(db, limit=1_000_000)
    finally:
        await db.close()


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def by_value(records: list[ConsumerRecord[bytes, bytes]]) -> Mapping[bytes, int]:
    """How many times each value is on the topic."""
    counts: dict[bytes, int] = {}
    for record in records:
        assert record.value is not None
        counts[record.value] = counts.get(record.value, 0) + 1
    return counts


@dataclass
class Deployment:
    """Where one test's gateway lives: its database, broker, topics and secret key."""

    dsn: str
    bootstrap: str
    topics: Topics
    key: str

    def settings(self, **overrides: Any) -> GatewaySettings:
        return settings_for(
            dsn=self.dsn, bootstrap=self.bootstrap, topics=self.topics, key=self.key, **overrides
        )

    async def registration(self, **options: Any) -> Registration:
        return await add_registration(self.dsn, self.key, **options)

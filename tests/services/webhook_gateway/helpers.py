"""Helpers for the gateway's tests: settings with fast timings, registrations, signed callouts,
the gateway served in-process or as a real process, and reading what reached Kafka and the spool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from shared.runtime.ops import add_ops_routes, serve
from shared.secrets import SecretBox
from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually

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


def env_for(settings: GatewaySettings, **extra: str) -> dict[str, str]:
    """The same settings as environment variables, for ``python -m services.webhook_gateway``
    (the process's address is its own: see :func:`gateway_process`)."""
    env = {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "AUTOTASK_SYNC_TOPIC_PREFIX": settings.topic_prefix,
        "AUTOTASK_SYNC_SECRET_KEYS": settings.secret_keys.get_secret_value(),
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
    ops_url: str = ""
    """``/healthz``, ``/readyz``, ``/metrics`` (a port of their own)."""

    def callout_url(self, registration_id: str) -> str:
        return f"{self.base_url}/v1/callouts/{registration_id}"

    def deactivation_url(self, registration_id: str) -> str:
        return f"{self.base_url}/v1/deactivations/{registration_id}"


@asynccontextmanager
async def serve_gateway(settings: GatewaySettings) -> AsyncIterator[Served]:
    """The gateway in this process, served as ``start`` serves it: the callout routes on one
    port, the ops routes on another, both through the services' hardened server."""
    async with open_gateway(settings) as gateway:
        ops = web.Application()
        add_ops_routes(ops, gateway.checks)
        deadline = settings.header_deadline
        async with (
            serve(gateway.app, "127.0.0.1", 0, header_deadline=deadline) as public,
            serve(ops, "127.0.0.1", 0) as ops_runner,
        ):
            yield Served(_url(public), gateway, ops_url=_url(ops_runner))


def _url(runner: web.AppRunner) -> str:
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


def gateway_process(settings: GatewaySettings, log_path: Path, **extra: str) -> ServiceProcess:
    """``python -m services.webhook_gateway`` with ``settings`` (and ``extra`` variables) on a
    port of its own, not started yet; ``Served(process.url)`` gives its routes."""
    return ServiceProcess("webhook_gateway", env_for(settings, **extra), log_path=log_path)


# --- what was stored ---------------------------------------------------------------------------
async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    at_least: int = 0,
    within: timedelta = timedelta(seconds=15),
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message on ``topic`` (in partition order), once at least ``at_least`` are there;
    the test fails if they are not within ``within``.

    Reads up to the end offsets as they are when that many are there, so with ``at_least=0`` it
    is "everything there now".
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

        async def enough() -> bool:
            ends = await consumer.end_offsets(partitions)
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
            return len(records) >= at_least

        await eventually(
            enough,
            within=within,
            interval=timedelta(milliseconds=50),
            what=f"{at_least} messages on {topic}",
        )
        return records
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

"""What the provisioner's integration tests share: a simulated tenant, a real database, the
provisioner wired to both, and ways to read the truth (the simulator's webhooks and request
statistics, the registrations table, the control topic)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.provisioner.control import KafkaSweepPublisher
from services.provisioner.provision import CLIENT_CONFIG, PassResult, Provisioner
from services.provisioner.settings import ProvisionerSettings
from shared.autotask import AutotaskClient
from shared.connections.catalogue import ServedConnection
from shared.db import create_pool
from shared.kafka import ensure_topics, make_producer
from shared.messages.control import ControlEvent, decode_control
from shared.messages.topics import Topics
from shared.registrations import Registration, fetch_all
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from shared.settings import load_settings
from tests.helpers.clients import connection_for
from tests.helpers.simapi import fast_callouts
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator, SimulatorConfig

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
KEY = SecretBox.generate_key()
"""The secret key every harness (and every process a test starts) encrypts with."""


def tenant(seed: int = 7, **overrides: Any) -> SimulatorConfig:
    """A small tenant whose callouts retry in milliseconds (real attempt counts, and the
    simulator's 2 s attempt timeout, so a real gateway has time to answer)."""
    values: dict[str, Any] = {
        "seed": seed,
        "companies": 8,
        "contacts": 8,
        "configuration_items": 4,
        "tickets": 12,
        "ticket_notes": 8,
        "callouts": fast_callouts(),
    }
    values.update(overrides)
    return SimulatorConfig(**values)


def writes(sim: Simulator) -> Counter[str]:
    """Write calls the simulator answered since its counters were reset, by method (a POST to
    ``.../query`` is a read)."""
    found: Counter[str] = Counter()
    for request in sim.state.requests.recent:
        method, path = request["method"], request["path"]
        if method in WRITE_METHODS and not (method == "POST" and "/query" in path):
            found[method] += 1
    return found


def calls(sim: Simulator) -> int:
    """Every REST call the simulator answered since its counters were reset."""
    return sum(sim.state.requests.by_endpoint.values())


def ours(sim: Simulator, connection: str = "acme") -> list[dict[str, Any]]:
    """The simulator's webhooks named for ``connection``, with their children."""
    prefix = f"autotask-sync:{connection}:"
    return [w for w in sim.state.webhook_list() if str(w["name"]).startswith(prefix)]


@dataclass
class Harness:
    """The provisioner for one simulated connection, over a real database."""

    sim: Simulator
    pool: asyncpg.Pool
    box: SecretBox
    settings: ProvisionerSettings
    provisioner: Provisioner
    served: ServedConnection
    client: AutotaskClient
    topics: Topics | None = None
    kafka: str | None = None
    _closers: list[Any] = field(default_factory=list)

    async def apply(self, **options: Any) -> PassResult:
        return await self.provisioner.run(self.served, self.client, trigger="test", **options)

    async def registrations(self) -> list[Registration]:
        async with self.pool.acquire() as db:
            return await fetch_all(db, self.box)

    async def live(self) -> dict[str, Registration]:
        return {r.entity: r for r in await self.registrations() if not r.retired}

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as db:
            return list(await db.fetch(query, *args))

    async def control_events(self, *, at_least: int = 1) -> list[ControlEvent]:
        """Every event on this harness's control topic (waiting for ``at_least``)."""
        assert self.kafka is not None
        assert self.topics is not None
        return await read_control(self.kafka, self.topics.control, at_least=at_least)


async def read_control(
    kafka: str,
    topic: str,
    *,
    at_least: int = 1,
    until: Callable[[list[ControlEvent]], bool] | None = None,
    within: timedelta = timedelta(seconds=10),
) -> list[ControlEvent]:
    """Every event on the control ``topic`` from the start, once at least ``at_least`` are
    there (and ``until`` holds for them); the test fails if they are not within ``within``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest")
    await consumer.start()
    found: list[ControlEvent] = []

    async def enough() -> bool:
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            found.extend(decode_control(m.value) for m in messages if m.value is not None)
        assert len(found) >= at_least, found
        assert until is None or until(found), found
        return True

    try:
        await eventually(enough, within=within, what=f"{at_least} events on {topic}")
    finally:
        await consumer.stop()
    return found


async def ensure_control_topic(kafka: str, prefix: str) -> Topics:
    """Create the control topic of ``prefix`` (the deployment's `topics ensure` does it)."""
    topics = Topics(prefix=prefix)
    specs = [spec for spec in topics.declarations([]) if spec.name == topics.control]
    await ensure_topics(kafka, specs, replication_factor=1)
    return topics


def provisioner_settings(gateway: str, **overrides: Any) -> ProvisionerSettings:
    values: dict[str, Any] = {
        "production_mode": False,
        "gateway_public_url": gateway,
        "webhook_secret_overlap": timedelta(minutes=10),
    }
    values.update(overrides)
    return load_settings(ProvisionerSettings, **values)


@asynccontextmanager
async def harness(
    sim: Simulator,
    dsn: str,
    *,
    gateway: str,
    name: str = "acme",
    scope: SyncScope | None = None,
    kafka: str | None = None,
    topic_prefix: str | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """A provisioner for ``sim`` as connection ``name``; with ``kafka``, sweep requests go to a
    control topic of its own (``topic_prefix``)."""
    box = SecretBox([KEY])
    pool = await create_pool(dsn, min_size=1, max_size=4)
    producer: AIOKafkaProducer | None = None
    topics = None
    publisher = None
    try:
        if kafka is not None:
            topics = Topics(prefix=topic_prefix or "autotask")
            await ensure_topics(
                kafka,
                [s for s in topics.declarations([]) if s.name == topics.control],
                replication_factor=1,
            )
            producer = make_producer(kafka, client_id="provisioner-test")
            await producer.start()
            publisher = KafkaSweepPublisher(producer, topics.control)
        configured = provisioner_settings(gateway, **settings)
        provisioner = Provisioner(
            settings=configured,
            pool=pool,
            box=box,
            publisher=publisher,
            propagation=timedelta(milliseconds=20),
        )
        served = ServedConnection(
            connection=connection_for(sim, name=name), scope=scope or SyncScope()
        )
        async with AutotaskClient(served.connection, config=CLIENT_CONFIG) as client:
            yield Harness(sim, pool, box, configured, provisioner, served, client, topics, kafka)
    finally:
        if producer is not None:
            await producer.stop()
        await pool.close()

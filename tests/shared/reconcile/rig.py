"""A reconciliation set-up for one test: a migrated database, its own topics, a simulated tenant
served as connection ``acme``, and the Reconciler the services and commands use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.autotask import ClientConfig, RetryPolicy
from shared.connections.catalogue import ConnectionCatalogue, ServedConnection
from shared.db import create_pool
from shared.entities import EntitySpec, by_rest_name
from shared.kafka import make_producer
from shared.messages.topics import Topics
from shared.reconcile import runs
from shared.reconcile.delete_guard import DeletePolicy
from shared.reconcile.due import Job, Mode
from shared.reconcile.jobs import Options, Reconciler, Result
from shared.reconcile.settings import SweepPolicy
from shared.scope.rules import SyncScope
from tests.helpers.clients import connection_for
from tests.helpers.pipeline import create_topics, mirror_diff
from tools.autotask_sim import Simulator

CONNECTION = "acme"
FAST_RETRIES = ClientConfig(
    retry=RetryPolicy(
        max_attempts=2, base_delay=timedelta(milliseconds=5), deadline=timedelta(seconds=5)
    )
)
"""Retries that do not slow tests down (a failing page fails within milliseconds)."""


@dataclass
class Rig:
    dsn: str
    bootstrap: str
    topics: Topics
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    sim: Simulator
    catalogue: ConnectionCatalogue
    policy: SweepPolicy
    reconcilers: list[Reconciler] = field(default_factory=list)

    def reconciler(self) -> Reconciler:
        """Another replica's reconciler (same database, same tenant)."""
        reconciler = Reconciler(
            catalogue=self.catalogue,
            pool=self.pool,
            producer=self.producer,
            topics=self.topics,
            dsn=self.dsn,
            policy=self.policy,
        )
        self.reconcilers.append(reconciler)
        return reconciler

    async def run(
        self,
        entity: str | EntitySpec,
        mode: Mode = "incremental",
        *,
        trigger: runs.Trigger = "cli",
        since: datetime | None = None,
        options: Options | None = None,
        reconciler: Reconciler | None = None,
    ) -> Result:
        name = entity if isinstance(entity, str) else entity.rest_name
        job = Job(CONNECTION, name, mode, trigger, since=since, requested_at=datetime.now(UTC))
        return await (reconciler or self.reconcilers[0]).run(job, options)

    async def diff(self, *entities: EntitySpec) -> dict[str, Any]:
        return await mirror_diff(self.dsn, CONNECTION, self.sim, entities)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as db:
            return list(await db.fetch(query, *args))

    async def live(self, entity: EntitySpec) -> set[int]:
        rows = await self.fetch(
            f"SELECT id FROM {entity.mirror_table} WHERE connection = $1 "  # noqa: S608 - registry name
            "AND deleted_at IS NULL AND out_of_scope_at IS NULL",
            CONNECTION,
        )
        return {r["id"] for r in rows}


@asynccontextmanager
async def reconcile_rig(
    dsn: str,
    bootstrap: str,
    unique: str,
    sim: Simulator,
    *,
    scope: SyncScope | None = None,
    page_size: int = 500,
    deletes: DeletePolicy | None = None,
) -> AsyncIterator[Rig]:
    topics = await create_topics(bootstrap, f"r{unique}", partitions=1)
    pool = await create_pool(dsn, min_size=1, max_size=6)
    producer = make_producer(bootstrap, client_id="test-reconcile")
    await producer.start()
    catalogue = ConnectionCatalogue(
        environment=ServedConnection(
            connection=connection_for(sim, name=CONNECTION),
            scope=scope or SyncScope(),
            source="environment",
        ),
        database_url=None,
        box=None,
        default_zone_lookup_url=sim.zone_lookup_url,
        client_config=FAST_RETRIES,
    )
    policy = SweepPolicy(page_size=page_size, deletes=deletes or DeletePolicy())
    try:
        async with catalogue:
            rig = Rig(dsn, bootstrap, topics, pool, producer, sim, catalogue, policy)
            rig.reconciler()
            yield rig
    finally:
        await producer.stop()
        await pool.close()


def entities(*names: str) -> list[EntitySpec]:
    return [by_rest_name(n) for n in names]


def ids_of(rows: Iterable[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


__all__ = ["CONNECTION", "FAST_RETRIES", "Rig", "entities", "ids_of", "reconcile_rig"]

"""What the operator commands open: the settings, the database pool, the secret box and a Kafka
producer.

Commands read the same environment as the services (``DATABASE_URL``,
``AUTOTASK_SYNC_SECRET_KEYS``...), so a command run in a pod's shell sees what the pod sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from shared.db import Pool, create_pool, database_dsn
from shared.kafka import client_config, make_producer, require_topics, start_client
from shared.kafka.producer import AnyProducer
from shared.secrets import SecretBox
from shared.settings import AutotaskSettings, BaseServiceSettings


@dataclass(frozen=True, slots=True)
class Store:
    """A small pool and the settings it came from; the box is built when first needed."""

    pool: Pool
    settings: AutotaskSettings

    def box(self) -> SecretBox:
        """The secret box; ConfigError naming AUTOTASK_SYNC_SECRET_KEYS when it is not set."""
        return SecretBox.from_setting(self.settings.secret_keys)


@asynccontextmanager
async def open_store(settings: AutotaskSettings) -> AsyncIterator[Store]:
    """Open a pool of two sessions for one command; closed when the command ends."""
    pool = await create_pool(database_dsn(settings), min_size=1, max_size=2)
    try:
        yield Store(pool=pool, settings=settings)
    finally:
        await pool.close()


@asynccontextmanager
async def open_producer(
    settings: BaseServiceSettings, *, needs: Sequence[str] = (), role: str = "cli"
) -> AsyncIterator[AnyProducer]:
    """A started Kafka producer for one command (client id ``<KAFKA_CLIENT_ID>-<role>``),
    stopped when the command ends. The topics it ``needs`` must exist first: a missing one is
    refused with the command that creates it, before anything is sent."""
    kafka = client_config(settings)
    if needs:
        await require_topics(kafka, list(needs), client_id=f"{settings.kafka_client_id}-cli-admin")
    producer = make_producer(
        kafka,
        client_id=f"{settings.kafka_client_id}-{role}",
        max_request_size=settings.kafka_max_request_size,
    )
    try:
        await start_client(producer, kafka, what="start the Kafka producer")
        yield producer
    finally:
        await producer.stop()

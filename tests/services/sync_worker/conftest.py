"""A worker deployment for one test: its own topics, consumer group, database and tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio

from shared.messages.topics import Topics
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tests.helpers.pipeline import create_topics
from tests.helpers.processes import ServiceProcess
from tests.helpers.tenants import store_connection
from tools.autotask_sim import Simulator


@dataclass
class Deployment:
    """Where a test's worker lives, and how to start more of it."""

    dsn: str
    bootstrap: str
    topics: Topics
    key: str
    group: str
    log_dir: Path
    workers: list[ServiceProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": self.topics.prefix,
            "AUTOTASK_SYNC_CONSUMER_GROUP": self.group,
            "AUTOTASK_SYNC_SECRET_KEYS": self.key,
            "AUTOTASK_SYNC_WINDOW_LOW": "50ms",
            "AUTOTASK_SYNC_MISSING_RETRY_DELAY": "100ms",
            "AUTOTASK_SYNC_LOG_LEVEL": "INFO",
            # These tests pin the webhook path alone; sweeps are tested in tests/shared/reconcile.
            "AUTOTASK_SYNC_SWEEPS_ENABLED": "false",
            **extra,
        }

    async def connect(self, name: str, sim: Simulator, scope: SyncScope | None = None) -> None:
        await store_connection(self.dsn, SecretBox([self.key]), name, sim, scope=scope)

    async def worker(self, **extra: str) -> ServiceProcess:
        number = len(self.workers) + 1
        process = ServiceProcess(
            "sync_worker", self.env(**extra), log_path=self.log_dir / f"worker-{number}.log"
        )
        self.workers.append(process)
        return await process.start()

    def log(self) -> str:
        return "\n".join(
            (self.log_dir / f"worker-{n}.log").read_text(errors="replace")
            for n in range(1, len(self.workers) + 1)
            if (self.log_dir / f"worker-{n}.log").exists()
        )


@asynccontextmanager
async def deployed(
    dsn: str, bootstrap: str, unique: str, log_dir: Path, *, partitions: int = 4
) -> AsyncIterator[Deployment]:
    """A deployment with its own topics (``partitions`` each) and consumer group; the workers
    started in it are stopped at exit."""
    setup = Deployment(
        dsn=dsn,
        bootstrap=bootstrap,
        topics=await create_topics(bootstrap, f"w{unique}", partitions=partitions),
        key=SecretBox.generate_key(),
        group=f"workers-{unique}",
        log_dir=log_dir,
    )
    try:
        yield setup
    finally:
        for worker in setup.workers:
            await worker.stop()


@pytest_asyncio.fixture
async def deployment(
    migrated_database: str, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    async with deployed(migrated_database, kafka_bootstrap, unique, tmp_path) as setup:
        yield setup

"""A pipeline deployment for end-to-end tests: the services as real processes against the test
session's PostgreSQL and Kafka, simulated tenants signing callouts to the real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from shared.entities import (
    COMPANIES,
    CONFIGURATION_ITEMS,
    CONTACTS,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
)
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.helpers.pipeline import create_topics, differs_only_where_no_callout_is_sent, mirror_diff
from tests.helpers.processes import LocalDeployment, ServiceProcess
from tests.helpers.tenants import store_connection
from tests.helpers.waiting import eventually
from tools.autotask_sim import CalloutConfig, Simulator, SimulatorConfig

ENTITIES = [TICKETS, COMPANIES, CONTACTS, CONFIGURATION_ITEMS, TICKET_NOTES]
"""The entities the deployments give webhooks to, and the tests check."""
WEBHOOK_ENTITIES = ",".join(entity.rest_name for entity in ENTITIES)


def deployment_env(prefix: str) -> dict[str, str]:
    """The variables of an end-to-end deployment besides its servers: consumer groups named
    after ``prefix`` (deployments of other tests share the broker), quick windows."""
    return {
        "AUTOTASK_SYNC_PRODUCTION_MODE": "false",  # the gateway listens on loopback http
        "AUTOTASK_SYNC_WEBHOOK_ENTITIES": WEBHOOK_ENTITIES,
        "AUTOTASK_SYNC_CONSUMER_GROUP": f"{prefix}-workers",
        "AUTOTASK_SYNC_CONTROL_GROUP": f"{prefix}-sweeps",
        "AUTOTASK_SYNC_PROVISIONER_GROUP_ID": f"{prefix}-provisioner",
        "AUTOTASK_SYNC_WINDOW_LOW": "100ms",
        "AUTOTASK_SYNC_LOG_LEVEL": "INFO",
    }


def callout_tenant(seed: int, *, companies: int = 12, tickets: int = 30) -> SimulatorConfig:
    """A small tenant whose callouts retry quickly (timeouts stay realistic)."""
    return SimulatorConfig(
        seed=seed,
        companies=companies,
        contacts=companies,
        configuration_items=companies,
        tickets=tickets,
        ticket_notes=tickets,
        callouts=CalloutConfig(
            timeout=timedelta(seconds=5), retry_delay=timedelta(milliseconds=200)
        ),
    )


@dataclass
class Pipeline:
    """The deployment plus the handles tests need."""

    deployment: LocalDeployment
    topics: Topics
    gateway: ServiceProcess | None = None
    worker: ServiceProcess | None = None

    @property
    def dsn(self) -> str:
        return self.deployment.dsn

    @property
    def bootstrap(self) -> str:
        return self.deployment.bootstrap

    async def connect(self, name: str, sim: Simulator) -> None:
        """Store a connection for ``sim`` (as ``connections add`` does)."""
        await store_connection(self.dsn, SecretBox([self.deployment.secret_key]), name, sim)

    async def start_services(self, *, sweeps: bool = False, **extra: str) -> None:
        self.gateway = await self.deployment.start("webhook_gateway", **extra)
        self.deployment.extra_env["AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"] = self.gateway.url
        self.worker = await self.deployment.start(
            "sync_worker", AUTOTASK_SYNC_SWEEPS_ENABLED=str(sweeps).lower(), **extra
        )

    async def provision(self, name: str) -> None:
        result = await self.deployment.cli("provision", "apply", "--connection", name)
        assert result.code == 0, result.out + result.err

    async def backfill(self, name: str, entities: Iterable[EntitySpec]) -> None:
        args = [arg for e in entities for arg in ("--entity", e.rest_name)]
        result = await self.deployment.cli("backfill", "--connection", name, *args)
        assert result.code == 0, result.out + result.err

    async def sweep(self, name: str, entities: Iterable[EntitySpec]) -> str:
        """One quick sync (``autotask-sync sweep``) of ``entities``; returns what it printed."""
        args = [arg for e in entities for arg in ("--entity", e.rest_name)]
        result = await self.deployment.cli("sweep", "--connection", name, *args)
        assert result.code == 0, result.out + result.err
        return result.out

    async def converges(
        self,
        name: str,
        sim: Simulator,
        entities: Sequence[EntitySpec] = ENTITIES,
        *,
        what: str | None = None,
    ) -> None:
        """What webhooks deliver reaches the mirror on its own (``what`` names the wait); what
        they cannot deliver (Autotask sends no callout for a ticket whose only change is a
        note's ``lastActivityDate``, nor for the notes a deleted ticket takes with it) is
        exactly what one quick sync repairs: then the mirror equals the tenant."""
        try:
            await eventually(
                lambda: differs_only_where_no_callout_is_sent(self.dsn, name, sim, entities),
                within=timedelta(seconds=20),
                interval=timedelta(milliseconds=250),
                what=what or f"the mirror of {name!r} to differ only where no callout is sent",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from exc
        swept = await self.sweep(name, entities)
        assert await mirror_diff(self.dsn, name, sim, entities) == {}, swept

    def logs(self, lines: int = 40) -> str:
        """The end of every service's log, for a failing assertion's message."""
        return self.deployment.logs(lines)


@asynccontextmanager
async def pipeline_for(
    dsn: str, bootstrap: str, unique: str, log_dir: Path
) -> AsyncIterator[Pipeline]:
    """Topics and a deployment; every service stops when the context exits."""
    topics = await create_topics(bootstrap, f"e{unique}", partitions=4)
    deployment = LocalDeployment(
        dsn=dsn,
        bootstrap=bootstrap,
        topic_prefix=topics.prefix,
        secret_key=SecretBox.generate_key(),
        log_dir=log_dir,
        extra_env=deployment_env(topics.prefix),
    )
    try:
        yield Pipeline(deployment=deployment, topics=topics)
    finally:
        await deployment.stop()

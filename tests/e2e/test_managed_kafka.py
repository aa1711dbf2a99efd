"""The pipeline against Kafka as managed services offer it: SASL (SCRAM-SHA-512) over TLS, a
private CA, the password in a file like a mounted Secret.

simulator -> gateway (process) -> Kafka over SASL_SSL -> worker (process) -> PostgreSQL + change
topics; the provisioner service and the ``provision``, ``backfill`` and ``sweep`` commands use
the same listener. A broker of this module's own serves it (its PLAINTEXT port is used by
nothing here). A service given the wrong password stops at once with one line that says what to
check, and no service ever writes the password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from shared.kafka import KafkaClientConfig, ensure_topics
from shared.kafka.reader import read_to_end
from shared.messages.topics import Topics
from shared.secrets import SecretBox
from tests.e2e.harness import ENTITIES, Pipeline, callout_tenant, deployment_env
from tests.helpers.contracts import assert_valid
from tests.helpers.kafka_security import (
    USER,
    listeners_of,
    secured_broker,
    security_env,
    settings_from,
)
from tests.helpers.processes import LocalDeployment, ServiceProcess
from tests.helpers.servers import Broker
from tools.autotask_sim import run_simulator

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with secured_broker(tmp_path_factory.mktemp("managed-kafka")) as started:
        yield started


@dataclass
class Managed:
    """A deployment whose every Kafka client goes through the SASL_SSL listener."""

    pipeline: Pipeline
    kafka: KafkaClientConfig
    password: str

    async def read(self, topic: str) -> list[Any]:
        return [record async for record in read_to_end(self.kafka, topic)]


@pytest_asyncio.fixture
async def managed(
    broker: Broker, migrated_database: str, unique: str, tmp_path: Path
) -> AsyncIterator[Managed]:
    listeners = listeners_of(broker)
    env = security_env(listeners, tmp_path / "secrets", mechanism="SCRAM-SHA-512")
    kafka = KafkaClientConfig.from_settings(settings_from(env))
    topics = Topics(prefix=f"m{unique}", partitions=2)
    await ensure_topics(kafka, topics.declarations(), replication_factor=1)
    deployment = LocalDeployment(
        dsn=migrated_database,
        bootstrap=env.pop("KAFKA_BOOTSTRAP_SERVERS"),
        topic_prefix=topics.prefix,
        secret_key=SecretBox.generate_key(),
        log_dir=tmp_path,
        extra_env={**env, **deployment_env(topics.prefix)},
    )
    try:
        yield Managed(Pipeline(deployment=deployment, topics=topics), kafka, listeners.users[USER])
    finally:
        await deployment.stop()


async def test_callouts_become_rows_and_change_events_over_sasl_ssl(managed: Managed) -> None:
    pipeline = managed.pipeline
    async with run_simulator(callout_tenant(41, companies=8, tickets=16)) as sim:
        await pipeline.connect("acme", sim)
        await pipeline.start_services()
        await pipeline.deployment.start("provisioner")
        await pipeline.provision("acme")
        await pipeline.backfill("acme", ENTITIES)
        sim.apply_changes(60, seed=9)
        await sim.wait_for_callouts(max_wait=timedelta(seconds=30))

        await pipeline.converges(
            "acme", sim, what="the callouts to reach the mirror through Kafka over SASL_SSL"
        )

    callouts = await managed.read(pipeline.topics.callouts)
    assert callouts, "no callout went through the SASL_SSL listener"
    assert {dict(m.headers)["connection"] for m in callouts} == {b"acme"}
    for entity in ENTITIES:
        topic = pipeline.topics.changes(entity)
        changes = await managed.read(topic)
        assert changes, f"no change event on {topic}"
        assert_valid(topic, changes)
    for service in pipeline.deployment.services:
        assert managed.password not in service.log(), f"{service.name} wrote the password"


async def test_a_service_with_a_wrong_password_stops_at_once_saying_what_to_check(
    managed: Managed, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-7\n")
    deployment = managed.pipeline.deployment
    worker = ServiceProcess(
        "sync_worker",
        deployment.env(AUTOTASK_SYNC_KAFKA_SASL_PASSWORD_FILE=str(wrong)),
        log_path=tmp_path / "worker.log",
    )
    await worker.start(ready=None)
    try:
        code = await worker.wait(timedelta(seconds=60))
    finally:
        await worker.kill()
    # Besides aiokafka's own line per refused connection: the service's one line.
    errors = [
        line
        for line in worker.log_lines()
        if line.get("level") == "error" and line.get("logger") != "aiokafka"
    ]
    assert code == 1, worker.log()
    assert [line["event"] for line in errors] == ["service could not start"], worker.log()
    assert errors[0]["error"].startswith("could not start the Kafka producer: Kafka at 127.0.0.1:")
    assert (
        "refused the SASL credentials (SCRAM-SHA-512 as 'autotask-sync'): check "
        "AUTOTASK_SYNC_KAFKA_SASL_USERNAME / AUTOTASK_SYNC_KAFKA_SASL_PASSWORD (or _FILE) and "
        "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM"
    ) in errors[0]["error"]
    assert "dependency not reachable yet" not in worker.log()  # refused, so not retried
    assert "not-the-password-7" not in worker.log()

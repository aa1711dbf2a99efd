"""The reconciler as a real process: it backfills a new connection on its own, runs catch-up
sweeps asked for on the control topic (once per duplicate pair), and exports its metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.db import connect
from shared.entities import REGISTRY, TICKETS
from shared.kafka import make_producer, produce
from shared.messages.control import SweepRequested, encode_control
from shared.secrets import SecretBox
from tests.helpers.clients import truth
from tests.helpers.pipeline import create_topics, read_topic, wait_for_mirror
from tests.helpers.processes import ServiceProcess, metric_total
from tests.helpers.tenants import small_tenant, store_connection, tenants
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration


async def _runs(dsn: str) -> list[dict[str, object]]:
    db = await connect(dsn)
    try:
        rows = await db.fetch("SELECT entity, mode, status, trigger FROM sync_runs ORDER BY id")
    finally:
        await db.close()
    return [dict(r) for r in rows]


async def _finished(dsn: str, mode: str, count: int) -> list[dict[str, object]]:
    """The ``count`` runs of ``mode``, once there are that many and none still runs."""
    runs = [r for r in await _runs(dsn) if r["mode"] == mode]
    assert len(runs) == count, runs
    assert all(r["status"] != "running" for r in runs), runs
    return runs


async def test_first_load_and_catch_up_requests_from_the_control_topic(
    migrated_database: str, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=1)
    key = SecretBox.generate_key()
    async with tenants(small_tenant(81)) as (sim,):
        await store_connection(migrated_database, SecretBox([key]), "acme", sim)
        service = ServiceProcess(
            "reconciler",
            {
                "DATABASE_URL": migrated_database,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
                "AUTOTASK_SYNC_CONTROL_GROUP": f"sweeps-{unique}",
                "AUTOTASK_SYNC_SECRET_KEYS": key,
                "AUTOTASK_SYNC_SWEEP_INTERVAL": "1h",
                "AUTOTASK_SYNC_ID_SWEEP_INTERVAL": "1h",
                "AUTOTASK_SYNC_SWEEP_CHECK_INTERVAL": "500ms",
                "AUTOTASK_SYNC_SWEEP_CONCURRENCY": "3",
            },
            log_path=tmp_path / "reconciler.log",
        )
        await service.start()
        try:
            assert await wait_for_mirror(migrated_database, "acme", sim, REGISTRY) == {}
            backfills = await eventually(
                lambda: _finished(migrated_database, "backfill", len(REGISTRY)),
                interval=timedelta(milliseconds=100),
            )
            assert {r["status"] for r in backfills} == {"succeeded"}

            # The provisioner found the Tickets webhook deactivated and recreated it.
            gap = datetime.now(UTC) - timedelta(minutes=30)
            ticket = truth(sim, "Tickets")[3]
            sim.update_entity("Tickets", ticket["id"], {"title": "Edited while deaf"})
            request = SweepRequested(connection="acme", entity="Tickets", since=gap,
                                     reason="webhook reactivated")  # fmt: skip
            producer = make_producer(kafka_bootstrap, client_id="test-provisioner")
            await producer.start()
            try:
                for _ in range(2):  # delivered twice: handled once
                    k, v = encode_control(request)
                    await produce(producer, topics.control, key=k, value=v)
            finally:
                await producer.stop()
            assert await wait_for_mirror(migrated_database, "acme", sim, [TICKETS]) == {}
            catchups = await eventually(
                lambda: _finished(migrated_database, "catchup", 2),
                interval=timedelta(milliseconds=100),
            )
            assert sorted(str(r["status"]) for r in catchups) == ["skipped", "succeeded"]
            assert {r["trigger"] for r in catchups} == {"control"}

            metrics = await service.metrics()
            assert metric_total(metrics, "autotask_sync_sweep_repaired_total",
                                connection="acme", entity="Tickets") == 1  # fmt: skip
            assert metric_total(metrics, "autotask_sync_sweep_runs_total", mode="backfill",
                                outcome="succeeded") == len(REGISTRY)  # fmt: skip
        finally:
            assert await service.stop() == 0
    announced = [json.loads(m.value) for m in await read_topic(kafka_bootstrap, topics.control)]
    assert sum(1 for e in announced if e["type"] == "backfill_finished") == len(REGISTRY)

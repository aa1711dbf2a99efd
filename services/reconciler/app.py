"""Wires the reconciler's parts together; the parts themselves hold no wiring.

Start order: PostgreSQL pool and Kafka producer (change events, BackfillFinished), the
connection catalogue, the topic check, then the sweeps (:func:`shared.reconcile.scheduler.
start_sweeps`: the scheduler loop and the control-topic consumer of SweepRequested in group
``autotask-sync-reconciler``). On SIGTERM runs stop after their current durable page (complete
reads resume from their id cursor) and everything closes in reverse order. One-shot runs for a
CronJob are the ``autotask-sync sweep|backfill|resync|refresh-metadata`` commands.
"""

from __future__ import annotations

from services.reconciler.settings import ReconcilerSettings
from shared.connections.catalogue import ConnectionCatalogue
from shared.entities import REGISTRY
from shared.kafka import client_config, require_topics
from shared.messages.topics import Topics
from shared.reconcile.scheduler import start_sweeps
from shared.runtime.bootstrap import open_base_resources, serve_ops
from shared.runtime.runner import ServiceRunner


async def start(runner: ServiceRunner, settings: ReconcilerSettings) -> None:
    """Open the resources in order, start the sweeps and serve the ops endpoints."""
    resources = await open_base_resources(runner, settings, kafka=True)
    assert resources.producer is not None
    topics = Topics(prefix=settings.topic_prefix)
    await require_topics(
        client_config(settings),
        [topics.control, *(topics.changes(e) for e in REGISTRY)],
        client_id=f"{settings.kafka_client_id}-{runner.name}-admin",
    )
    catalogue = await runner.enter(ConnectionCatalogue.from_settings(settings))
    await start_sweeps(
        runner,
        settings,
        catalogue=catalogue,
        pool=resources.pool,
        producer=resources.producer,
        topics=topics,
    )
    await serve_ops(
        runner, settings, checks=resources.readiness_checks(), progress=resources.progress
    )

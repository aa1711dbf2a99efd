"""Wires the sync worker's parts together; the parts themselves hold no wiring.

Start order: PostgreSQL pool and Kafka producer, the connection catalogue, the consumer (manual
commits, subscribed with the rebalance listener), then the two loops: the consumer feeding the
pipeline, the pipeline turning buckets into durable work. On SIGTERM the consumer stops fetching,
the pipeline flushes its buckets and finishes its units, the consumer commits what finished, and
everything closes in reverse order.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiokafka import AIOKafkaConsumer

from services.sync_worker.coalesce import WindowPolicy
from services.sync_worker.dlq import DeadLetters
from services.sync_worker.pipeline import CalloutPipeline, PipelineConfig
from services.sync_worker.settings import WorkerSettings
from shared.connections.catalogue import ConnectionCatalogue
from shared.entities import synced_entities
from shared.errors import KafkaError
from shared.kafka import make_consumer, require_topics, started
from shared.kafka.consumer import ConsumerConfig, StreamConsumer
from shared.kafka.errors import kafka_errors
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.metrics import WORKER_CONSUMER_LAG, WORKER_IN_FLIGHT
from shared.mirror.writer import Mirror
from shared.reconcile.scheduler import start_sweeps
from shared.runtime.bootstrap import open_base_resources, serve_ops
from shared.runtime.ops import ReadinessCheck
from shared.runtime.runner import ServiceRunner, aiter_until

log = get_logger(__name__)

LAG_INTERVAL = timedelta(seconds=5)
REGISTRY_SYNCED = tuple(synced_entities())


def pipeline_config(settings: WorkerSettings) -> PipelineConfig:
    """The pipeline's tuning from the settings."""
    first = settings.missing_retry_delay
    return PipelineConfig(
        window=WindowPolicy(
            low=settings.window_low,
            medium=settings.window_medium,
            high=settings.window_high,
            medium_at=settings.window_medium_at,
            high_at=settings.window_high_at,
        ),
        max_ids_per_fetch=settings.max_ids_per_fetch,
        missing_retry_delays=tuple(first * 2**i for i in range(settings.missing_retries)),
        dead_letter_after=settings.dead_letter_after,
        dead_letter_min_age=settings.dead_letter_min_age,
        retry_delay_max=settings.retry_delay_max,
        concurrent_units=settings.concurrent_units,
    )


async def start(runner: ServiceRunner, settings: WorkerSettings) -> None:
    """Open the resources in order, start the loops and serve the ops endpoints."""
    resources = await open_base_resources(runner, settings, kafka=True)
    assert resources.producer is not None
    topics = Topics(prefix=settings.topic_prefix)
    # Fail at once, saying what to do, rather than wait for topics nobody is going to create.
    await require_topics(
        settings.kafka_bootstrap_servers,
        [topics.callouts, topics.callouts_dlq, *(topics.changes(e) for e in REGISTRY_SYNCED)],
        client_id=f"{settings.kafka_client_id}-{runner.name}-admin",
    )
    catalogue = await runner.enter(ConnectionCatalogue.from_settings(settings))
    consumer = make_consumer(
        settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id=f"{settings.kafka_client_id}-{runner.name}",
        max_poll_records=500,
    )
    stream = StreamConsumer(consumer, ConsumerConfig(max_in_flight=settings.max_in_flight))
    consumer.subscribe([topics.callouts], listener=stream.rebalance_listener())
    await runner.enter(started(consumer, what="callouts"))
    pipeline = CalloutPipeline(
        catalogue=catalogue,
        pool=resources.pool,
        mirror=Mirror(resources.pool, resources.producer, topics),
        dead_letters=DeadLetters(resources.producer, topics),
        finished=stream.finished,
        config=pipeline_config(settings),
    )
    runner.spawn(_work(stream, pipeline, runner.stopping), name="callouts")
    runner.spawn(_report_lag(consumer, stream, runner.stopping), name="lag")
    if settings.sweeps_enabled:
        await require_topics(
            settings.kafka_bootstrap_servers,
            [topics.control],
            client_id=f"{settings.kafka_client_id}-{runner.name}-admin",
        )
        await start_sweeps(
            runner,
            settings,
            catalogue=catalogue,
            pool=resources.pool,
            producer=resources.producer,
            topics=topics,
        )
    checks = resources.readiness_checks()
    checks["connections"] = _catalogue_check(catalogue)
    await serve_ops(runner, settings, checks=checks)


async def _work(stream: StreamConsumer, pipeline: CalloutPipeline, stop: asyncio.Event) -> None:
    """Both loops. On stop the pipeline flushes its buckets at once and finishes its units while
    the consumer, no longer fetching, waits for them and commits last. If either loop fails, the
    other is stopped too and the failure stops the service (a worker that silently stopped
    processing would only show as lag)."""
    halt = asyncio.Event()
    processing = asyncio.create_task(pipeline.run(halt), name="pipeline")
    consuming = asyncio.create_task(stream.run(pipeline, halt), name="consumer")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({processing, consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.set()
        stopping.cancel()
        results = await asyncio.gather(processing, consuming, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _report_lag(
    consumer: AIOKafkaConsumer, stream: StreamConsumer, stop: asyncio.Event
) -> None:
    async for _ in aiter_until(stop, LAG_INTERVAL):
        WORKER_IN_FLIGHT.set(stream.in_flight)
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None:
                continue
            try:
                with kafka_errors("read the consumer's position"):
                    position = await consumer.position(partition)
            except KafkaError:
                continue  # revoked meanwhile, or the broker is away: the next round measures
            WORKER_CONSUMER_LAG.labels(str(partition.partition)).set(max(0, highwater - position))


def _catalogue_check(catalogue: ConnectionCatalogue) -> ReadinessCheck:
    async def check() -> None:
        if not catalogue.loaded:
            raise RuntimeError("connections not loaded")

    return check

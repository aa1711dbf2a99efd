"""Wires the sync worker's parts together; the parts themselves hold no wiring.

Start order: PostgreSQL pool and Kafka producer, the connection catalogue, the consumer (manual
commits, subscribed with the rebalance listener), then the two loops: the consumer feeding the
pipeline, the pipeline turning buckets into durable work. On SIGTERM the consumer stops fetching,
the pipeline flushes its buckets and finishes its units, the consumer commits what finished, and
everything closes in reverse order. A rebalance does the same for the partitions it revokes, within
``REVOKE_WAIT`` (shared/kafka/consumer.py), and their lag is no longer exported.

The worker's progress (``/readyz``, ``/healthz``): callouts waiting (lag and in flight on the
partitions it owns) while no offset is committed make it a stalled part named ``callouts``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from services.sync_worker.coalesce import WindowPolicy
from services.sync_worker.dlq import DeadLetters
from services.sync_worker.lag import OwnedLag
from services.sync_worker.pipeline import CalloutPipeline, PipelineConfig
from services.sync_worker.settings import REVOKE_COMMIT_WAIT, WorkerSettings
from shared.connections.catalogue import ConnectionCatalogue
from shared.entities import synced_entities
from shared.kafka import client_config, make_consumer, require_topics, started
from shared.kafka.consumer import ConsumerConfig, StreamConsumer
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.metrics import WORKER_IN_FLIGHT
from shared.mirror.writer import Mirror
from shared.reconcile.scheduler import start_sweeps
from shared.runtime.bootstrap import open_base_resources, serve_ops, watch_progress
from shared.runtime.ops import ReadinessCheck
from shared.runtime.runner import ServiceRunner, aiter_until

log = get_logger(__name__)

LAG_INTERVAL = timedelta(seconds=5)
REGISTRY_SYNCED = tuple(synced_entities())


def consumer_config(settings: WorkerSettings) -> ConsumerConfig:
    """The consumer loop's tuning from the settings."""
    return ConsumerConfig(
        max_in_flight=settings.max_in_flight,
        revoke_wait=settings.revoke_wait,
        revoke_commit_wait=REVOKE_COMMIT_WAIT,
    )


def _ms(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


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
    kafka = client_config(settings)
    await require_topics(
        kafka,
        [topics.callouts, topics.callouts_dlq, *(topics.changes(e) for e in REGISTRY_SYNCED)],
        client_id=f"{settings.kafka_client_id}-{runner.name}-admin",
    )
    catalogue = await runner.enter(ConnectionCatalogue.from_settings(settings))
    consumer = make_consumer(
        kafka,
        group_id=settings.consumer_group,
        client_id=f"{settings.kafka_client_id}-{runner.name}",
        max_poll_records=500,
        session_timeout_ms=_ms(settings.consumer_session_timeout),
        heartbeat_interval_ms=_ms(settings.consumer_heartbeat_interval),
        rebalance_timeout_ms=_ms(settings.consumer_rebalance_timeout),
    )
    lag = OwnedLag()
    stream = StreamConsumer(
        consumer,
        consumer_config(settings),
        on_commit=lambda _offsets: progress.advanced(),
        on_revoke=lag.forget,
    )
    # Work waiting for this worker: behind the end of its partitions, or handed out and not
    # durable yet. It moves when offsets are committed.
    progress = watch_progress(
        runner,
        settings,
        "callouts",
        pending=lambda: lag.total + stream.in_flight,
        what="callouts",
        excused=lambda: pipeline.waiting_on_autotask(),
    )
    consumer.subscribe([topics.callouts], listener=stream.rebalance_listener())
    await runner.enter(started(consumer, kafka, what="callouts"))
    pipeline = CalloutPipeline(
        catalogue=catalogue,
        pool=resources.pool,
        mirror=Mirror(
            resources.pool, resources.producer, topics, value_format=settings.change_value_format
        ),
        dead_letters=DeadLetters(resources.producer, topics),
        finished=stream.finished,
        config=pipeline_config(settings),
    )
    runner.spawn(_work(stream, pipeline, runner.stopping), name="callouts")
    runner.spawn(_report_lag(stream, lag, runner.stopping), name="lag")
    if settings.sweeps_enabled:
        await require_topics(
            kafka,
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
    await serve_ops(runner, settings, checks=checks, progress=[progress, *resources.progress])


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


async def _report_lag(stream: StreamConsumer, lag: OwnedLag, stop: asyncio.Event) -> None:
    """Measure and export the lag of the partitions owned now (and no others) every
    ``LAG_INTERVAL``."""
    async for _ in aiter_until(stop, LAG_INTERVAL):
        WORKER_IN_FLIGHT.set(stream.in_flight)
        measured = await stream.lag()
        lag.update(measured, stream.owned())


def _catalogue_check(catalogue: ConnectionCatalogue) -> ReadinessCheck:
    async def check() -> None:
        if not catalogue.loaded:
            raise RuntimeError("connections not loaded")

    return check

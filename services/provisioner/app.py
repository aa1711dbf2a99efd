"""Wires the provisioner's parts together; the parts themselves hold no wiring.

Start order: PostgreSQL pool and Kafka producer, the connection catalogue, the control-topic
consumer, the healing loops, the ops endpoints. Shutdown runs in reverse: loops finish their
current pass (or are cancelled after the grace period, which a later pass recovers from).
"""

from __future__ import annotations

from datetime import timedelta

from services.provisioner.control import KafkaSweepPublisher, consume
from services.provisioner.healing import Healer
from services.provisioner.provision import CLIENT_CONFIG, Provisioner
from services.provisioner.settings import ProvisionerSettings
from shared.connections.catalogue import ConnectionCatalogue
from shared.kafka import client_config, control_consumer
from shared.messages.topics import Topics
from shared.runtime.bootstrap import open_base_resources, serve_ops
from shared.runtime.runner import ServiceRunner
from shared.secrets import SecretBox

PROPAGATION = timedelta(seconds=1)
"""Pause between a registration change and Autotask using it (gateways reload meanwhile)."""


async def start(runner: ServiceRunner, settings: ProvisionerSettings) -> None:
    """Open the resources in order, start the loops and serve the ops endpoints."""
    resources = await open_base_resources(runner, settings, kafka=True)
    assert resources.producer is not None
    topics = Topics(prefix=settings.topic_prefix)
    catalogue = await runner.enter(
        ConnectionCatalogue.from_settings(settings, client_config=CLIENT_CONFIG)
    )
    keys = settings.secret_keys.get_secret_value()
    provisioner = Provisioner(
        settings=settings,
        pool=resources.pool,
        box=SecretBox.from_setting(keys) if keys else None,
        publisher=KafkaSweepPublisher(resources.producer, topics.control),
        metadata_ttl=settings.provisioner_metadata_ttl,
        propagation=PROPAGATION,
    )
    healer = Healer(
        provisioner=provisioner,
        catalogue=catalogue,
        interval=settings.provisioner_interval,
        window=settings.provisioner_event_coalesce,
        deactivation_window=settings.provisioner_deactivation_window,
    )
    consumer = await runner.enter(
        control_consumer(
            client_config(settings),
            topics.control,
            group_id=settings.provisioner_group_id,
            client_id=f"{settings.kafka_client_id}-{runner.name}",
            commit_on_stop=True,
        )
    )
    runner.spawn(healer.run(runner.stopping), "healing")
    runner.spawn(
        consume(
            consumer,
            lambda connection, at, trigger: healer.notify(connection, at, trigger=trigger),
            runner.stopping,
        ),
        "control-consumer",
    )
    await serve_ops(
        runner, settings, checks=resources.readiness_checks(), progress=resources.progress
    )

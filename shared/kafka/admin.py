"""Topic creation: the Kafka admin boundary (aiokafka errors become KafkaError here).

Services check their topics before they start (:func:`require_topics`), which makes the admin
client the first to connect in some of them: a client that cannot connect says why in one line
naming the setting to fix (:func:`shared.kafka.factory.start_client`).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import ConfigError, KafkaError
from shared.kafka.factory import make_consumer, start_client
from shared.kafka.security import KafkaClientConfig
from shared.logging import get_logger
from shared.messages.topics import TopicSpec

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


def _admin(kafka: KafkaClientConfig, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(client_id=client_id, **kafka.options())


async def missing_topics(
    kafka: KafkaClientConfig | str,
    names: Iterable[str],
    *,
    client_id: str = "autotask-sync-admin",
) -> list[str]:
    """Which of ``names`` do not exist on the cluster (services check before they start)."""
    wanted = list(names)
    config = KafkaClientConfig.of(kafka)
    admin = _admin(config, client_id)
    try:
        await start_client(admin, config, what="list the Kafka topics")
        existing = set(await admin.list_topics())
    except AIOKafkaError as exc:
        raise KafkaError(
            f"could not list Kafka topics at {config.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await admin.close()
    return [name for name in wanted if name not in existing]


async def require_topics(
    kafka: KafkaClientConfig | str,
    names: Iterable[str],
    *,
    client_id: str = "autotask-sync-admin",
) -> None:
    """ConfigError naming the missing topics and the command that creates them."""
    missing = await missing_topics(kafka, names, client_id=client_id)
    if missing:
        raise ConfigError(
            f"Kafka topic(s) {', '.join(missing)} do not exist: create them with "
            "`autotask-sync topics ensure` (or declare them as KafkaTopic resources; "
            "`autotask-sync topics list` prints what to declare)"
        )


async def consumer_lag(
    kafka: KafkaClientConfig | str,
    group: str,
    topic: str,
    *,
    client_id: str = "autotask-sync-admin",
) -> dict[int, int]:
    """Per partition of ``topic``: messages after the group's committed offset (all of them
    when the group has committed nothing there)."""
    config = KafkaClientConfig.of(kafka)
    admin = _admin(config, client_id)
    consumer = make_consumer(config, group_id=None, client_id=client_id)
    try:
        await start_client(admin, config, what=f"read the lag of group {group}")
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group)
        metadata = await consumer._client.fetch_all_metadata()  # aiokafka has no public call
        partitions = [TopicPartition(topic, p) for p in metadata.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions) if partitions else {}
    except AIOKafkaError as exc:
        raise KafkaError(f"could not read the lag of group {group}: {exc!r}") from exc
    finally:
        await consumer.stop()
        await admin.close()
    lag = {}
    for partition, end in ends.items():
        done = committed.get(partition)
        lag[partition.partition] = max(0, end - (done.offset if done is not None else 0))
    return lag


async def ensure_topics(
    kafka: KafkaClientConfig | str,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 3,
    client_id: str = "autotask-sync-admin",
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    ``replication_factor`` is lowered to the number of brokers when the cluster is smaller (a
    single local broker), with a warning, so the same call works in development and production.
    Existing topics are left as they are: changing partitions or config is an operator's decision.
    """
    specs = list(specs)
    config = KafkaClientConfig.of(kafka)
    admin = _admin(config, client_id)
    try:
        await start_client(admin, config, what="create the Kafka topics")
        brokers = len((await admin.describe_cluster())["brokers"])
        existing = set(await admin.list_topics())
        wanted = [spec for spec in specs if spec.name not in existing]
        if not wanted:
            return []
        rf = min(replication_factor, brokers)
        if rf < replication_factor:
            log.warning(
                "replication factor lowered to the broker count",
                wanted=replication_factor,
                brokers=brokers,
            )
        response = await admin.create_topics(
            [NewTopic(spec.name, spec.partitions, rf, topic_configs=spec.config) for spec in wanted]
        )
    except AIOKafkaError as exc:
        raise KafkaError(
            f"could not create Kafka topics at {config.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await admin.close()

    created = []
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        if code == 0:
            created.append(name)
        elif code != _TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race: fine
            message = topic_error[2] if len(topic_error) > 2 else ""
            raise KafkaError(f"creating topic {name} failed with error {code}: {message}")
    if created:
        log.info("created Kafka topics", topics=created)
    return created

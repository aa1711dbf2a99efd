"""Topics and consumer groups: the Kafka admin boundary (aiokafka errors become KafkaError here).

Services check their topics before they start (:func:`require_topics`), which makes the admin
client the first to connect in some of them: a client that cannot connect says why in one line
naming the setting to fix (:func:`shared.kafka.factory.start_client`).

:class:`GroupInspector` reads a consumer group from outside (``autotask-sync status``): whether
anyone consumes, how far behind it is, and the messages that wait, read up to a bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import for_code
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request

from shared.errors import ConfigError, KafkaError
from shared.kafka.consumer import Record
from shared.kafka.errors import kafka_errors
from shared.kafka.factory import make_consumer, start_client
from shared.kafka.security import KafkaClientConfig
from shared.logging import get_logger
from shared.messages.topics import TopicSpec

log = get_logger(__name__)

T = TypeVar("T")

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


# --- consumer groups -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where a consumer group stands in one partition of a topic."""

    partition: int
    committed: int | None
    """The group's committed offset: the next message it will process (None: none committed)."""
    start: int
    """The first message the group has not processed: its committed offset, or the first offset
    still in the log when it committed none (or retention removed what it had not read)."""
    end: int
    """One past the last message in the partition."""

    @property
    def lag(self) -> int:
        """Messages the group has not processed."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class GroupLag:
    """A consumer group on one topic: who consumes, and what waits."""

    group: str
    topic: str
    members: int
    """Consumers in the group now; 0: nobody processes what arrives."""
    partitions: tuple[PartitionLag, ...]
    """Every partition of the topic; empty when the topic does not exist."""

    @property
    def total(self) -> int:
        """Messages the group has not processed, over every partition."""
        return sum(p.lag for p in self.partitions)


GROUP_READ_WAIT = timedelta(seconds=5)
"""How long a read of a group's members or offsets rides out a coordinator that is not ready."""
GROUP_READ_RETRY = timedelta(milliseconds=250)


class _DescribeGroups(
    Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]  # type: ignore[misc]  # aiokafka ships no types
):
    """DescribeGroups in versions 0 to 2 only: aiokafka 0.14 reads a version 3 answer with the
    version 2 layout (without ``authorized_operations``) and fails on every recent broker, so
    :meth:`AIOKafkaAdminClient.describe_consumer_groups` cannot be used."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(self._groups)


class GroupInspector:
    """One consumer group on one topic, read from outside the group (it is never joined and
    nothing is committed): its members, its lag and the messages it has not processed yet.

    ``async with GroupInspector(kafka, group, topic) as inspector:``; a cluster that cannot be
    reached is a KafkaError in one line naming the setting to fix (:func:`start_client`).
    """

    def __init__(
        self,
        kafka: KafkaClientConfig | str,
        group: str,
        topic: str,
        *,
        client_id: str = "autotask-sync-admin",
    ) -> None:
        self.group = group
        self.topic = topic
        self._config = KafkaClientConfig.of(kafka)
        self._admin = _admin(self._config, client_id)
        self._consumer = make_consumer(self._config, group_id=None, client_id=client_id)

    async def __aenter__(self) -> GroupInspector:
        try:
            what = f"read consumer group {self.group}"
            await start_client(self._admin, self._config, what=what)
            await start_client(self._consumer, self._config, what=what)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def lag(self) -> GroupLag:
        """The group's members and, per partition, its committed offset and the log's ends."""
        members = await self._patiently(self._members)
        committed = await self.committed()
        with kafka_errors(f"read the lag of group {self.group}"):
            metadata = await self._consumer._client.fetch_all_metadata()  # no public call
            numbers = sorted(metadata.partitions_for_topic(self.topic) or ())
            partitions = [TopicPartition(self.topic, n) for n in numbers]
            firsts = await self._consumer.beginning_offsets(partitions) if partitions else {}
            ends = await self._consumer.end_offsets(partitions) if partitions else {}
        return GroupLag(
            group=self.group,
            topic=self.topic,
            members=members,
            partitions=tuple(
                PartitionLag(
                    partition=tp.partition,
                    committed=committed.get(tp.partition),
                    start=max(committed.get(tp.partition, 0), firsts[tp]),
                    end=ends[tp],
                )
                for tp in partitions
            ),
        )

    async def committed(self) -> dict[int, int]:
        """The group's committed offset in each partition of the topic that has one."""
        offsets = await self._patiently(self._offsets)
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if tp.topic == self.topic and meta.offset >= 0
        }

    async def waiting(self, lag: GroupLag, *, limit: int, within: timedelta) -> list[Record]:
        """The messages the group has not processed, from its committed offset on, in offset
        order per partition: at most ``limit`` of them, shared among the partitions that lag,
        and fewer when reading takes longer than ``within``. A backlog is never read whole."""
        lagging = [p for p in lag.partitions if p.lag > 0]
        if not lagging:
            return []
        share = max(1, limit // len(lagging))
        stops = {
            TopicPartition(self.topic, p.partition): p.start + min(p.lag, share) for p in lagging
        }
        self._consumer.assign(list(stops))
        for p in lagging:
            self._consumer.seek(TopicPartition(self.topic, p.partition), p.start)
        records: list[Record] = []
        deadline = time.monotonic() + within.total_seconds()
        with kafka_errors(f"read what group {self.group} has not processed"):
            while stops and time.monotonic() < deadline:
                batch = await self._consumer.getmany(*stops, timeout_ms=500, max_records=500)
                for tp, got in batch.items():
                    records.extend(r for r in got if r.offset < stops[tp])
                for tp in list(stops):
                    if await self._consumer.position(tp) >= stops[tp]:
                        del stops[tp]
        return records

    async def _members(self) -> int:
        with kafka_errors(f"describe group {self.group}"):
            coordinator = await self._admin.find_coordinator(self.group)
            response = await self._admin._client.send(coordinator, _DescribeGroups([self.group]))
            error_code, *_names, members = response.groups[0][:6]
            if error_code:
                raise for_code(error_code)(f"describe group {self.group}")
        return len(members)

    async def _offsets(self) -> dict[TopicPartition, Any]:
        with kafka_errors(f"read the offsets of group {self.group}"):
            offsets: dict[TopicPartition, Any] = await self._admin.list_consumer_group_offsets(
                self.group
            )
        return offsets

    async def _patiently(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, tried again for up to :data:`GROUP_READ_WAIT` while it fails for a
        reason that passes (the group's coordinator being elected or loaded: a new cluster's
        first group read, a broker restart)."""
        deadline = time.monotonic() + GROUP_READ_WAIT.total_seconds()
        while True:
            try:
                return await read()
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(GROUP_READ_RETRY.total_seconds())


async def consumer_lag(
    kafka: KafkaClientConfig | str,
    group: str,
    topic: str,
    *,
    client_id: str = "autotask-sync-admin",
) -> dict[int, int]:
    """Per partition of ``topic``: messages the group has not processed (:class:`GroupLag`)."""
    async with GroupInspector(kafka, group, topic, client_id=client_id) as inspector:
        lag = await inspector.lag()
    return {p.partition: p.lag for p in lag.partitions}


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

"""Read a topic from its beginning to its current end, without a consumer group.

For operators' commands (``autotask-sync dlq list|replay``) and checks: nothing is committed and
no group membership is created, so reading never disturbs the services' consumers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.kafka.consumer import Record
from shared.kafka.factory import make_consumer, start_client
from shared.kafka.security import KafkaClientConfig


async def read_to_end(
    kafka: KafkaClientConfig | str, topic: str, *, client_id: str = "autotask-sync-reader"
) -> AsyncIterator[Record]:
    """Every message of ``topic`` that exists now, partition by partition in offset order."""
    consumer = make_consumer(kafka, group_id=None, client_id=client_id)
    try:
        await start_client(consumer, kafka, what=f"read {topic}")
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                batch = await consumer.getmany(partition, timeout_ms=1000, max_records=1000)
                for record in batch.get(partition, []):
                    if record.offset < ends[partition]:
                        yield record
    except AIOKafkaError as exc:
        raise KafkaError(f"could not read {topic}: {exc!r}") from exc
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    # A fresh consumer knows no topic metadata yet; ask the cluster once.
    metadata = await consumer._client.fetch_all_metadata()  # aiokafka has no public call for it
    return sorted(metadata.partitions_for_topic(topic) or ())


__all__ = ["read_to_end"]

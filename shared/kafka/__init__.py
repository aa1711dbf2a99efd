"""Kafka plumbing: the one place that speaks aiokafka.

factory.py      producer and consumer factories, produce helpers
admin.py        topic creation and checks, consumer lag
consumer.py     StreamConsumer: the consumer loop (pause/resume, commit after process)
offsets.py      contiguous finished offsets per partition (pure)
reader.py       read a topic to its end (tests, tools, dead-letter listing)
"""

from shared.kafka.admin import ensure_topics, missing_topics, require_topics
from shared.kafka.factory import (
    Headers,
    OutgoingMessage,
    control_consumer,
    make_consumer,
    make_producer,
    produce,
    produce_many,
    started,
)

__all__ = [
    "Headers",
    "OutgoingMessage",
    "control_consumer",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "missing_topics",
    "produce",
    "produce_many",
    "require_topics",
    "started",
]

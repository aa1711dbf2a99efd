"""Kafka plumbing: the one place that speaks aiokafka.

security.py     how clients reach the cluster: bootstrap servers, TLS, SASL (KafkaClientConfig)
factory.py      producer and consumer factories, starting a client, produce helpers
producer.py     Producer: the services' idempotent producer, replaced when its state is lost
pacing.py       reconnect back-off for every client (aiokafka has no option for it)
admin.py        topic creation and checks, consumer lag
consumer.py     StreamConsumer: the consumer loop (pause/resume, commit after process)
offsets.py      contiguous finished offsets per partition (pure)
reader.py       read a topic to its end (tests, tools, dead-letter listing)
errors.py       aiokafka's errors as KafkaError; why a client could not connect
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
    start_client,
    started,
)
from shared.kafka.security import KafkaClientConfig, client_config

__all__ = [
    "Headers",
    "KafkaClientConfig",
    "OutgoingMessage",
    "client_config",
    "control_consumer",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "missing_topics",
    "produce",
    "produce_many",
    "require_topics",
    "start_client",
    "started",
]

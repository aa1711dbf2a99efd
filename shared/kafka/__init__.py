"""Kafka plumbing: producer/consumer factories (``clients``) and topic creation (``admin``).

The consumer loop and the offset tracker the services share live here too as they arrive.
"""

from shared.kafka.admin import ensure_topics, missing_topics, require_topics
from shared.kafka.clients import (
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

"""The Kafka error boundary: aiokafka's exceptions become :class:`shared.errors.KafkaError`.

Code outside ``shared/kafka`` never names aiokafka's errors. It calls the helpers here and in
``factory`` (which translate already), or wraps a block of its own calls on a producer or
consumer::

    with kafka_errors("commit the callouts' offsets"):
        await consumer.commit(offsets)

The translated error keeps :class:`KafkaError`'s default, retriable: callers decide what a
persistent failure means (dead letter, spool, stop).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import KafkaConnectionError
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.logging import redact_text


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says no broker answered at the bootstrap address (Kafka still starting,
    or the address is wrong): waiting may cure it, unlike a broker that refused the request."""
    return isinstance(exc, KafkaConnectionError)


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """aiokafka errors raised in this block become :class:`KafkaError` ("could not {what}:
    ...")."""
    try:
        yield
    except AIOKafkaError as exc:
        detail = redact_text(str(exc)) or type(exc).__name__
        raise KafkaError(f"could not {what}: {type(exc).__name__}: {detail}") from exc

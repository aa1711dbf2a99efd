"""The Kafka error boundary: aiokafka's exceptions become :class:`shared.errors.KafkaError`.

Code outside ``shared/kafka`` never names aiokafka's errors. It calls the helpers here and in
``factory`` (which translate already), or wraps a block of its own calls on a producer or
consumer::

    with kafka_errors("commit the callouts' offsets"):
        await consumer.commit(offsets)

The translated error is retriable (:class:`KafkaError`'s default) unless Kafka refused the
message itself or its topic for good: too large, corrupt, a timestamp or topic it does not
accept, no permission to write the topic (:func:`is_retriable`). Sending such a message again
gets the same answer; callers decide what that means (dead letter, set aside, stop). Every other
failure, including brokers that are away, stays retriable.

:class:`DeliveryError` is what a pipelined send raises when some of its messages were not
acknowledged: which ones, and why each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaConnectionError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.logging import redact_text

_REFUSED_FOR_GOOD: tuple[type[AIOKafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
)
"""Refusals of a message or its topic that trying again cannot change. aiokafka's own
``retriable`` flag is not enough on its own: it is False for a ``KafkaTimeoutError`` too, which
is what a send gets while the brokers are away."""


class DeliveryError(KafkaError):
    """Some messages of a pipelined send were not acknowledged.

    ``failures`` maps the position of each such message in the batch to why (a message not even
    handed to the producer has a retriable error saying so); every other message was
    acknowledged. The error itself is the first failure's, retriable like it.
    """

    def __init__(self, message: str, *, failures: Mapping[int, KafkaError]) -> None:
        first = failures[min(failures)]
        super().__init__(message, retriable=first.retriable)
        self.failures = dict(failures)


def is_retriable(exc: BaseException) -> bool:
    """Whether sending again can succeed where ``exc`` failed (see the module docstring)."""
    if isinstance(exc, KafkaError):
        return exc.retriable
    return not (isinstance(exc, _REFUSED_FOR_GOOD) and not getattr(exc, "retriable", False))


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says no broker answered at the bootstrap address (Kafka still starting,
    or the address is wrong): waiting may cure it, unlike a broker that refused the request."""
    return isinstance(exc, KafkaConnectionError)


def translate(exc: AIOKafkaError, what: str) -> KafkaError:
    """``exc`` as a :class:`KafkaError` ("could not {what}: ..."), retriable as it deserves."""
    detail = redact_text(str(exc)) or type(exc).__name__
    return KafkaError(
        f"could not {what}: {type(exc).__name__}: {detail}", retriable=is_retriable(exc)
    )


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """aiokafka errors raised in this block become :class:`KafkaError` ("could not {what}:
    ...")."""
    try:
        yield
    except AIOKafkaError as exc:
        raise translate(exc, what) from exc


__all__ = ["DeliveryError", "is_retriable", "is_unreachable", "kafka_errors", "translate"]

"""``autotask.callouts.dlq.v1``: messages that cannot be processed, with why.

A dead letter keeps the original value (and key, and headers) and adds ``error-class``,
``error-message``, ``attempts`` and ``first-failed-at``. ``autotask-sync dlq replay`` puts the
original back on its topic after a fix. The gateway dead-letters signed bodies it cannot route
(no EntityType or Id); the worker dead-letters messages that failed a bounded number of times for
reasons retrying cannot fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.messages.callout import format_instant

HEADER_ERROR_CLASS = "error-class"
HEADER_ERROR_MESSAGE = "error-message"
HEADER_ATTEMPTS = "attempts"
HEADER_FIRST_FAILED_AT = "first-failed-at"
HEADER_ORIGINAL_TOPIC = "original-topic"
_ADDED = (
    HEADER_ERROR_CLASS,
    HEADER_ERROR_MESSAGE,
    HEADER_ATTEMPTS,
    HEADER_FIRST_FAILED_AT,
    HEADER_ORIGINAL_TOPIC,
)
_MAX_MESSAGE = 1000


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    *,
    error_class: str,
    message: str,
    attempts: int,
    first_failed_at: datetime,
    original_topic: str,
) -> list[tuple[str, bytes]]:
    """The original headers plus why the message failed (earlier failure headers replaced)."""
    kept = [(name, value) for name, value in original if name not in _ADDED]
    return [
        *kept,
        (HEADER_ERROR_CLASS, error_class.encode()),
        (HEADER_ERROR_MESSAGE, message[:_MAX_MESSAGE].encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
        (HEADER_FIRST_FAILED_AT, format_instant(first_failed_at).encode()),
        (HEADER_ORIGINAL_TOPIC, original_topic.encode()),
    ]


def original_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers the message had before it was dead-lettered (for a replay)."""
    return [(name, value) for name, value in headers if name not in _ADDED]


__all__ = [
    "HEADER_ATTEMPTS",
    "HEADER_ERROR_CLASS",
    "HEADER_ERROR_MESSAGE",
    "HEADER_FIRST_FAILED_AT",
    "HEADER_ORIGINAL_TOPIC",
    "dead_letter_headers",
    "original_headers",
]

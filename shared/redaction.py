"""The one redactor: masks secret values (and URL passwords) in any text we produce.

A :class:`Redactor` knows a set of secret values and replaces each occurrence with
:data:`REDACTED`. The process has one (:data:`PROCESS_REDACTOR`) that the logging pipeline applies
to every line: every secret the process learns (settings, connection credentials, webhook
secrets) is registered there with :func:`register_secret`. Components that build messages from
server text (the Autotask client) keep a redactor of their own connection's secrets as well, so a
message is clean even before it reaches a log.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from pydantic import SecretStr

REDACTED = "[redacted]"
PROCESS_MIN_LENGTH = 6
"""Shorter values are not masked process-wide: hiding every "1" would hide more than it protects."""

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)@")


class Redactor:
    """Replaces known secret values and URL passwords with :data:`REDACTED`."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = (), *, min_length: int = 1):
        self._min_length = min_length
        self._secrets: list[str] = []
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, value: str | SecretStr | None) -> None:
        """Remember ``value`` (ignored when empty or shorter than ``min_length``)."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value or len(value) < self._min_length:
            return
        with self._lock:
            if value not in self._secrets:
                # Longest first, so a secret containing another is not half-replaced.
                self._secrets = sorted([*self._secrets, value], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "://" not in text:  # most log values: skip the regex, it cannot match
            return text
        return _URL_PASSWORD.sub(rf"\g<scheme>{REDACTED}@", text)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"


PROCESS_REDACTOR = Redactor(min_length=PROCESS_MIN_LENGTH)
"""Every secret this process knows; applied to every log line."""


def register_secret(value: str | SecretStr | None) -> None:
    """Mask ``value`` wherever it appears in this process's log lines."""
    PROCESS_REDACTOR.add(value)


def redact_text(text: str) -> str:
    """``text`` with every registered secret and URL password masked."""
    return PROCESS_REDACTOR(text)


__all__ = ["PROCESS_REDACTOR", "REDACTED", "Redactor", "redact_text", "register_secret"]

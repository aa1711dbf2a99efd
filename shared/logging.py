"""structlog configuration: JSON lines to stdout, pretty on a TTY, secrets redacted.

Context such as connection, entity, id, registration and request id is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged inside that context.

Redaction works on two levels: values under secret-looking keys are masked, and any registered
secret value (:func:`register_secret`) is masked wherever it appears inside any string, so a secret
that leaks into an exception text or a URL is still not written out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|integration[_-]?code|"
    r"signature|dsn|database_url|cookie)",
    re.IGNORECASE,
)
_known_secrets: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)@")


def register_secret(value: str | SecretStr | None) -> None:
    """Remember a secret so it is masked wherever it appears in a log line.

    Very short values are ignored: masking every "1" in the logs would hide more than it protects.
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value and len(value) >= 6:
        _known_secrets.add(value)


def redact_text(text: str) -> str:
    """Mask registered secrets and URL passwords in ``text``."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(rf"\g<scheme>{REDACTED}@", text)


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if _SECRET_KEYS.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor masking secrets in every field (the rendered traceback included)."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", *, stream: Any = None) -> None:
    """Configure structlog and route stdlib logging (aiohttp, aiokafka) through it."""
    stream = stream or sys.stdout
    pretty = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if pretty:
        renderer = structlog.dev.ConsoleRenderer()
    else:
        shared_processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()

    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO (group joins, connection pools) drowns the service's own lines.
    for noisy in ("aiokafka", "kafka", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger

"""structlog configuration: JSON lines to stdout, pretty on a TTY, secrets redacted.

Context such as connection, entity, id, registration and request id is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged inside that context.

Redaction works on two levels: values under secret-looking keys are masked, and every secret
value registered with the process redactor (:mod:`shared.redaction`) is masked wherever it appears
inside any string, so a secret that leaks into an exception text or a URL is still not written out.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from shared.redaction import REDACTED, redact_text, register_secret

_SECRET_KEYS = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|integration[_-]?code|"
    r"signature|dsn|database_url|cookie)",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Field names are few and repeat on every line: the regex runs once per name."""
    return _SECRET_KEYS.search(key) is not None


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if _is_secret_key(key) and value not in (None, "", False):
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


class RepeatFilter(logging.Filter):
    """Lets one line per (logger, level, message template) through per ``window`` for the
    libraries that retry on their own: aiokafka logs each failed reconnect, ten lines a second
    per client while a broker is away. The next line let through says how many were held back."""

    def __init__(self, prefixes: tuple[str, ...], window: float = 30.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window = window
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        shown_at, held = self._seen.get(key, (float("-inf"), 0))
        if record.created - shown_at < self.window:
            self._seen[key] = (shown_at, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {self.window:.0f} s)"
        self._seen[key] = (record.created, 0)
        if len(self._seen) > 1000:  # templates are few; this only guards against odd ones
            self._seen.clear()
        return True


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
    handler.addFilter(RepeatFilter(("aiokafka", "kafka")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO (group joins, connection pools) drowns the service's own lines.
    for noisy in ("aiokafka", "kafka", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_text", "register_secret"]

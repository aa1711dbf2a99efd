"""structlog configuration: JSON lines to stdout, pretty on a TTY, secrets redacted.

Services log to stdout at their configured level; ``autotask-sync`` commands log to stderr at
WARNING unless ``-v`` (:mod:`shared.runtime.commandline`), so their stdout holds only what they
print for people, and a progress bar prints log lines above itself (:func:`lines_written_by`).

Context such as connection, entity, id, registration and request id is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged inside that context.

Redaction works on two levels: values under secret-looking keys are masked, and every secret
value registered with the process redactor (:mod:`shared.redaction`) is masked wherever it appears
inside any string, so a secret that leaks into an exception text or a URL is still not written out.

Lines are bounded, whoever writes them (our own structlog lines and the stdlib ones of aiohttp or
aiokafka, whose messages can hold raw request bytes, go through the same formatter):

- every string value is cut to :data:`FIELD_LIMIT` characters (``...(N more)``), a traceback
  (``exception``, ``stack``) to :data:`TRACEBACK_LIMIT`, keeping its head and its end; secrets
  are masked before anything is cut, so a cut never leaves part of one;
- a line longer than :data:`LINE_LIMIT` once rendered is rendered again with only the fields
  that say what happened and ``truncated`` (its length);
- WARNING and above: at most :data:`BURST_LINES` lines per (logger, event) per
  :data:`BURST_INTERVAL` seconds (:class:`BurstFilter`); the next line let through carries
  ``suppressed=N``. INFO and DEBUG are never held back.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import orjson
import structlog
from pydantic import SecretStr

from shared.redaction import REDACTED, redact_text, register_secret

_SECRET_KEYS = re.compile(
    r"(secret|password|passwd|token|authorization|api[_-]?key|integration[_-]?code|"
    r"signature|dsn|database_url|cookie)",
    re.IGNORECASE,
)


FIELD_LIMIT = 256
"""Characters kept of any string value (the rest is replaced by ``...(N more)``)."""
TRACEBACK_LIMIT = 4096
"""Characters kept of a traceback: its first quarter and its last three (where the error is)."""
LINE_LIMIT = 8192
"""Characters of a rendered line beyond which only the essential fields are written."""
BURST_LINES = 10
BURST_INTERVAL = 10.0
"""At most BURST_LINES WARNING+ lines per (logger, event) per BURST_INTERVAL seconds."""

_TRACEBACK_FIELDS = frozenset({"exception", "stack"})
_CUT_MARGIN = 1024
"""Longer than any secret or URL password: text is cut this much beyond what is kept, masked,
and the margin dropped, so a secret cut in two never shows its first (or last) part."""
_ESSENTIAL = (
    "timestamp",
    "level",
    "logger",
    "event",
    "request_id",
    "registration",
    "connection",
    "entity",
    "id",
    "outcome",
    "status",
    "suppressed",
    "exception",
)


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Field names are few and repeat on every line: the regex runs once per name."""
    return _SECRET_KEYS.search(key) is not None


def _bounded(text: str, head: int, tail: int = 0) -> str:
    """``text`` with secrets masked, at most ``head`` characters from its start and ``tail``
    from its end (the rest replaced by ``...(N more)``)."""
    if len(text) <= head + tail:  # nearly every value: as cheap as masking alone
        masked = redact_text(text)
        if len(masked) <= head + tail:
            return masked
        return _cut(masked, len(masked), head, tail)
    if len(text) <= head + tail + 2 * _CUT_MARGIN:
        masked = redact_text(text)
        return masked if len(masked) <= head + tail else _cut(masked, len(masked), head, tail)
    # Huge: mask only the ends, each with a margin that is dropped after masking.
    start = redact_text(text[: head + _CUT_MARGIN])
    start = start[: max(0, min(head, len(start) - _CUT_MARGIN))]
    end = ""
    if tail:
        end = redact_text(text[-(tail + _CUT_MARGIN) :])
        end = end[min(len(end), max(_CUT_MARGIN, len(end) - tail)) :]
    return _joined(start, len(text) - len(start) - len(end), end)


def _cut(masked: str, length: int, head: int, tail: int) -> str:
    start, end = masked[:head], masked[length - tail :] if tail else ""
    return _joined(start, length - len(start) - len(end), end)


def _joined(start: str, dropped: int, end: str) -> str:
    return f"{start}...({dropped} more)" + (f"...{end}" if end else "")


def _key(key: Any) -> Any:
    return _bounded(key, FIELD_LIMIT) if isinstance(key, str) and len(key) > FIELD_LIMIT else key


_PLAIN = frozenset({int, float, bool, type(None)})


def _redact_value(key: str, value: Any) -> Any:
    # The hot path first (a dozen short values on every line): exact types, no isinstance chain.
    kind = value.__class__
    if kind is str and len(value) <= FIELD_LIMIT and key not in _TRACEBACK_FIELDS:
        if value and _is_secret_key(key):
            return REDACTED
        masked = redact_text(value)
        return masked if len(masked) <= FIELD_LIMIT else _bounded(masked, FIELD_LIMIT)
    if kind in _PLAIN:
        return REDACTED if value not in (None, False) and _is_secret_key(key) else value
    if isinstance(value, SecretStr):
        return REDACTED
    if _is_secret_key(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        if len(value) <= FIELD_LIMIT and key not in _TRACEBACK_FIELDS:  # the hot path, inline
            masked = redact_text(value)
            return masked if len(masked) <= FIELD_LIMIT else _bounded(masked, FIELD_LIMIT)
        if key in _TRACEBACK_FIELDS:
            return _bounded(value, TRACEBACK_LIMIT // 4, TRACEBACK_LIMIT - TRACEBACK_LIMIT // 4)
        return _bounded(value, FIELD_LIMIT)
    if isinstance(value, Mapping):
        return {_key(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return _bounded(f"{type(value).__name__}: {value}", FIELD_LIMIT)
    if isinstance(value, bytes | bytearray):  # raw request bytes: shown as their repr, bounded
        return _bounded(repr(bytes(value[: FIELD_LIMIT + _CUT_MARGIN])), FIELD_LIMIT)
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor masking secrets in every field (the rendered traceback included)
    and bounding every string (:data:`FIELD_LIMIT`, :data:`TRACEBACK_LIMIT`)."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def _remove_meta(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """ProcessorFormatter's ``remove_processors_meta``, and ``suppressed=N`` on the line
    :class:`BurstFilter` let through after holding N back (one step: it runs on every line)."""
    held = getattr(event_dict.pop("_record", None), "suppressed", None)
    if held:
        event_dict["suppressed"] = held
    event_dict.pop("_from_structlog", None)
    return event_dict


def _bounded_renderer(renderer: Any, limit: int) -> Callable[[Any, str, Any], str]:
    """``renderer``, and a second, slim rendering for a line over ``limit`` characters."""
    # The console renderer pops what it prints: the slim rendering needs the fields again.
    copy = not isinstance(renderer, structlog.processors.JSONRenderer)

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        line: str = renderer(logger, method, dict(event_dict) if copy else event_dict)
        if len(line) <= limit:
            return line
        slim = {key: event_dict[key] for key in _ESSENTIAL if key in event_dict}
        slim["truncated"] = len(line)
        line = renderer(logger, method, slim)
        if len(line) <= limit:
            return line
        slim.pop("exception", None)
        return str(renderer(logger, method, slim))[:limit]

    return render


class BurstFilter(logging.Filter):
    """At most ``lines`` WARNING+ lines per (logger, event) per ``interval`` seconds.

    A flood of one failure (a client sending garbage, a dependency away) then costs a few lines,
    not one per request; the next line let through after some were held back carries
    ``suppressed=N``. INFO and DEBUG pass untouched (one comparison).

    ``repeat`` (a :class:`RepeatFilter`) is applied first to the same WARNING+ lines: one filter
    on the handler keeps the INFO path at one call."""

    def __init__(
        self,
        *,
        lines: int = BURST_LINES,
        interval: float = BURST_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
        repeat: RepeatFilter | None = None,
    ) -> None:
        super().__init__()
        self.repeat = repeat
        self.lines = lines
        self.interval = interval
        self.clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # (logger, event) -> [window started, lines let through in it, lines held back]
        self._keys: dict[tuple[str, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.repeat is not None and not self.repeat.filter(record):
            return False
        message = record.msg
        event = message.get("event") if isinstance(message, dict) else message
        key = (record.name, (event if isinstance(event, str) else repr(event))[:FIELD_LIMIT])
        with self._lock:
            now = self.clock()
            state = self._keys.get(key)
            if state is None or now - state[0] >= self.interval:
                held = state[2] if state is not None else 0
                state = self._keys[key] = [now, 0, held]
                if len(self._keys) > self._max_keys:
                    self._forget(now)
            if state[1] >= self.lines:
                state[2] += 1
                return False
            state[1] += 1
            if state[2]:
                record.__dict__["suppressed"] = int(state[2])
                state[2] = 0
        return True

    def _forget(self, now: float) -> None:
        """Bound memory: drop keys whose window is over (all of them if that is not enough)."""
        expired = [k for k, (started, _, _) in self._keys.items() if now - started >= self.interval]
        for key in expired:
            del self._keys[key]
        if len(self._keys) > self._max_keys:
            self._keys.clear()


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
        # orjson: a tenth of the json module's time per line (bench/profile_gateway.py).
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_text)

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
            _remove_meta,
            redact_processor,
            _bounded_renderer(renderer, LINE_LIMIT),
        ],
    )
    # No caller, thread or process lookups for each record: no line prints them, and the
    # frame walk alone cost a sixth of a line (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    # aiokafka and kafka log at WARNING and above only (below), so one filter for both.
    handler.addFilter(BurstFilter(repeat=RepeatFilter(("aiokafka", "kafka"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO (group joins, connection pools) drowns the service's own lines.
    for noisy in ("aiokafka", "kafka", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


class _LineWriter:
    """A stream for a log handler that hands each rendered line to a function."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write

    def write(self, text: str) -> None:
        self._write(text.rstrip("\n"))

    def flush(self) -> None:
        """Nothing is buffered here: ``write`` has the line."""


@contextmanager
def lines_written_by(write: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, every log line goes to ``write`` (without its newline) instead of
    the stream :func:`configure_logging` chose; the handler, its redaction and its filters stay.

    A progress bar uses it to print log lines above itself (``tqdm.write``): written to the
    terminal directly, a line would land in the middle of the bar."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.setStream(_LineWriter(write)) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


def _orjson_text(value: Any, **_options: Any) -> str:
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


__all__ = [
    "BURST_INTERVAL",
    "BURST_LINES",
    "FIELD_LIMIT",
    "LINE_LIMIT",
    "REDACTED",
    "TRACEBACK_LIMIT",
    "BurstFilter",
    "configure_logging",
    "get_logger",
    "lines_written_by",
    "redact_text",
    "register_secret",
]

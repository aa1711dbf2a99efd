"""Log lines are JSON, carry bound context, and never contain secrets."""

from __future__ import annotations

import io
import json
import logging
import re

import structlog
from pydantic import SecretStr
from tqdm import tqdm

from shared.logging import configure_logging, get_logger, lines_written_by, register_secret


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_with_context_and_redaction() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    register_secret("hook-secret-0123456789")
    structlog.contextvars.bind_contextvars(connection="acme", request_id="r1")
    try:
        log = get_logger("test")
        log.info(
            "callout accepted",
            secret="plain",
            api_key=SecretStr("k"),
            note="signed with hook-secret-0123456789",
            dsn_like="postgresql://user:pw123@db/x",
            nested={"Secret": "x", "ok": "visible"},
        )
        try:
            raise RuntimeError("failed with hook-secret-0123456789")
        except RuntimeError:
            log.exception("boom")
        logging.getLogger("stdlib").warning("stdlib line hook-secret-0123456789")
    finally:
        structlog.contextvars.clear_contextvars()

    text = buffer.getvalue()
    assert "hook-secret-0123456789" not in text
    assert "plain" not in text
    assert "pw123" not in text
    first, second, third = _lines(buffer)
    assert first["event"] == "callout accepted"
    assert first["connection"] == "acme"
    assert first["request_id"] == "r1"
    assert first["nested"] == {"Secret": "[redacted]", "ok": "visible"}
    assert "RuntimeError" in str(second["exception"])
    assert third["logger"] == "stdlib"


def test_a_library_retrying_in_a_loop_logs_one_line_per_window() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    kafka = logging.getLogger("aiokafka.conn")
    for _ in range(50):  # a broker away: every reconnect attempt fails the same way
        kafka.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    logging.getLogger("services.sync_worker").warning("own line")
    logging.getLogger("services.sync_worker").warning("own line")

    lines = _lines(buffer)
    assert [line["event"] for line in lines if line["logger"] == "aiokafka.conn"] == [
        "Unable connect to node with id 1: Connect call failed"
    ]
    assert [line["event"] for line in lines if line["logger"] == "services.sync_worker"] == [
        "own line",
        "own line",
    ]  # the service's own lines are never held back


def test_the_line_after_the_window_says_how_many_were_held_back() -> None:
    from shared.logging import RepeatFilter

    held = RepeatFilter(("aiokafka",), window=30.0)

    def record(created: float) -> logging.LogRecord:
        line = logging.LogRecord("aiokafka", logging.ERROR, "", 0, "lost %s", ("node",), None)
        line.created = created
        return line

    assert held.filter(record(100.0))
    assert not any(held.filter(record(100.0 + i)) for i in range(1, 5))
    later = record(131.0)
    assert held.filter(later)
    assert later.getMessage() == "lost node (4 more like it in the last 30 s)"


def test_every_string_is_bounded_and_a_secret_is_never_cut_in_two() -> None:
    from shared.logging import FIELD_LIMIT, LINE_LIMIT, TRACEBACK_LIMIT

    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    secret = "cut-secret-" + "s" * 40
    register_secret(secret)
    log = get_logger("test")
    for offset in range(FIELD_LIMIT - 60, FIELD_LIMIT + 1200, 7):  # the secret across each cut
        log.info("long", body="x" * offset + secret + "y" * 5000)
    log.info("nested", fields={"k": "z" * 10_000}, many={f"f{i}": "v" * 200 for i in range(200)})
    try:
        raise ValueError("raw bytes " + "b" * 50_000 + " end of message")
    except ValueError:
        log.exception("boom")

    text = buffer.getvalue()
    assert "cut-se" not in text  # not even the start of it
    lines = _lines(buffer)
    assert all(len(json.dumps(line)) <= LINE_LIMIT + 100 for line in lines)
    for line in lines[:-2]:
        body = str(line["body"])
        assert len(body) <= FIELD_LIMIT + 20
        assert body.endswith(" more)")
    nested = lines[-2]
    # Too long as a whole: only the fields that say what happened, and the length.
    assert int(str(nested["truncated"])) > LINE_LIMIT
    assert nested["event"] == "nested"
    assert "many" not in nested
    boom = lines[-1]
    assert len(str(boom["exception"])) <= TRACEBACK_LIMIT + 40
    assert str(boom["exception"]).endswith("end of message")  # the end of a traceback is kept
    assert "Traceback" in str(boom["exception"])


def test_a_flood_of_one_warning_is_held_back_and_counted() -> None:
    from shared.logging import BurstFilter

    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    handler = logging.getLogger().handlers[0]
    burst = next(f for f in handler.filters if isinstance(f, BurstFilter))
    now = [100.0]
    burst.clock = lambda: now[0]
    log = get_logger("services.webhook_gateway.handlers")
    for n in range(50):
        log.warning("callout rejected", n=n)
        log.info("callout", n=n)  # INFO is never held back
    log.error("another event")
    now[0] += 10.0
    log.warning("callout rejected", n=50)

    lines = _lines(buffer)
    rejected = [line for line in lines if line["event"] == "callout rejected"]
    assert [line["n"] for line in rejected] == [*range(10), 50]
    assert rejected[-1]["suppressed"] == 40
    assert "suppressed" not in rejected[0]
    assert len([line for line in lines if line["event"] == "callout"]) == 50
    assert [line["event"] for line in lines].count("another event") == 1


def test_aiohttp_lines_with_raw_request_bytes_are_bounded_and_limited() -> None:
    from shared.logging import FIELD_LIMIT, TRACEBACK_LIMIT

    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    server = logging.getLogger("aiohttp.server")
    raw = "GET /" + "\x00A" * 8000
    for _ in range(30):
        try:
            raise ValueError(f"400, message: Bad status line {raw!r}")
        except ValueError:
            server.exception("Error handling request from %s: %s", "10.0.0.1", raw)
    lines = _lines(buffer)
    assert len(lines) == 10  # the same (logger, event) at ERROR: 10 per interval
    for line in lines:
        assert line["logger"] == "aiohttp.server"
        assert len(str(line["event"])) <= FIELD_LIMIT + 20
        assert len(str(line["exception"])) <= TRACEBACK_LIMIT + 40


def test_the_burst_filter_counts_per_logger_and_event() -> None:
    from shared.logging import BurstFilter

    now = [0.0]
    burst = BurstFilter(lines=2, interval=5.0, clock=lambda: now[0])

    def record(name: str, msg: object, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord(name, level, "", 0, msg, None, None)

    assert [burst.filter(record("a", "x")) for _ in range(4)] == [True, True, False, False]
    assert burst.filter(record("b", "x"))  # another logger
    assert burst.filter(record("a", {"event": "y"}))  # another event (a structlog line)
    assert all(burst.filter(record("a", "x", logging.INFO)) for _ in range(10))
    now[0] = 5.0
    passed = record("a", "x")
    assert burst.filter(passed)
    assert passed.__dict__["suppressed"] == 2


def test_while_a_progress_bar_is_shown_log_lines_go_above_it_whole_and_redacted() -> None:
    terminal = io.StringIO()
    configure_logging("WARNING", "json", stream=terminal)
    register_secret("bar-secret-0123456789")
    log = get_logger("test")
    bar = tqdm(total=100, desc="backfill Tickets", unit=" rows", file=terminal)
    with lines_written_by(lambda line: tqdm.write(line, file=terminal)):
        bar.update(10)
        log.warning("budget low", note="bar-secret-0123456789")
        bar.update(10)
    bar.close()
    log.warning("after the bar")

    text = terminal.getvalue()
    assert "bar-secret-0123456789" not in text
    # A line written into the bar would share its terminal line (after its last \r).
    pieces = [piece for piece in re.split(r"[\r\n]", text) if piece.strip()]
    events = [json.loads(p)["event"] for p in pieces if p.startswith("{")]
    assert events == ["budget low", "after the bar"]
    assert all(p.startswith(("{", "backfill Tickets")) for p in pieces)

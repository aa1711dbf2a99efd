"""Log lines are JSON, carry bound context, and never contain secrets."""

from __future__ import annotations

import io
import json
import logging

import structlog
from pydantic import SecretStr

from shared.logging import configure_logging, get_logger, register_secret


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

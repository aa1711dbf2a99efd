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

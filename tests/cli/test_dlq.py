"""``autotask-sync dlq list|replay``: see what failed and why, put it back after a fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, make_producer, produce_many
from shared.messages.callout import callout_headers, callout_key, header_map
from shared.messages.deadletter import HEADER_ERROR_CLASS, dead_letter_headers
from tests.helpers.pipeline import callout_body, create_topics, read_topic
from tests.helpers.processes import run_cli

pytestmark = pytest.mark.integration


async def _dead_letters(bootstrap: str, topics, rows: list[tuple[str, int, datetime]]) -> None:
    producer = make_producer(bootstrap, client_id="test")
    await producer.start()
    try:
        messages = []
        for connection, entity_id, failed in rows:
            original = callout_headers(
                connection=connection,
                registration_id="reg",
                entity=TICKETS,
                received_at=failed,
                request_id="r1",
            )
            messages.append(
                OutgoingMessage(
                    callout_key(connection, TICKETS, entity_id),
                    callout_body(TICKETS, "Update", entity_id),
                    dead_letter_headers(
                        original,
                        error_class="PermissionDeniedError",
                        message="Tickets: the API user's security level lacks query permission",
                        attempts=3,
                        first_failed_at=failed,
                        original_topic=topics.callouts,
                    ),
                )
            )
        await produce_many(producer, topics.callouts_dlq, messages)
    finally:
        await producer.stop()


async def test_list_filters_and_replay_restores_the_original_messages(kafka_bootstrap, unique):
    topics = await create_topics(kafka_bootstrap, f"d{unique}", partitions=1)
    now = datetime.now(UTC)
    await _dead_letters(
        kafka_bootstrap,
        topics,
        [("acme", 1, now - timedelta(hours=5)), ("acme", 2, now), ("globex", 3, now)],
    )
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix}

    listed = await run_cli("dlq", "list", "--json", env=env)
    assert listed.code == 0, listed.output
    letters = [json.loads(line) for line in listed.out.splitlines()]
    assert [(x["connection"], x["key"]) for x in letters] == [
        ("acme", "acme:Ticket:1"), ("acme", "acme:Ticket:2"), ("globex", "globex:Ticket:3"),
    ]  # fmt: skip
    assert letters[0]["error_class"] == "PermissionDeniedError"
    assert "Update" not in listed.out  # bodies are never printed

    recent = await run_cli("dlq", "list", "--connection", "acme", "--since", "1h", env=env)
    assert recent.code == 0, recent.output
    assert "acme:Ticket:2" in recent.out
    assert "acme:Ticket:1" not in recent.out
    assert "1 dead letter(s)" in recent.out

    replayed = await run_cli("dlq", "replay", "--connection", "acme", env=env)
    assert replayed.code == 0, replayed.output
    assert f"replayed 2 dead letter(s): 2 to {topics.callouts}" in replayed.out
    back = await read_topic(kafka_bootstrap, topics.callouts)
    assert [m.key for m in back] == [b"acme:Ticket:1", b"acme:Ticket:2"]
    dead = await read_topic(kafka_bootstrap, topics.callouts_dlq)
    assert [m.value for m in back] == [m.value for m in dead if m.key.startswith(b"acme:")]
    for message in back:
        headers = header_map(message.headers)
        assert HEADER_ERROR_CLASS not in headers  # clean again: the worker sees a callout
        assert headers["connection"] == "acme"


async def test_a_malformed_since_names_what_to_give(kafka_bootstrap, unique):
    topics = await create_topics(kafka_bootstrap, f"d{unique}", partitions=1)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix}
    result = await run_cli("dlq", "list", "--since", "yesterday-ish", env=env)
    assert result.code == 2
    assert "--since 'yesterday-ish': give a time" in result.err

"""``autotask-sync dlq list|replay``: see what failed and why, put it back after a fix, once;
not while the cause looks unfixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from shared.connections import store as rows
from shared.db import connect
from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, make_producer, produce_many
from shared.messages.callout import callout_headers, callout_key, header_map
from shared.messages.deadletter import HEADER_ERROR_CLASS, dead_letter_headers
from shared.messages.topics import Topics
from shared.secrets import SecretBox
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


async def _add_connection(dsn: str, name: str) -> None:
    db = await connect(dsn)
    try:
        await rows.insert(
            db,
            rows.NewConnection(
                name=name,
                username=f"api@{name}.example",
                secret=SecretStr("secret-value-1"),
                integration_code=SecretStr("CODE0123456789"),
            ),
            SecretBox([SecretBox.generate_key()]),
        )
    finally:
        await db.close()


def _env(dsn: str, bootstrap: str, topics: Topics) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
    }


async def test_list_filters_and_replay_restores_the_original_messages(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(migrated_database, "acme")
    topics = await create_topics(kafka_bootstrap, f"d{unique}", partitions=1)
    now = datetime.now(UTC)
    await _dead_letters(
        kafka_bootstrap,
        topics,
        [("acme", 1, now - timedelta(hours=5)), ("acme", 2, now), ("globex", 3, now)],
    )
    env = _env(migrated_database, kafka_bootstrap, topics)

    listed = await run_cli("dlq", "list", "--json", env=env)
    assert listed.code == 0, listed.output
    letters = [json.loads(line) for line in listed.out.splitlines()]
    assert [(x["connection"], x["key"]) for x in letters] == [
        ("acme", "acme:Ticket:1"), ("acme", "acme:Ticket:2"), ("globex", "globex:Ticket:3"),
    ]  # fmt: skip
    assert letters[0]["error_class"] == "PermissionDeniedError"
    assert [x["replayed_at"] for x in letters] == [None, None, None]
    assert "Update" not in listed.out  # bodies are never printed

    recent = await run_cli("dlq", "list", "--connection", "acme", "--since", "1h", env=env)
    assert recent.code == 0, recent.output
    header, row, message, summary = recent.out.splitlines()
    assert header.split() == [
        "PARTITION:OFFSET", "CONNECTION", "KEY", "ERROR", "ATTEMPTS", "FIRST", "FAILED", "REPLAYED"
    ]  # fmt: skip
    assert row.split()[:5] == ["0:1", "acme", "acme:Ticket:2", "PermissionDeniedError", "3"]
    assert row.endswith(" no")
    assert message.strip().startswith("Tickets: the API user's security level lacks")
    assert summary.startswith("1 dead letter(s): 1 pending, 0 replayed (PARTITION:OFFSET is ")

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

    # The replayed letters stay on their topic, marked; pending are the others.
    pending = await run_cli("dlq", "list", "--pending", "--json", env=env)
    assert [json.loads(line)["key"] for line in pending.out.splitlines()] == ["globex:Ticket:3"]
    again = await run_cli("dlq", "replay", "--connection", "acme", env=env)
    assert again.code == 0, again.output
    assert again.out.strip() == "nothing to replay (2 already replayed left out)"


async def test_a_replay_is_refused_while_the_cause_looks_unfixed(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(migrated_database, "acme")
    topics = await create_topics(kafka_bootstrap, f"d{unique}", partitions=1)
    now = datetime.now(UTC)
    await _dead_letters(kafka_bootstrap, topics, [("acme", 1, now), ("globex", 2, now)])
    env = _env(migrated_database, kafka_bootstrap, topics)
    first = await run_cli("dlq", "replay", "--connection", "acme", env=env)
    assert first.code == 0, first.output

    # The worker dead-letters it again for the same reason: the permission is still missing.
    # And globex is not configured (removed): its callouts would only fail again too.
    await _dead_letters(kafka_bootstrap, topics, [("acme", 1, datetime.now(UTC))])
    refused = await run_cli("dlq", "replay", env=env)
    assert refused.code == 1, refused.output
    assert refused.out == ""
    assert "warning: acme: 1 PermissionDeniedError dead letter(s) arrived after the last " in (
        refused.err
    )
    assert "warning: globex is not a configured connection" in refused.err
    assert "nothing replayed: the cause looks unfixed" in refused.err
    dry = await run_cli("dlq", "replay", "--dry-run", env=env)
    assert dry.code == 0, dry.output
    assert "would replay 2 dead letter(s) (1 already replayed left out)" in dry.out
    assert "warning: acme: 1 PermissionDeniedError" in dry.err

    forced = await run_cli("dlq", "replay", "--force", env=env)
    assert forced.code == 0, forced.output
    assert "replayed 2 dead letter(s)" in forced.out
    assert len(await read_topic(kafka_bootstrap, topics.callouts)) == 3


async def test_a_malformed_since_names_what_to_give(kafka_bootstrap, unique):
    topics = await create_topics(kafka_bootstrap, f"d{unique}", partitions=1)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix}
    result = await run_cli("dlq", "list", "--since", "yesterday-ish", env=env)
    assert result.code == 2
    assert "--since 'yesterday-ish': give a time" in result.err

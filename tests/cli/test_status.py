"""``autotask-sync status``: what the person on call sees matches the tables and the topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from shared.connections import store as rows
from shared.db import connect
from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, make_consumer, make_producer, produce_many
from shared.messages.callout import callout_headers, callout_key
from shared.messages.deadletter import dead_letter_headers
from shared.registrations import RegistrationState, create_pending, set_state
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tests.helpers.pipeline import callout_body, create_topics
from tests.helpers.processes import run_cli
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

KEY = SecretBox.generate_key()


async def _seed(dsn: str) -> None:
    box = SecretBox([KEY])
    db = await connect(dsn)
    try:
        await rows.insert(
            db,
            rows.NewConnection(
                name="acme",
                username="api@acme.example",
                secret=SecretStr("secret-value-1"),
                integration_code=SecretStr("CODE0123456789"),
            ),
            box,
        )
        registration = await create_pending(db, box, of_connection="acme", entity="Tickets")
        await set_state(
            db, registration.registration_id, RegistrationState.ACTIVE, autotask_webhook_id=501
        )
        await db.execute(
            "UPDATE webhook_registrations SET last_callout_at = now() - interval '90 seconds'"
        )
        await db.execute(
            "INSERT INTO callout_spool (connection, registration_id, topic, key, value) "
            "VALUES ('acme', $1, 't', '\\x00', '\\x00'), ('acme', $1, 't', '\\x00', '\\x00')",
            registration.registration_id,
        )
        await db.execute(
            "INSERT INTO sync_runs (connection, entity, mode, status, finished_at, repaired) "
            "VALUES ('acme', 'Tickets', 'incremental', 'succeeded', now(), 7)"
        )
        await db.execute(
            "INSERT INTO unresolved_ids (connection, entity, id) VALUES ('acme', 'Tickets', 1), "
            "('acme', 'Tickets', 2)"
        )
        await db.execute(
            "INSERT INTO connection_health (connection, failures, locked_until, failure_reason) "
            "VALUES ('acme', 2, now() + interval '10 minutes', 'Autotask rejected the credentials')"
        )
    finally:
        await db.close()


async def test_status_shows_each_concern_of_the_connection(
    migrated_database, kafka_bootstrap, unique
):
    await _seed(migrated_database)
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=1)
    producer = make_producer(kafka_bootstrap, client_id="test")
    await producer.start()
    try:
        callouts = [
            OutgoingMessage(
                callout_key("acme", TICKETS, i),
                callout_body(TICKETS, "Update", i),
                callout_headers(
                    connection="acme",
                    registration_id="r",
                    entity=TICKETS,
                    received_at=datetime.now(UTC),
                    request_id="x",
                ),
            )
            for i in range(5)
        ]
        await produce_many(producer, topics.callouts, callouts)
        await produce_many(
            producer,
            topics.callouts_dlq,
            [
                OutgoingMessage(
                    m.key,
                    m.value,
                    dead_letter_headers(
                        list(m.headers),
                        error_class="PermissionDeniedError",
                        message="no",
                        attempts=3,
                        first_failed_at=datetime.now(UTC) - timedelta(minutes=1),
                        original_topic=topics.callouts,
                    ),
                )
                for m in callouts[:2]
            ],
        )
    finally:
        await producer.stop()
    group = f"workers-{unique}"
    consumer = make_consumer(kafka_bootstrap, topics.callouts, group_id=group, client_id="test")
    await consumer.start()
    try:
        batch: dict[Any, list[Any]] = {}

        async def three_read() -> bool:
            more = await consumer.getmany(timeout_ms=2000, max_records=3)
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
            return sum(len(v) for v in batch.values()) >= 3

        await eventually(three_read, within=timedelta(seconds=30), what="3 callouts consumed")
        [partition] = batch
        await consumer.commit({partition: batch[partition][2].offset + 1})
    finally:
        await consumer.stop()

    env = {
        "DATABASE_URL": migrated_database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
    }
    result = await run_cli("status", "--json", "--consumer-group", group, env=env)
    assert result.code == 0, result.output
    status = json.loads(result.out)
    acme = status["connections"]["acme"]
    assert [(w["entity"], w["state"], w["autotask_webhook_id"]) for w in acme["webhooks"]] == [
        ("Tickets", "active", 501)
    ]
    assert acme["spool"]["rows"] == 2
    assert acme["sweeps"][0]["repaired"] == 7
    assert acme["repaired_last_24h"] == 7
    assert acme["unresolved_ids"] == {"Tickets": 2}
    assert acme["dead_letters"] == {"PermissionDeniedError": 2}
    assert acme["lockout"]["failure_reason"] == "Autotask rejected the credentials"
    assert status["consumer_lag"]["total"] == 2  # 5 produced, 3 committed

    text = await run_cli("status", "--consumer-group", group, env=env)
    assert text.code == 0, text.output
    assert "LOCKED OUT until" in text.out
    assert "gateway spool: 2 callout(s) waiting" in text.out
    assert "consumer lag" in text.out
    assert "2 message(s)" in text.out
    assert "secret-value-1" not in text.out + result.out


async def test_status_shows_a_scope_change_in_progress_and_its_end(
    migrated_database, kafka_bootstrap, unique
):
    box = SecretBox([KEY])
    db = await connect(migrated_database)
    try:
        await rows.insert(
            db,
            rows.NewConnection(
                name="acme",
                username="api@acme.example",
                secret=SecretStr("secret-value-1"),
                integration_code=SecretStr("CODE0123456789"),
                scope=SyncScope.parse({"tickets": {"include_queues": [5]}}),
            ),
            box,
        )
        # The mirror follows the scope before the edit (queues 5 and 6) and its Tickets are
        # being read again; the notes wait for them. Companies are not concerned.
        before = {"tickets": {"include_queues": [5, 6]}}
        for entity in ("Tickets", "TicketNotes", "Companies"):
            await db.execute(
                "INSERT INTO sync_scope_applied (connection, entity, scope) "
                "VALUES ('acme', $1, $2)",
                entity,
                before,
            )
        await db.execute(
            "INSERT INTO sync_runs (connection, entity, mode, status) "
            "VALUES ('acme', 'Tickets', 'scope', 'running')"
        )
    finally:
        await db.close()
    env = {
        "DATABASE_URL": migrated_database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTOTASK_SYNC_TOPIC_PREFIX": f"s{unique}",
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
    }
    result = await run_cli("status", "--json", env=env)
    assert result.code == 0, result.output
    scope = json.loads(result.out)["connections"]["acme"]["scope"]
    assert scope["following"] is False
    assert scope["pending"] == [
        {"entity": "TicketNotes", "running": False},
        {"entity": "Tickets", "running": True},
    ]
    text = await run_cli("status", env=env)
    assert "scope: change in progress: TicketNotes (waiting), Tickets (running)" in text.out

    db = await connect(migrated_database)
    try:  # the scope runs finished: each recorded the scope it applied
        await db.execute(
            "UPDATE sync_scope_applied SET scope = $1, applied_at = now()",
            {"tickets": {"include_queues": [5]}},
        )
    finally:
        await db.close()
    result = await run_cli("status", "--json", env=env)
    scope = json.loads(result.out)["connections"]["acme"]["scope"]
    assert scope["following"] is True
    assert scope["pending"] == []
    assert "scope: the mirror follows it" in (await run_cli("status", env=env)).out

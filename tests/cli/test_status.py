"""``autotask-sync status``: what the person on call sees matches the tables and the topics, and
its verdict and exit code say whether to act (the rules alone: test_status_verdict.py)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from shared.connections import store as rows
from shared.db import connect
from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, make_consumer, make_producer, produce_many
from shared.messages.callout import callout_headers, callout_key
from shared.messages.deadletter import dead_letter_headers
from shared.messages.topics import Topics
from shared.registrations import RegistrationState, create_pending, set_state
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tests.helpers.pipeline import callout_body, create_topics
from tests.helpers.processes import run_cli, start_cli
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

KEY = SecretBox.generate_key()


async def _add_connection(dsn: str, *, scope: SyncScope | None = None) -> str:
    """Connection ``acme`` with an active Tickets webhook; returns the registration id."""
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
                **({"scope": scope} if scope is not None else {}),
            ),
            box,
        )
        registration = await create_pending(db, box, of_connection="acme", entity="Tickets")
        await set_state(
            db, registration.registration_id, RegistrationState.ACTIVE, autotask_webhook_id=501
        )
        return registration.registration_id
    finally:
        await db.close()


async def _seed_troubles(dsn: str) -> None:
    """acme's spool, sweeps, unresolved ids, and a lockout for ten more minutes."""
    registration_id = await _add_connection(dsn)
    db = await connect(dsn)
    try:
        await db.execute(
            "UPDATE webhook_registrations SET last_callout_at = now() - interval '90 seconds'"
        )
        await db.execute(
            "INSERT INTO callout_spool (connection, registration_id, topic, key, value) "
            "VALUES ('acme', $1, 't', '\\x00', '\\x00'), ('acme', $1, 't', '\\x00', '\\x00')",
            registration_id,
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


def _callouts(count: int) -> list[OutgoingMessage]:
    return [
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
        for i in range(count)
    ]


async def _produce(bootstrap: str, topic: str, messages: list[OutgoingMessage]) -> None:
    producer = make_producer(bootstrap, client_id="test")
    await producer.start()
    try:
        await produce_many(producer, topic, messages)
    finally:
        await producer.stop()


def _env(dsn: str, bootstrap: str, topics: Topics, group: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
        "AUTOTASK_SYNC_CONSUMER_GROUP": group,
    }


@asynccontextmanager
async def _member(bootstrap: str, topic: str, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer in ``group`` holding every partition of ``topic``, committing nothing: a
    worker that reads and never finishes."""
    consumer = make_consumer(bootstrap, topic, group_id=group, client_id="test-member")
    await consumer.start()
    try:

        async def joined() -> bool:
            await consumer.getmany(timeout_ms=200)
            return bool(consumer.assignment())

        await eventually(joined, within=timedelta(seconds=30), what=f"a member of {group}")
        yield consumer
    finally:
        await consumer.stop()


def _conditions(status: dict[str, Any]) -> set[str]:
    return {reason["condition"] for reason in status["reasons"]}


async def test_status_shows_each_concern_and_replayed_dead_letters_leave_the_count(
    migrated_database, kafka_bootstrap, unique
):
    await _seed_troubles(migrated_database)
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=1)
    callouts = _callouts(5)
    await _produce(kafka_bootstrap, topics.callouts, callouts)
    await _produce(
        kafka_bootstrap,
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
    group = f"workers-{unique}"
    consumer = make_consumer(kafka_bootstrap, topics.callouts, group_id=group, client_id="test")
    await consumer.start()
    try:  # a worker that finished 3 of the 5 callouts, then stopped
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

    env = _env(migrated_database, kafka_bootstrap, topics, group)
    result = await run_cli("status", "--json", env=env)
    assert result.code == 2, result.output  # down: callouts wait and nobody consumes
    status = json.loads(result.out)
    assert status["verdict"] == "down"
    assert _conditions(status) == {"no_consumer", "locked_out", "dead_letters_pending"}
    [stopped] = [r for r in status["reasons"] if r["condition"] == "no_consumer"]
    assert stopped["severity"] == "down"
    assert f"no consumer in group {group}: 2 callout(s) wait" in stopped["text"]
    acme = status["connections"]["acme"]
    assert [(w["entity"], w["state"], w["autotask_webhook_id"]) for w in acme["webhooks"]] == [
        ("Tickets", "active", 501)
    ]
    assert acme["spool"]["rows"] == 2
    assert acme["sweeps"][0]["repaired"] == 7
    assert acme["repaired_last_24h"] == 7
    assert acme["unresolved_ids"] == {"Tickets": 2}
    assert acme["dead_letters"] == {"pending": {"PermissionDeniedError": 2}, "replayed": 0}
    assert acme["lockout"]["failure_reason"] == "Autotask rejected the credentials"
    assert acme["lag"] == {"waiting": 2, "at_least": False}  # 5 produced, 3 committed
    assert status["consumer_lag"]["total"] == 2
    assert status["consumer_lag"]["members"] == 0

    text = await run_cli("status", env=env)
    assert text.code == 2, text.output
    lines = text.out.splitlines()
    assert lines[0] == "down"
    assert re.search(r"LOCKED OUT until \S+ \(in (9|10) min\)", text.out), text.out
    assert "gateway spool: 2 callout(s) waiting" in text.out
    assert "waiting for the worker: 2 callout(s)" in text.out
    assert "dead letters: 2 pending (PermissionDeniedError 2), 0 replayed" in text.out
    assert "secret-value-1" not in text.out + result.out

    # The replay waits for the lockout to end (--force overrides), then the letters leave the
    # pending count: the same screen no longer calls them a problem.
    refused = await run_cli("dlq", "replay", "--connection", "acme", env=env)
    assert refused.code == 1, refused.output
    assert "acme is locked out until" in refused.err
    forced = await run_cli("dlq", "replay", "--connection", "acme", "--force", env=env)
    assert forced.code == 0, forced.output
    after = json.loads((await run_cli("status", "--json", env=env)).out)
    assert after["connections"]["acme"]["dead_letters"] == {"pending": {}, "replayed": 2}
    assert "dead_letters_pending" not in _conditions(after)
    assert after["dead_letters"]["pending"] == 0


async def test_the_verdict_follows_the_worker_healthy_not_committing_stopped(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(migrated_database)
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=2)
    group = f"workers-{unique}"
    env = _env(migrated_database, kafka_bootstrap, topics, group)
    async with _member(kafka_bootstrap, topics.callouts, group):
        healthy = await run_cli("status", env=env)
        assert healthy.code == 0, healthy.output
        assert healthy.out.splitlines()[0] == "healthy"
        assert f"consumer group {group} on {topics.callouts}: 1 member(s)" in healthy.out

        # Callouts that arrived ten minutes ago and a member that never commits them.
        producer = make_producer(kafka_bootstrap, client_id="test")
        await producer.start()
        try:
            old = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1000)
            for m in _callouts(3):
                await producer.send_and_wait(
                    topics.callouts, m.value, key=m.key, headers=list(m.headers), timestamp_ms=old
                )
        finally:
            await producer.stop()
        stuck = await run_cli("status", "--json", "--commit-watch", "1", env=env)
        assert stuck.code == 1, stuck.output
        status = json.loads(stuck.out)
        assert status["verdict"] == "degraded"
        [reason] = status["reasons"]
        assert reason["condition"] == "not_committing"
        assert f"group {group} is not committing" in reason["text"]
        assert status["connections"]["acme"]["lag"] == {"waiting": 3, "at_least": False}

    stopped = await run_cli("status", "--json", env=env)
    assert stopped.code == 2, stopped.output
    [reason] = json.loads(stopped.out)["reasons"]
    assert (reason["severity"], reason["condition"]) == ("down", "no_consumer")
    assert group in reason["text"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_kafka_or_postgresql_unreachable_is_one_line_and_down(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(migrated_database)
    topics = Topics(prefix=f"s{unique}")
    group = f"workers-{unique}"
    closed = f"127.0.0.1:{_closed_port()}"

    no_kafka = await run_cli("status", env=_env(migrated_database, closed, topics, group))
    assert no_kafka.code == 2, no_kafka.output
    assert no_kafka.out.splitlines()[0] == "down"
    assert no_kafka.err == ""  # no aiokafka line, no traceback
    kafka_lines = [line for line in no_kafka.out.splitlines() if "could not reach Kafka" in line]
    assert len(kafka_lines) == 1, no_kafka.out
    assert kafka_lines[0].startswith("  down: Kafka: ")
    assert "connection acme" in no_kafka.out  # what PostgreSQL knows is still shown
    assert "waiting for the worker: unknown (Kafka cannot be read)" in no_kafka.out

    no_database = f"postgresql://postgres@{closed}/nothing"
    no_pg = await run_cli("status", "--json", env=_env(no_database, kafka_bootstrap, topics, group))
    assert no_pg.code == 2, no_pg.output
    assert no_pg.err == ""
    status = json.loads(no_pg.out)
    [reason] = [r for r in status["reasons"] if r["condition"] == "postgresql_unreachable"]
    assert reason["severity"] == "down"
    assert reason["text"].startswith("PostgreSQL: could not connect to PostgreSQL at ")
    assert "Traceback" not in no_pg.out


async def test_watch_refreshes_until_ctrl_c_and_ends_cleanly(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(migrated_database)
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=1)
    env = _env(migrated_database, kafka_bootstrap, topics, f"workers-{unique}")
    child = await start_cli(
        "status",
        "--watch",
        "0.2",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.process.stdout is not None
        screens = [
            json.loads(await asyncio.wait_for(child.process.stdout.readline(), 30))
            for _ in range(2)
        ]
        child.send_signal(signal.SIGINT)
        code = await child.wait(timedelta(seconds=20))
    finally:
        await child.kill()
    assert [s["verdict"] for s in screens] == ["degraded", "degraded"]  # no worker in the group
    assert code == 1
    assert child.process.stderr is not None
    assert await child.process.stderr.read() == b""


async def test_a_scope_change_in_progress_is_shown_and_not_a_problem(
    migrated_database, kafka_bootstrap, unique
):
    await _add_connection(
        migrated_database, scope=SyncScope.parse({"tickets": {"include_queues": [5]}})
    )
    db = await connect(migrated_database)
    try:
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
    topics = await create_topics(kafka_bootstrap, f"s{unique}", partitions=1)
    env = _env(migrated_database, kafka_bootstrap, topics, f"workers-{unique}")
    result = await run_cli("status", "--json", env=env)
    text = await run_cli("status", env=env)
    # A scope change is work, not a problem: only the missing worker is one here.
    assert _conditions(json.loads(result.out)) == {"no_consumer"}, result.output
    scope = json.loads(result.out)["connections"]["acme"]["scope"]
    assert scope["following"] is False
    assert scope["pending"] == [
        {"entity": "TicketNotes", "running": False},
        {"entity": "Tickets", "running": True},
    ]
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

"""``autotask-sync spool list|show|retry|drop`` as an operator runs it, against real PostgreSQL:
what waits in the gateway's spool and what Kafka refused, put back or dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.webhook_gateway import spool
from shared.db import connect
from tests.helpers.processes import CliResult, run_cli

pytestmark = pytest.mark.integration

BODY = b'{"Id":7,"EntityType":"Ticket","Fields":{"title":"private customer text"}}'
TOPIC = "autotask.callouts.v1"


async def _rows(dsn: str) -> tuple[int, int, int]:
    """Three rows: acme's spooled, globex's spooled, acme's rejected (in that id order)."""
    db = await connect(dsn)
    try:
        ids = []
        for connection, key in (("acme", b"acme:Ticket:7"), ("globex", b"globex:Ticket:8")):
            ids.append(
                await spool.append(
                    db,
                    of_connection=connection,
                    registration_id="r" * 32,
                    topic=TOPIC,
                    key=key,
                    value=BODY,
                    headers=[("connection", connection.encode()), ("binary", b"\xff")],
                    received_at=datetime.now(UTC) - timedelta(hours=2),
                )
            )
        await spool.record_failure(db, [ids[1]], "Kafka did not answer")
        poison = await spool.append(
            db,
            of_connection="acme",
            registration_id="r" * 32,
            topic=TOPIC,
            key=b"acme:Ticket:9",
            value=b" " * 2_000_000,
            headers=[("connection", b"acme")],
            received_at=datetime.now(UTC),
        )
        assert await spool.reject(db, poison, "MessageSizeTooLargeError: too large")
    finally:
        await db.close()
    return ids[0], ids[1], poison


async def _spool(dsn: str, *args: str, stdin: str | None = None) -> CliResult:
    return await run_cli("spool", *args, env={"DATABASE_URL": dsn}, stdin=stdin)


async def _left(dsn: str) -> list[tuple[int, bool]]:
    db = await connect(dsn)
    try:
        return [(entry.id, entry.rejected) for entry in await spool.entries(db)]
    finally:
        await db.close()


async def test_list_shows_spooled_rows_and_rejects_with_filters(migrated_database: str) -> None:
    acme, globex, poison = await _rows(migrated_database)

    everything = await _spool(migrated_database, "list")
    assert everything.code == 0, everything.output
    lines = everything.out.splitlines()
    assert [line.split()[:3] for line in lines[:3]] == [
        [str(acme), "spooled", "acme"],
        [str(globex), "spooled", "globex"],
        [str(poison), "rejected", "acme"],
    ]
    assert "2000000 bytes" in lines[2]
    assert "MessageSizeTooLargeError" in lines[2]
    assert "Kafka did not answer" in lines[1]
    assert "2h old" in lines[1]
    assert lines[-1] == "2 spooled, 1 rejected"
    assert "private customer text" not in everything.output

    only_acme = await _spool(migrated_database, "list", "--connection", "acme", "--json")
    listed = [json.loads(line) for line in only_acme.out.splitlines()]
    assert [(e["id"], e["state"], e["key"]) for e in listed] == [
        (acme, "spooled", "acme:Ticket:7"),
        (poison, "rejected", "acme:Ticket:9"),
    ]
    assert listed[0]["bytes"] == len(BODY)
    assert listed[0]["attempts"] == 0

    rejects = await _spool(migrated_database, "list", "--rejects", "--json")
    assert [json.loads(line)["id"] for line in rejects.out.splitlines()] == [poison]
    assert json.loads(rejects.out)["reason"] == "MessageSizeTooLargeError: too large"


async def test_list_of_an_empty_spool_says_so(migrated_database: str) -> None:
    result = await _spool(migrated_database, "list")
    assert (result.code, result.out.strip()) == (
        0,
        "the spool is empty, and nothing was rejected",
    )


async def test_show_gives_metadata_and_headers_and_the_body_only_when_asked(
    migrated_database: str,
) -> None:
    acme, _globex, _poison = await _rows(migrated_database)

    plain = await _spool(migrated_database, "show", str(acme))
    assert plain.code == 0, plain.output
    assert "acme:Ticket:7" in plain.out
    assert "binary: \\xff" in plain.out
    assert "private customer text" not in plain.out

    with_body = await _spool(migrated_database, "show", str(acme), "--body", "--json")
    shown = json.loads(with_body.out)
    assert shown["body"] == BODY.decode()
    assert shown["headers"] == [["connection", "acme"], ["binary", "\\xff"]]
    assert (shown["state"], shown["topic"], shown["bytes"]) == ("spooled", TOPIC, len(BODY))


async def test_retry_puts_a_reject_back_behind_the_spool_and_resets_a_spooled_rows_attempts(
    migrated_database: str,
) -> None:
    acme, globex, poison = await _rows(migrated_database)

    back = await _spool(migrated_database, "retry", str(poison))
    assert back.code == 0, back.output
    left = await _left(migrated_database)
    assert left[:2] == [(acme, False), (globex, False)]
    [(new_id, rejected)] = left[2:]
    assert not rejected
    assert new_id > poison
    assert f"as {new_id}" in back.out

    reset = await _spool(migrated_database, "retry", str(globex))
    assert reset.code == 0, reset.output
    db = await connect(migrated_database)
    try:
        assert await db.fetchval("SELECT attempts FROM callout_spool WHERE id = $1", globex) == 0
        body = await db.fetchval("SELECT value FROM callout_spool WHERE id = $1", new_id)
    finally:
        await db.close()
    assert bytes(body) == b" " * 2_000_000  # every byte back


async def test_drop_asks_unless_yes_and_deletes_a_row_of_either_table(
    migrated_database: str,
) -> None:
    acme, globex, poison = await _rows(migrated_database)

    declined = await _spool(migrated_database, "drop", str(acme), stdin="n\n")
    assert declined.code == 1
    assert "for good?" in declined.out
    assert len(await _left(migrated_database)) == 3

    confirmed = await _spool(migrated_database, "drop", str(acme), stdin="y\n")
    assert confirmed.code == 0, confirmed.output
    dropped = await _spool(migrated_database, "drop", str(poison), "--yes")
    assert dropped.code == 0, dropped.output
    assert await _left(migrated_database) == [(globex, False)]


@pytest.mark.parametrize("action", ["show", "retry", "drop"])
async def test_an_unknown_id_is_a_clear_error(migrated_database: str, action: str) -> None:
    result = await _spool(migrated_database, action, "424242", *(["--yes"] * (action == "drop")))
    assert result.code == 2
    assert "no spooled message or reject has id 424242" in result.err
    assert "Traceback" not in result.output


async def test_an_id_that_is_not_a_number_is_a_clear_error(migrated_database: str) -> None:
    result = await _spool(migrated_database, "show", "acme")
    assert result.code == 2
    assert "'acme' is not a spool id" in result.err

"""Purging a connection against real PostgreSQL: no row of it left in any table keyed by
connection, a tombstone for every mirrored record before its row goes, another connection
untouched, and a purge cut short by Kafka finished by the next one.

The broker is a recording stand-in for Kafka (as in tests/shared/mirror/test_change_ids.py),
because the failure that matters, a send refused half-way through, must come on cue; the real
broker carries the tombstones in tests/cli/test_connections.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from shared.connections import purge
from shared.connections import store as rows
from shared.db import Pool, session
from shared.entities import COMPANIES, TICKETS, EntitySpec
from shared.errors import KafkaError
from shared.messages.topics import Topics
from shared.mirror.store import Snapshot
from shared.mirror.writer import Mirror
from shared.secrets import SecretBox
from tests.helpers.connection_data import rows_by_table, seed_state_rows

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOPICS = Topics(prefix="purge")
ACME = rows.NewConnection(
    name="acme",
    username="api@acme.example",
    secret=SecretStr("secret-for-the-test"),
    integration_code=SecretStr("code-for-the-test"),
)


@dataclass
class Sent:
    topic: str
    key: tuple[str, int]
    value: bytes | None
    headers: dict[str, str]


class Broker:
    """Records what is sent; refuses every send once ``accept`` sends were taken."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.accept: int | None = None

    async def send(self, topic: str, value=None, key=None, headers=None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.accept is not None and len(self.sent) >= self.accept:
            future.set_exception(KafkaError(f"{topic}: not acknowledged"))
            return future
        ident = json.loads(key)
        self.sent.append(
            Sent(
                topic,
                (ident["connection"], ident["id"]),
                value,
                {name: raw.decode() for name, raw in headers or []},
            )
        )
        future.set_result(None)
        return future

    def last_by_key(self, topic: str) -> dict[tuple[str, int], Sent]:
        return {sent.key: sent for sent in self.sent if sent.topic == topic}


async def mirror_some(pool: Pool, broker: Broker, name: str, tickets: int) -> None:
    """``tickets`` tickets and 3 companies of ``name`` in the mirror, one ticket deleted."""
    mirror = Mirror(pool, broker, TOPICS)
    await mirror.apply_snapshots(name, TICKETS, _snapshots(TICKETS, tickets), origin="sweep")
    await mirror.apply_snapshots(name, COMPANIES, _snapshots(COMPANIES, 3), origin="sweep")
    await mirror.apply_deletes(name, TICKETS, [2], at=T0, origin="webhook")


def _snapshots(spec: EntitySpec, count: int) -> list[Snapshot]:
    field = "title" if spec is TICKETS else "companyName"
    return [Snapshot(i, {"id": i, field: f"{spec.table} {i}"}, T0) for i in range(1, count + 1)]


async def run_purge(pool: Pool, broker: Broker, name: str) -> list[purge.TableRows]:
    return [done async for done in purge.purge(pool, broker, TOPICS, name, batch=3)]


async def test_a_purge_cut_short_is_finished_by_the_next_and_leaves_nothing(pool: Pool) -> None:
    broker = Broker()
    async with session(pool, "seed") as db:
        await rows.insert(db, ACME, SecretBox([SecretBox.generate_key()]))
        await seed_state_rows(db, "acme")
        await seed_state_rows(db, "other")
    await mirror_some(pool, broker, "acme", tickets=10)
    await mirror_some(pool, broker, "other", tickets=4)
    async with session(pool, "count") as db:
        other_before = await rows_by_table(db, "other")
    published = len(broker.sent)

    broker.accept = published + 4  # the second batch of tickets' tombstones is refused
    with pytest.raises(KafkaError):
        await run_purge(pool, broker, "acme")
    async with session(pool, "count") as db:
        cut_short = await rows_by_table(db, "acme")
        disabled = await rows.fetch_one(db, "acme")
    assert disabled is not None  # stays, disabled, until the end
    assert not disabled.enabled
    assert cut_short["autotask.tickets"] == 10 - 3  # only the batch whose tombstones got out

    broker.accept = None
    finished = await run_purge(pool, broker, "acme")
    by_table = {done.table: done for done in finished}
    assert by_table["autotask.tickets"].rows == 7
    assert by_table["autotask.companies"].tombstones == 3
    assert by_table["connections"].rows == 1
    assert by_table["sync_runs"].rows == 1
    async with session(pool, "count") as db:
        assert {t: n for t, n in (await rows_by_table(db, "acme")).items() if n} == {}
        assert await rows_by_table(db, "other") == other_before

    for spec, count in ((TICKETS, 10), (COMPANIES, 3)):
        last = broker.last_by_key(TOPICS.changes(spec))
        ends = {ident: sent for ident, sent in last.items() if ident[0] == "acme"}
        assert sorted(i for _c, i in ends) == list(range(1, count + 1))
        for sent in ends.values():  # each key ends with the purge's tombstone
            assert sent.value is None
            assert sent.headers["ce_type"] == f"autotask.{spec.table}.tombstone"
            assert sent.headers["ce_reason"] == "purged"
            assert "content-type" not in sent.headers
    assert not [s for s in broker.sent if s.key[0] == "other" and s.value is None
                and s.headers["ce_reason"] == "purged"]  # fmt: skip
    # The ticket deleted before had a tombstone already: the purge's has an id of its own.
    ticket_2 = [
        s for s in broker.sent if s.topic == TOPICS.changes(TICKETS) and s.key == ("acme", 2)
    ]
    tombstones = {s.headers["ce_id"]: s.headers["ce_reason"] for s in ticket_2 if s.value is None}
    assert sorted(tombstones.values()) == ["deleted", "purged"]

    assert await run_purge(pool, broker, "acme") == []  # nothing left: a no-op

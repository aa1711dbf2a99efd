"""Change event ids against real PostgreSQL: one id per change, the same id when a change is
published again after a rollback, never one id for two different rows.

The mirror counts each row's changes (``change_seq``) in the statement that makes them, and the
writer commits the rows only once Kafka has acknowledged their events. The broker here is a
recording stand-in for Kafka because the failures that matter cannot be ordered from a real one
on cue: a send refused (nothing appended) and an acknowledgement lost after the broker appended
the event (the writer rolls back, yet consumers see the event). The real broker carries the
events in tests/e2e/test_consumer_fold.py.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import Pool
from shared.entities import TICKETS
from shared.errors import KafkaError
from shared.messages.topics import Topics
from shared.mirror.store import Snapshot, live_rows
from shared.mirror.writer import Mirror

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-11-01T12:00:00.000Z"
"""One last-modified value for every read: the fields that change (a title here, a ticket's
``lastActivityDate`` in Autotask) change without it, the case that repeated ids."""

Failure = Literal["refused", "lost_ack"]


@dataclass
class Sent:
    """One message the writer handed to the broker."""

    key: bytes
    value: dict[str, Any] | None
    headers: dict[str, str]
    appended: bool
    acknowledged: bool

    @property
    def ce_id(self) -> str:
        return self.headers["ce_id"]


class Broker:
    """What the writer sends, and whether it reached the log and was acknowledged."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failure: Failure | None = None

    async def send(self, topic: str, value=None, key=None, headers=None) -> asyncio.Future[None]:
        acknowledged = self.failure is None
        self.sent.append(
            Sent(
                key=key,
                value=orjson.loads(value) if value is not None else None,
                headers={name: raw.decode() for name, raw in headers or []},
                appended=self.failure != "refused",
                acknowledged=acknowledged,
            )
        )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if acknowledged:
            future.set_result(None)
        else:
            future.set_exception(KafkaError(f"{topic}: not acknowledged ({self.failure})"))
        return future

    @property
    def log(self) -> list[Sent]:
        """What consumers read: everything appended, acknowledged or not."""
        return [sent for sent in self.sent if sent.appended]


@dataclass(frozen=True)
class Step:
    """One write of the row (a read of it with ``title``) or its delete; when the publish
    fails, the work is redone at once (the worker's retry), reading ``redo_title``."""

    action: Literal["write", "delete"]
    title: str
    in_scope: bool
    origin: Literal["webhook", "sweep", "backfill"]
    failure: Failure | None
    redo_title: str


STEPS = st.lists(
    st.builds(
        Step,
        action=st.sampled_from(["write", "write", "write", "delete"]),
        title=st.sampled_from("ABC"),
        in_scope=st.sampled_from([True, True, True, False]),
        origin=st.sampled_from(["webhook", "sweep", "backfill"]),
        failure=st.sampled_from([None, None, "refused", "lost_ack"]),
        redo_title=st.sampled_from("ABC"),
    ),
    min_size=1,
    max_size=12,
)
ROW_IDS = itertools.count(1)
"""A row of its own for each example (the database lives as long as the test)."""


class Row:
    """Drives one ticket through the writer, a minute of read time per attempt."""

    def __init__(self, pool: Pool) -> None:
        self.broker = Broker()
        self.mirror = Mirror(pool, self.broker, Topics(prefix="ids"))
        self.id = next(ROW_IDS)
        self.clock = T0
        self.counters: list[int] = []
        """The row's ``change_seq`` after each change that published."""

    async def attempt(self, step: Step, title: str, failure: Failure | None) -> list[Sent]:
        """One try of ``step``: what it sent (rolled back when the broker failed it)."""
        self.clock += timedelta(minutes=1)
        self.broker.failure = failure
        start = len(self.broker.sent)
        try:
            if step.action == "write":
                entity = {"id": self.id, "title": title, "status": 1, "queueID": 8,
                          "lastTrackedModificationDateTime": STAMP}  # fmt: skip
                snapshot = Snapshot(self.id, entity, self.clock, in_scope=step.in_scope)
                applied = await self.mirror.apply_snapshots(
                    "acme", TICKETS, [snapshot], origin=step.origin
                )
            else:
                applied = await self.mirror.apply_deletes(
                    "acme", TICKETS, [self.id], at=self.clock, origin=step.origin
                )
            self.counters += [c.change_seq for c in applied.changes if c.op is not None]
        except KafkaError:
            assert failure is not None
        finally:
            self.broker.failure = None
        return self.broker.sent[start:]


def fold(log: list[Sent]) -> dict[int, Any]:
    """A consumer's state: latest ``after`` per key, deduplicated by ``ce_id``."""
    seen: set[str] = set()
    state: dict[int, Any] = {}
    for sent in log:
        if sent.ce_id in seen:
            continue
        seen.add(sent.ce_id)
        ident = orjson.loads(sent.key)["id"]
        if sent.value is None or sent.value["op"] == "d":
            state.pop(ident, None)
        else:
            state[ident] = sent.value["after"]
    return state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_an_id_names_one_change_and_survives_a_rollback(pool: Pool, steps: list[Step]):
    row = Row(pool)
    for step in steps:
        tried = await row.attempt(step, step.title, step.failure)
        if step.failure is None or not tried:
            continue  # published and committed, or nothing to publish (nothing to fail)
        redo_title = step.title if step.action == "delete" else step.redo_title
        redone = await row.attempt(step, redo_title, None)
        if redo_title == step.title:
            # The same change published again (a redelivery): the same ids, in the same order.
            assert [s.ce_id for s in redone] == [s.ce_id for s in tried]

    events = [sent for sent in row.broker.log if sent.value is not None]
    tombstones = [sent for sent in row.broker.log if sent.value is None]
    # Every id consumers read names one content: different rows never share an id...
    by_id: dict[str, tuple[Any, str]] = {}
    for sent in events:
        content = (sent.value["after"], sent.headers["ce_type"])
        assert by_id.setdefault(sent.ce_id, content) == content, sent.ce_id
    # ...every committed change has an id of its own, however often the row returns to an
    # earlier content (A -> B -> A -> B), and tombstones have ids of their own.
    committed = [sent.ce_id for sent in row.broker.sent if sent.acknowledged]
    assert len(committed) == len(set(committed))
    assert not {s.ce_id for s in tombstones} & {s.ce_id for s in events}
    # What a backfill writes is a snapshot; removals are d whatever wrote them.
    for sent in events:
        origin, op = sent.value["source"]["origin"], sent.value["op"]
        assert op == "d" or (op == "r") == (origin == "backfill"), sent.value

    # A consumer deduplicating on ce_id holds the mirror's row. (Only without lost
    # acknowledgements: the event of a write rolled back after the broker appended it stays
    # on the topic until the row's next change supersedes it; at least once, never lost.)
    if not any(step.failure == "lost_ack" for step in steps):
        async with pool.acquire() as db:
            mirrored = await live_rows(db, TICKETS, "acme")
        assert fold(row.broker.log).get(row.id) == mirrored.get(row.id)


async def test_the_counter_moves_only_with_changes_that_publish(pool: Pool):
    row = Row(pool)
    write = Step("write", "A", True, "webhook", None, "A")
    kinds = []
    for step, title in [
        (write, "A"),  # created: 1
        (write, "A"),  # unchanged
        (write, "B"),  # updated: 2
        (Step("write", "C", False, "sweep", None, "C"), "C"),  # left the scope: 3
        (Step("write", "D", False, "sweep", None, "D"), "D"),  # changed while out: nothing
        (Step("delete", "", True, "sweep", None, ""), ""),  # deleted while out: nothing
        (write, "B"),  # back: 4
        (Step("delete", "", True, "webhook", None, ""), ""),  # deleted: 5
    ]:
        sent = await row.attempt(step, title, None)
        kinds.append([s.headers["ce_type"].rsplit(".", 1)[1] for s in sent])
    assert row.counters == [1, 2, 3, 4, 5]
    assert kinds == [
        ["created"],
        [],
        ["updated"],
        ["out_of_scope", "tombstone"],
        [],
        [],
        ["created"],
        ["deleted", "tombstone"],
    ]
    assert len({s.ce_id for s in row.broker.sent}) == len(row.broker.sent)

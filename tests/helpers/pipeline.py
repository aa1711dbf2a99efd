"""Helpers for pipeline tests: topics, callouts as the gateway writes them, and the checks users
care about (the mirror equals the tenant, the change topics rebuild the mirror). Services as real
processes come from :mod:`tests.helpers.processes`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import connect
from shared.entities import EntitySpec, by_rest_name
from shared.kafka import OutgoingMessage, ensure_topics, make_producer, produce_many
from shared.kafka.reader import read_to_end
from shared.messages.callout import callout_headers, callout_key
from shared.messages.topics import Topics
from shared.mirror.store import live_rows
from tests.helpers.clients import truth
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator


async def create_topics(bootstrap: str, prefix: str, *, partitions: int = 4) -> Topics:
    """Every topic of a deployment with ``prefix`` (small partition counts for tests)."""
    topics = Topics(prefix=prefix, partitions=partitions)
    await ensure_topics(bootstrap, topics.declarations(), replication_factor=1)
    return topics


def callout_body(entity: EntitySpec, action: str, entity_id: int, sequence: int = 1) -> bytes:
    """A callout body shaped like Autotask's (only what routing and the worker read)."""
    return json.dumps(
        {
            "Action": action,
            "Guid": "00000000-0000-0000-0000-000000000001",
            "EntityType": entity.callout_type,
            "Id": entity_id,
            "Fields": {},
            "EventTime": datetime.now(UTC).isoformat(),
            "SequenceNumber": sequence,
        },
        separators=(",", ":"),
    ).encode()


async def produce_callouts(
    bootstrap: str,
    topics: Topics,
    connection: str,
    changes: Iterable[tuple[str, str, int]],
) -> int:
    """Put callouts on the callouts topic exactly as the gateway does; ``changes`` are
    ``(REST entity name, "create"|"update"|"delete", id)``. Returns how many."""
    producer = make_producer(bootstrap, client_id="test-callouts")
    await producer.start()
    count = 0
    try:
        by_topic: list[OutgoingMessage] = []
        for sequence, (entity_name, action, entity_id) in enumerate(changes, start=1):
            entity = by_rest_name(entity_name)
            by_topic.append(
                OutgoingMessage(
                    key=callout_key(connection, entity, entity_id),
                    value=callout_body(entity, action.capitalize(), entity_id, sequence),
                    headers=callout_headers(
                        connection=connection,
                        registration_id="test-registration",
                        entity=entity,
                        received_at=datetime.now(UTC),
                        request_id=f"r{sequence}",
                    ),
                )
            )
            count += 1
        for start in range(0, len(by_topic), 1000):
            await produce_many(producer, topics.callouts, by_topic[start : start + 1000])
    finally:
        await producer.stop()
    return count


def tenant_state(sim: Simulator, entities: Iterable[EntitySpec]) -> dict[tuple[str, int], Any]:
    """``(entity, id) -> record`` of everything the tenant holds now."""
    return {
        (entity.rest_name, row["id"]): row
        for entity in entities
        for row in truth(sim, entity.rest_name)
    }


def callouts_for(
    before: Mapping[tuple[str, int], Any], after: Mapping[tuple[str, int], Any]
) -> list[tuple[str, str, int]]:
    """The callouts webhooks subscribed to every field would send for the difference between
    two :func:`tenant_state` snapshots: side effects included (a note added changes its
    ticket's ``lastActivityDate``; a ticket deleted takes its notes with it)."""
    changes = [(e, "create", i) for (e, i) in after.keys() - before.keys()]
    changes += [
        (e, "update", i) for (e, i) in after.keys() & before.keys() if after[e, i] != before[e, i]
    ]
    changes += [(e, "delete", i) for (e, i) in before.keys() - after.keys()]
    return sorted(changes, key=lambda change: (change[0], change[2]))


async def mirror_diff(
    dsn: str, connection: str, sim: Simulator, entities: Iterable[EntitySpec]
) -> dict[str, dict[str, Any]]:
    """Per entity, what differs between the mirror's live rows and the tenant (empty: equal).

    Every entity is compared in full (the whole JSON), deletes included (a deleted entity must
    not be live in the mirror)."""
    db = await connect(dsn)
    problems: dict[str, dict[str, Any]] = {}
    try:
        for entity in entities:
            mirrored = await live_rows(db, entity, connection)
            tenant = {row["id"]: row for row in truth(sim, entity.rest_name)}
            missing = sorted(tenant.keys() - mirrored.keys())
            phantom = sorted(mirrored.keys() - tenant.keys())
            stale = sorted(i for i in tenant.keys() & mirrored.keys() if tenant[i] != mirrored[i])
            if missing or phantom or stale:
                problems[entity.rest_name] = {
                    "missing": missing[:20],
                    "phantom": phantom[:20],
                    "stale": stale[:20],
                    "counts": (len(missing), len(phantom), len(stale)),
                }
    finally:
        await db.close()
    return problems


async def differs_only_where_no_callout_is_sent(
    dsn: str, connection: str, sim: Simulator, entities: Iterable[EntitySpec]
) -> bool:
    """True when the mirror differs from the tenant only where webhooks send nothing: Autotask
    sends no callout for a ticket whose only change is a note's ``lastActivityDate`` (stale
    tickets), nor for the notes a deleted ticket takes with it (phantom notes); one quick sync
    repairs exactly those. Raises AssertionError naming the first other difference."""
    diff = await mirror_diff(dsn, connection, sim, entities)
    for entity, problems in diff.items():
        missing, phantom, stale = problems["counts"]
        assert missing == 0, (entity, diff)
        assert stale == 0 or entity == "Tickets", (entity, diff)
        assert phantom == 0 or entity == "TicketNotes", (entity, diff)
    return True


async def wait_for_mirror(
    dsn: str,
    connection: str,
    sim: Simulator,
    entities: Iterable[EntitySpec],
    *,
    within: timedelta = timedelta(seconds=60),
) -> dict[str, dict[str, Any]]:
    """Until the mirror equals the tenant (see :func:`mirror_diff`); the test fails after
    ``within`` with what still differs. Returns the difference: empty."""
    wanted = list(entities)

    async def equal() -> bool:
        diff = await mirror_diff(dsn, connection, sim, wanted)
        assert not diff, diff
        return True

    names = ", ".join(entity.rest_name for entity in wanted)
    await eventually(
        equal,
        within=within,
        interval=timedelta(milliseconds=250),
        what=f"the mirror of {connection!r} to equal the tenant ({names})",
    )
    return {}


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic`` from the start to its current end (no consumer group)."""
    return [record async for record in read_to_end(bootstrap, topic, client_id="test-reader")]


Replayed = dict[tuple[str, int], dict[str, Any]]
"""The state a consumer of a change topic holds: the latest ``after`` per (connection, id)."""


def _fold(messages: Iterable[Any]) -> tuple[Replayed, dict[tuple[str, int], list[str]]]:
    """Fold change-topic messages in offset order: the latest ``after`` per key, minus what was
    deleted or tombstoned; and per key, a line for each of its events (for failure messages)."""
    state: Replayed = {}
    history: dict[tuple[str, int], list[str]] = {}
    for message in messages:
        key = json.loads(message.key)
        ident = (key["connection"], key["id"])
        events = history.setdefault(ident, [])
        if message.value is None:
            state.pop(ident, None)
            events.append(f"@{message.partition}:{message.offset} tombstone")
            continue
        envelope = json.loads(message.value)
        if envelope["op"] == "d":
            state.pop(ident, None)
        else:
            state[ident] = envelope["after"]
        source = envelope.get("source", {})
        events.append(
            f"@{message.partition}:{message.offset} op={envelope['op']} "
            f"version={source.get('version')} origin={source.get('origin')} "
            f"ts_ms={envelope.get('ts_ms')} ce_id={dict(message.headers or []).get('ce_id')!r}"
        )
    return state, history


async def replay_changes(bootstrap: str, topic: str) -> Replayed:
    """Rebuild the state a downstream consumer of a change topic holds."""
    state, _history = _fold(await read_topic(bootstrap, topic))
    return state


async def replay_mismatch(
    bootstrap: str, topic: str, connection: str, expected: Iterable[Mapping[str, Any]]
) -> str:
    """Why the replay of ``topic`` for ``connection`` differs from ``expected`` (the tenant's
    rows), empty when it does not: the ids missing, extra and different, and for a few of them
    the fields that differ and every event of the key in offset order (what an assertion
    message needs to tell a lost event from a stale one published last)."""
    state, all_history = _fold(await read_topic(bootstrap, topic))
    replayed = {i: after for (c, i), after in state.items() if c == connection}
    history = {i: events for (c, i), events in all_history.items() if c == connection}
    wanted = {int(row["id"]): dict(row) for row in expected}
    missing = sorted(wanted.keys() - replayed.keys())
    extra = sorted(replayed.keys() - wanted.keys())
    different = sorted(i for i in wanted.keys() & replayed.keys() if wanted[i] != replayed[i])
    if not (missing or extra or different):
        return ""
    lines = [
        f"{topic} for {connection!r}: missing {missing[:20]}, extra {extra[:20]}, "
        f"different {different[:20]}"
    ]
    for ident in (different + missing + extra)[:5]:
        want, got = wanted.get(ident, {}), replayed.get(ident, {})
        fields = sorted(f for f in want.keys() | got.keys() if want.get(f) != got.get(f))
        lines.append(
            f"  id {ident}: "
            + ", ".join(f"{f}: topic {got.get(f)!r} tenant {want.get(f)!r}" for f in fields[:8])
        )
        lines.extend(f"    {event}" for event in history.get(ident, [])[-8:])
    return "\n".join(lines)

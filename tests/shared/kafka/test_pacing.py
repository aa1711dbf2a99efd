"""Reconnect pacing: a Kafka client asked in a loop for a broker it cannot reach tries it a few
times a second, not thousands; the readiness probe's metadata fetch is never held back.

The client here is a stand-in with aiokafka's two methods that :func:`pace` wraps (a pure unit:
the real clients against a broker that goes away are in test_outage.py); the first test pins that
aiokafka's clients still have them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from shared.kafka import make_consumer, make_producer
from shared.kafka.pacing import METADATA_INTERVAL, pace
from shared.runtime.backoff import Backoff

FAST = Backoff(first=timedelta(milliseconds=20), cap=timedelta(milliseconds=200))
LOOP = timedelta(seconds=1)


async def test_the_project_clients_are_paced() -> None:
    producer = make_producer("127.0.0.1:9", client_id="test")
    consumer = make_consumer("127.0.0.1:9", "t", group_id="g", client_id="test")
    try:
        for client in (producer.client, consumer._client):
            assert client._paced
            assert client._get_conn.__qualname__ == "_Pacer.get_conn"
            assert client._metadata_update.__qualname__ == "_Pacer.metadata_update"
    finally:
        await producer.stop()  # never started: nothing to flush
        await consumer.stop()


class _Unreachable:
    """aiokafka's client as far as pacing sees it, with every broker away."""

    def __init__(self, *, updates_succeed: bool = False) -> None:
        self.cluster = object()
        self.attempts = 0
        self.updates = 0
        self._updates_succeed = updates_succeed

    async def _get_conn(self, node_id: Any, **_options: Any) -> None:
        self.attempts += 1

    async def _metadata_update(self, cluster: Any, topics: Any) -> bool:
        self.updates += 1
        if self._updates_succeed:
            return True
        return await self._get_conn(1) is not None


async def _for(duration: timedelta, step: Any) -> int:
    """Call ``step`` in a loop (yielding between calls) for ``duration``; how many calls."""
    calls, deadline = 0, time.monotonic() + duration.total_seconds()
    while time.monotonic() < deadline:
        await step()
        calls += 1
        await asyncio.sleep(0)
    return calls


async def test_a_broker_that_refused_is_not_tried_again_until_its_back_off_passed() -> None:
    client = _Unreachable()
    pace(client, FAST)
    asked = await _for(LOOP, lambda: client._get_conn(1))
    assert asked > 1000  # the loop asked that often...
    assert client.attempts < 100  # ...and the client tried a handful of times (unpaced: each)


async def test_failed_metadata_refreshes_wait_out_the_back_off_instead_of_spinning() -> None:
    client = _Unreachable()
    pace(client, FAST)
    refreshed = await _for(LOOP, lambda: client._metadata_update(client.cluster, set()))
    assert refreshed < 100
    assert client.attempts < 100


async def test_even_successful_refreshes_are_spaced_when_forced_in_a_loop() -> None:
    client = _Unreachable(updates_succeed=True)
    pace(client, FAST)
    await _for(LOOP, lambda: client._metadata_update(client.cluster, set()))
    assert client.updates <= LOOP / METADATA_INTERVAL + 2


async def test_the_probes_metadata_fetch_is_not_held_back() -> None:
    client = _Unreachable()
    pace(client, FAST)
    await client._metadata_update(client.cluster, set())  # a failed refresh: back-off starts
    started = time.monotonic()
    for _ in range(50):
        assert await client._metadata_update(object(), None) is False  # a probe's own view
    assert time.monotonic() - started < 1  # answered at once each time, not after a back-off
    assert client.updates == 51

"""How often an aiokafka client tries the brokers again: capped exponential back-off, jittered.

aiokafka 0.14 has no ``reconnect_backoff_ms``: a client that cannot reach a broker tries again
whenever one of its loops asks, and some loops ask at once. A producer whose metadata says a
partition has no leader (a single broker reports its partitions leaderless while it shuts down,
and the client keeps that answer for the whole outage) runs its sender loop as "force a metadata
update, wait for it", and an update that cannot connect fails in a millisecond: ~2,000
connection attempts a second per process, a core burnt and the log flooded, for as long as Kafka
is away. Its produce requests to a known leader that is down retry every ``retry_backoff_ms``
(100 ms), a connection attempt each.

:func:`pace` gives one client (a producer's or consumer's ``.client``) what the Java client calls
``reconnect.backoff.ms`` / ``reconnect.backoff.max.ms``, with :class:`~shared.runtime.backoff.
Backoff` (:data:`RECONNECT_BACKOFF`):

- after a failed connection attempt to a broker, the client does not try that broker again
  until a jittered, doubling wait has passed; meanwhile asking for it fails at once without
  touching the network (aiokafka's loops then wait their own ``retry_backoff_ms``). A connection
  that succeeds starts the schedule again;
- the client's background metadata refresh runs at most once per :data:`METADATA_INTERVAL`
  however often it is forced, and after a failed refresh not before the same back-off has
  passed. Whoever waits for the refresh (a send, the sender loop) waits that long too, instead
  of spinning. A metadata fetch of the readiness probe is not delayed.

Nothing else changes: what the client does once connected, its timeouts, its retries. The two
methods wrapped are aiokafka internals (``AIOKafkaClient._get_conn`` and ``._metadata_update``);
the version is pinned, and ``tests/shared/kafka/test_pacing.py`` fails if they change shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from shared.logging import get_logger
from shared.runtime.backoff import Backoff, Retry

log = get_logger(__name__)

RECONNECT_BACKOFF = Backoff(first=timedelta(milliseconds=100), cap=timedelta(seconds=2))
"""Waits after failed connection attempts to one broker (and failed metadata refreshes): up to
0.1 s after the first, doubling to at most 2 s, so a client makes about one attempt a second per
broker while Kafka is away and notices it back within 2 s."""

METADATA_INTERVAL = timedelta(milliseconds=100)
"""The shortest time between two metadata refreshes of one client, even when every one succeeds
(a cluster that answers but has no leader for a partition would otherwise be asked in a loop)."""


def pace(client: Any, backoff: Backoff = RECONNECT_BACKOFF) -> None:
    """Give ``client`` (an ``AIOKafkaClient``, not started yet) a reconnect back-off (see the
    module docstring). Idempotent."""
    if getattr(client, "_paced", False):
        return
    missing = [name for name in ("_get_conn", "_metadata_update") if not hasattr(client, name)]
    if missing:  # another aiokafka: run unpaced rather than not at all
        log.warning("cannot pace this Kafka client's reconnects", missing=missing)
        return
    pacer = _Pacer(client, backoff)
    client._get_conn = pacer.get_conn
    client._metadata_update = pacer.metadata_update
    client._paced = True


class _Pacer:
    def __init__(self, client: Any, backoff: Backoff) -> None:
        self._client = client
        self._backoff = backoff
        self._get_conn: Callable[..., Awaitable[Any]] = client._get_conn
        self._update: Callable[..., Awaitable[bool]] = client._metadata_update
        self._brokers: dict[Any, tuple[Retry, float]] = {}
        """Per broker (node id): its failures in a row, and when it may be tried again."""
        self._refreshes = Retry(backoff)
        self._next_refresh = 0.0

    async def get_conn(self, node_id: Any, **options: Any) -> Any:
        """``AIOKafkaClient._get_conn``, but None at once while ``node_id`` is backing off."""
        retry, not_before = self._brokers.get(node_id, (None, 0.0))
        if time.monotonic() < not_before:
            return None
        connection = await self._get_conn(node_id, **options)
        if connection is not None:
            self._brokers.pop(node_id, None)
            return connection
        retry = retry or Retry(self._backoff)
        self._brokers[node_id] = (retry, time.monotonic() + retry.failed())
        return None

    async def metadata_update(self, cluster: Any, topics: Any) -> bool:
        """``AIOKafkaClient._metadata_update``, paced when it refreshes the client's own view."""
        if cluster is not self._client.cluster:  # fetch_all_metadata: a probe, answered now
            return await self._update(cluster, topics)
        wait = self._next_refresh - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        updated = await self._update(cluster, topics)
        if updated:
            self._refreshes.succeeded()
            pause = METADATA_INTERVAL.total_seconds()
        else:
            pause = max(METADATA_INTERVAL.total_seconds(), self._refreshes.failed())
        self._next_refresh = time.monotonic() + pause
        return updated


__all__ = ["METADATA_INTERVAL", "RECONNECT_BACKOFF", "pace"]

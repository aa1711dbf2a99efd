"""The consumer lag a worker exports: only for the partitions it owns now.

Each worker exports ``autotask_sync_worker_consumer_lag{topic,partition}``. A partition that a
rebalance moved is dropped at once by the worker that lost it (its revoke), and exported by its
new owner from that owner's next measurement: summed over the workers, the metric is the group's
lag, never a double count (the lag alert sums it). The total is also the waiting part of the
worker's progress (``/readyz``): callouts behind the end of its partitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping

from aiokafka import TopicPartition

from shared.metrics import WORKER_CONSUMER_LAG


class OwnedLag:
    """The last measured lag of each owned partition, mirrored into the gauge."""

    def __init__(self) -> None:
        self._lag: dict[TopicPartition, int] = {}

    @property
    def total(self) -> int:
        """Messages behind, over the partitions owned (as last measured)."""
        return sum(self._lag.values())

    def update(self, lags: Mapping[TopicPartition, int], owned: Collection[TopicPartition]) -> None:
        """A new measurement (``lags``) while the worker owns ``owned``: partitions no longer
        owned are forgotten, the others set."""
        self.forget([tp for tp in self._lag if tp not in owned])
        for partition, lag in lags.items():
            self._lag[partition] = lag
            WORKER_CONSUMER_LAG.labels(partition.topic, str(partition.partition)).set(lag)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """``partitions`` are someone else's now: stop exporting them."""
        for partition in partitions:
            self._lag.pop(partition, None)
            with contextlib.suppress(KeyError):  # never measured here
                WORKER_CONSUMER_LAG.remove(partition.topic, str(partition.partition))


__all__ = ["OwnedLag"]

"""The offset tracker offers only contiguous finished prefixes, whatever the finishing order."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shared.kafka.offsets import OffsetTracker


def test_out_of_order_finishes_wait_for_the_gap():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.started(0, [10, 11, 12, 13])
    tracker.finished(0, [12, 13])
    assert tracker.committable() == {0: 10}  # nothing past the in-flight 10
    tracker.finished(0, [10])
    assert tracker.committable() == {0: 11}
    tracker.committed({0: 11})
    assert tracker.committable() == {}
    tracker.finished(0, [11])
    assert tracker.committable() == {0: 14}
    assert tracker.in_flight() == 0


def test_offsets_the_broker_skipped_do_not_block_the_commit():
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p", [5, 7, 9])  # 6 and 8 are transaction markers, never delivered
    tracker.finished("p", [9, 7])
    assert tracker.committable() == {"p": 5}
    tracker.finished("p", [5])
    assert tracker.committable() == {"p": 10}


def test_partitions_are_independent_and_forgotten_on_revoke():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.started(0, [1, 2])
    tracker.started(1, [100])
    tracker.finished(1, [100])
    assert tracker.committable() == {0: 1, 1: 101}
    tracker.forget([1])
    assert tracker.partitions() == [0]
    assert tracker.in_flight(0) == 2


def test_redeliveries_and_unknown_finishes_change_nothing():
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.started(0, [3, 4])
    tracker.started(0, [3])  # redelivered while in flight
    tracker.finished(0, [3, 3, 99])
    tracker.finished(7, [1])  # a partition never started
    assert tracker.committable() == {0: 4}


@given(
    count=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=10_000),
    skipped=st.sets(st.integers(min_value=0, max_value=59), max_size=10),
)
def test_never_offers_an_offset_beyond_something_unfinished(count, seed, skipped):
    rng = random.Random(seed)
    offsets = [o for o in range(100, 100 + count) if (o - 100) not in skipped] or [100]
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.started(0, offsets)
    remaining = list(offsets)
    rng.shuffle(remaining)
    done: set[int] = set()
    while remaining:
        batch, remaining = remaining[:3], remaining[3:]
        tracker.finished(0, batch)
        done.update(batch)
        offer = tracker.committable().get(0, offsets[0])
        assert all(o in done for o in offsets if o < offer)  # never past an unfinished one
    assert tracker.committable()[0] == offsets[-1] + 1  # and everything, once all are done

"""The back-off schedule: exponential ceilings up to the cap, full jitter below them, a count
that starts again after a success, and waits a stop cuts short."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta

import pytest

from shared.runtime.backoff import Backoff, Retry

SCHEDULE = Backoff(first=timedelta(milliseconds=100), cap=timedelta(seconds=2))


def test_ceilings_double_from_first_up_to_the_cap() -> None:
    assert [SCHEDULE.ceiling(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert SCHEDULE.ceiling(10_000) == 2.0  # no overflow however long the outage


def test_each_wait_is_drawn_below_its_ceiling_and_spread_over_it() -> None:
    rng = random.Random(7)
    waits = [SCHEDULE.delay(6, rng) for _ in range(2000)]
    assert all(0.0 <= wait <= 2.0 for wait in waits)
    # Full jitter: replicas that failed together spread over the whole range.
    assert min(waits) < 0.2
    assert max(waits) > 1.8
    assert 0.9 < sum(waits) / len(waits) < 1.1


def test_a_schedule_needs_a_positive_first_wait_no_longer_than_the_cap() -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(first=timedelta(0))
    with pytest.raises(ValueError, match="cap"):
        Backoff(first=timedelta(seconds=2), cap=timedelta(seconds=1))


def test_failures_in_a_row_climb_the_schedule_and_a_success_starts_it_again() -> None:
    retry = Retry(Backoff(first=timedelta(seconds=1), cap=timedelta(seconds=8)), rng=_Top())
    assert [retry.failed() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry.failures == 5
    retry.succeeded()
    assert retry.failed() == 1.0


async def test_a_wait_ends_when_the_stop_is_set() -> None:
    retry = Retry(SCHEDULE)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    await retry.wait(60, stop)
    assert time.monotonic() - started < 30  # not the minute it was asked to wait


class _Top(random.Random):
    """Always the ceiling, to read the schedule itself."""

    def uniform(self, a: float, b: float) -> float:
        return b

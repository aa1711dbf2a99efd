"""Limiter logic without a server: slots by priority, 429 pauses, budget throttling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.autotask import BudgetConfig, BudgetTracker, ManualClock, ThresholdInfo
from shared.autotask._limiter import Limiter, LimiterConfig, Priority, PrioritySemaphore
from shared.errors import (
    AutotaskServerError,
    DeadlineExceededError,
    HourlyLimitError,
    ThreadLimitError,
)

FAR = 1e12  # a deadline nobody reaches


class Usage:
    """A fake ThresholdInformation reader counting its calls."""

    def __init__(self, count: int, threshold: int = 10_000) -> None:
        self.count = count
        self.threshold = threshold
        self.reads = 0
        self.fail = False

    async def __call__(self) -> ThresholdInfo:
        self.reads += 1
        if self.fail:
            raise AutotaskServerError("down")
        return ThresholdInfo(
            external_request_threshold=self.threshold, current_timeframe_request_count=self.count
        )


def make(usage: Usage | None = None, **config) -> tuple[Limiter, ManualClock]:
    clock = ManualClock()
    budget_config = config.pop("budget", BudgetConfig())
    budget = BudgetTracker("t-limiter", budget_config, clock)
    if usage is not None:
        budget.bind(usage)
    limiter = Limiter(
        "t-limiter", LimiterConfig(budget=budget_config, **config), clock=clock, budget=budget
    )
    return limiter, clock


async def test_priority_semaphore_serves_higher_priority_first():
    semaphore = PrioritySemaphore(1)
    await semaphore.acquire(Priority.SWEEP)
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await semaphore.acquire(priority)
        order.append(name)
        semaphore.release()

    tasks = [
        asyncio.create_task(wait("sweep-1", Priority.SWEEP)),
        asyncio.create_task(wait("webhook", Priority.WEBHOOK)),
        asyncio.create_task(wait("sweep-2", Priority.SWEEP)),
        asyncio.create_task(wait("person", Priority.INTERACTIVE)),
    ]
    await asyncio.sleep(0)
    semaphore.release()
    await asyncio.gather(*tasks)
    assert order == ["person", "webhook", "sweep-1", "sweep-2"]
    assert semaphore.free == 1


async def test_cancelled_waiter_does_not_leak_a_slot():
    semaphore = PrioritySemaphore(1)
    await semaphore.acquire(0)
    waiter = asyncio.create_task(semaphore.acquire(0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    semaphore.release()
    assert semaphore.free == 1


async def test_slots_cap_concurrency_per_endpoint():
    limiter, _clock = make(max_concurrency=3, endpoint_concurrency={"Companies": 1})
    live = {"Tickets": 0, "Companies": 0}
    peak = {"Tickets": 0, "Companies": 0}

    async def call(endpoint: str) -> None:
        async with limiter.slot(endpoint, Priority.WEBHOOK, FAR):
            live[endpoint] += 1
            peak[endpoint] = max(peak[endpoint], live[endpoint])
            await asyncio.sleep(0.001)
            live[endpoint] -= 1

    await asyncio.gather(
        *(call("Tickets") for _ in range(20)), *(call("Companies") for _ in range(5))
    )
    assert peak == {"Tickets": 3, "Companies": 1}


async def test_thread_limit_pauses_the_endpoint_for_retry_after_or_the_fallback():
    limiter, clock = make(thread_limit_fallback=timedelta(seconds=60))
    assert limiter.back_off("Tickets", ThreadLimitError("t", retry_after=5)) == 5
    assert limiter.paused_for("Tickets") == 5
    assert limiter.paused_for("Companies") == 0  # only that endpoint
    async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
        pass
    assert clock.sleeps == [5]
    assert limiter.back_off("Tickets", ThreadLimitError("t")) == 60.0


async def test_429_pauses_the_whole_connection_capped():
    limiter, _clock = make(rate_limit_max=timedelta(seconds=300))
    assert limiter.back_off("Tickets", HourlyLimitError("h", retry_after=9999)) == 300.0
    assert limiter.paused_for("Companies") == 300.0
    assert limiter.budget.used_ratio == 1.0  # treated as exhausted until the next reading


async def test_a_pause_longer_than_the_deadline_fails_fast():
    limiter, clock = make()
    limiter.back_off("Tickets", HourlyLimitError("h", retry_after=120))
    with pytest.raises(DeadlineExceededError, match="paused for another 120 s"):
        async with limiter.slot("Tickets", Priority.WEBHOOK, clock.now + 60):
            pass
    assert clock.sleeps == []


async def test_budget_is_read_sparingly():
    usage = Usage(100)
    limiter, clock = make(
        usage, budget=BudgetConfig(refresh_interval=timedelta(seconds=300), refresh_calls=10)
    )
    for _ in range(9):
        async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
            pass
    assert usage.reads == 1  # the first call reads, the next ones estimate
    assert limiter.budget.used_ratio == pytest.approx(109 / 10_000)
    for _ in range(2):
        async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
            pass
    assert usage.reads == 1  # due by count, but never twice within min_refresh_interval
    clock.advance(16)
    for _ in range(1):
        async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
            pass
    assert usage.reads == 2  # 10 calls since the reading: read again
    clock.advance(301)
    async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
        pass
    assert usage.reads == 3  # the reading aged out


async def test_sweeps_slow_above_half_and_pause_above_ninety_percent_webhooks_do_not():
    usage = Usage(7_000)
    limiter, clock = make(usage, max_slow_delay=timedelta(seconds=2))
    async with limiter.slot("Tickets", Priority.SWEEP, FAR):
        pass
    assert clock.sleeps == [pytest.approx(1.0, abs=0.01)]  # 70% is half-way from 50% to 90%

    usage.count = 9_200
    clock.advance(1000)
    clock.sleeps.clear()
    async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
        pass
    assert clock.sleeps == []  # webhook work is not throttled below the hard limit

    async def usage_drops(_seconds: float) -> None:
        usage.count = 1_000

    clock.on_sleep.append(usage_drops)
    async with limiter.slot("Tickets", Priority.SWEEP, FAR):
        pass
    assert clock.sleeps == [60.0]  # paused one recheck interval, then a fresh reading said go


async def test_paused_sweep_gives_up_at_its_deadline_without_calling():
    usage = Usage(9_500)
    limiter, clock = make(usage)
    with pytest.raises(DeadlineExceededError, match=r"sweep work is paused.*95%"):
        async with limiter.slot("Tickets", Priority.SWEEP, clock.now + 200):
            pytest.fail("must not get a slot")
    assert clock.slept <= 200
    assert usage.reads <= 5  # readings are rate-limited while paused


async def test_webhooks_pause_at_the_hard_limit():
    usage = Usage(10_000)
    limiter, clock = make(usage)
    with pytest.raises(DeadlineExceededError, match="webhook work is paused"):
        async with limiter.slot("Tickets", Priority.WEBHOOK, clock.now + 30):
            pass


async def test_unknown_usage_does_not_block_work():
    usage = Usage(0)
    usage.fail = True
    limiter, _clock = make(usage)
    async with limiter.slot("Tickets", Priority.SWEEP, FAR):
        pass
    assert limiter.budget.used_ratio is None


async def test_the_calls_above_a_sweeps_level_are_kept_for_webhooks_whoever_asks_first():
    clock = ManualClock()
    budget = BudgetTracker("t-limiter", BudgetConfig(share=0.02), clock)
    reading = ThresholdInfo(external_request_threshold=1_000, current_timeframe_request_count=0)
    budget.observe(reading)
    assert budget.allowance == 20
    # 25 sweep callers that all passed the pressure check while usage was still low:
    sweep = [await budget.spend(up_to=0.9) for _ in range(25)]
    assert sum(sweep) == 18  # the count stops them at 90%, not the (stale) check before it
    webhook = [await budget.spend() for _ in range(5)]
    assert sum(webhook) == 2  # the last tenth went to the webhooks

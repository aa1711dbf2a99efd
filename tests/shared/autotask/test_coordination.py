"""The coordination interfaces and the limiter's use of them, without a server or a database:
the share cap and its priorities, the order of local queue and shared slot, the lockout policy.
Waits are virtual (ManualClock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.autotask import (
    BudgetConfig,
    BudgetTracker,
    LimiterConfig,
    LocalCoordinator,
    LockoutPolicy,
    ManualClock,
    Priority,
    SlotLease,
    ThresholdInfo,
)
from shared.autotask._coordination import LocalBudget, RollingCount
from shared.autotask._limiter import Limiter
from shared.errors import DeadlineExceededError

FAR = 1e12


class Usage:
    """A fake ThresholdInformation reader."""

    def __init__(self, count: int, threshold: int = 10_000) -> None:
        self.info = ThresholdInfo(
            external_request_threshold=threshold, current_timeframe_request_count=count
        )
        self.reads = 0

    async def __call__(self) -> ThresholdInfo:
        self.reads += 1
        return self.info


def limiter_with(
    *, share: float = 0.5, usage: Usage | None = None, slots=None, **config
) -> tuple[Limiter, BudgetTracker, LocalBudget, ManualClock]:
    clock = ManualClock()
    store = LocalBudget(clock)
    budget_config = BudgetConfig(share=share)
    budget = BudgetTracker("t-coord", budget_config, clock, store=store)
    if usage is not None:
        budget.bind(usage)
    limiter = Limiter(
        "t-coord",
        LimiterConfig(budget=budget_config, **config),
        clock=clock,
        budget=budget,
        slots=slots,
    )
    return limiter, budget, store, clock


async def test_rolling_count_forgets_calls_after_the_window_and_errs_high():
    clock = ManualClock(start=0.0)
    count = RollingCount(clock, timedelta(minutes=60))
    count.add(5)
    clock.advance(30 * 60)
    count.add(2)
    assert count.total() == 7
    clock.advance(60 * 60)  # the first bucket is 90 minutes old now
    assert count.total() == 2  # 30 minutes + one bucket of slack: still counted
    clock.advance(31 * 60)
    assert count.total() == 0


def test_lockout_policy_doubles_from_five_minutes_to_an_hour():
    policy = LockoutPolicy()
    minutes = [policy.cooldown(n).total_seconds() / 60 for n in range(1, 8)]
    assert minutes == [5, 10, 20, 40, 60, 60, 60]


def test_share_must_be_a_fraction():
    with pytest.raises(ValueError, match="share"):
        BudgetConfig(share=0)
    with pytest.raises(ValueError, match="share"):
        BudgetConfig(share=1.5)


async def test_the_allowance_is_the_share_of_the_threshold():
    _limiter, budget, store, _clock = limiter_with(share=0.25, usage=Usage(100, threshold=8_000))
    assert budget.allowance is None  # no reading yet
    await budget.current()
    assert budget.allowance == 2_000
    store.add(500)
    assert budget.project_ratio == 0.25
    assert budget.used_ratio == pytest.approx(600 / 8_000)  # the tenant's, every integration
    assert budget.pressure == 0.25  # the larger of the two


async def test_sweeps_slow_and_pause_on_the_projects_share_before_the_tenants():
    # The tenant is at 10%, far from any level; this deployment has used 70% of its share.
    limiter, _budget, store, clock = limiter_with(usage=Usage(1_000))
    await limiter.budget.current()
    store.add(3_500)  # of an allowance of 5,000
    async with limiter.slot("Tickets", Priority.SWEEP, FAR):
        pass
    assert clock.sleeps == [pytest.approx(1.0, abs=0.01)]  # half-way from 50% to 90%
    clock.sleeps.clear()
    async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
        pass
    assert clock.sleeps == []  # webhook work is not slowed
    store.add(1_000)  # 90%
    with pytest.raises(DeadlineExceededError, match=r"sweep work is paused: this deployment"):
        async with limiter.slot("Tickets", Priority.SWEEP, clock.now + 30):
            pass


async def test_webhooks_continue_to_the_share_and_not_one_call_beyond():
    limiter, budget, store, clock = limiter_with(usage=Usage(0, threshold=100))
    calls = 0

    async def sixty_calls() -> None:
        nonlocal calls
        for _ in range(60):
            async with limiter.slot("Tickets", Priority.WEBHOOK, clock.now + 30):
                calls += 1

    with pytest.raises(DeadlineExceededError, match="webhook work is paused") as info:
        await sixty_calls()
    assert calls == 50  # the allowance: 0.5 x 100
    assert store.view().project_calls == 50
    assert "share" in str(info.value)
    assert budget.pressure == 1.0


async def test_a_full_share_pauses_until_the_hour_rolls_on():
    limiter, _budget, store, clock = limiter_with(usage=Usage(0, threshold=100))
    await limiter.budget.current()
    store.add(50)

    async def hour_passes(seconds: float) -> None:
        clock.advance(3_600)  # the calls age out of the window

    clock.on_sleep.append(hour_passes)
    async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
        pass
    assert clock.sleeps == [60.0]  # one pause_recheck, then the share had room again


async def test_an_unbudgeted_call_is_refused_not_queued_when_the_share_is_used():
    limiter, _budget, store, _clock = limiter_with(usage=Usage(0, threshold=100))
    await limiter.budget.current()
    store.add(50)
    with pytest.raises(DeadlineExceededError, match="share of the tenant's hourly API budget"):
        async with limiter.slot("ThresholdInformation", Priority.INTERACTIVE, FAR, budgeted=False):
            pass


class RecordingSlots:
    """A slot provider that records what it is asked, in order, and can refuse."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.refuse = refuse

    async def acquire(self, endpoint: str, *, capacity: int, priority: int, deadline: float):
        self.events.append(("acquire", endpoint, priority))
        if self.refuse:
            raise DeadlineExceededError("no slot")
        return SlotLease(endpoint, slot=1, token=priority, shared=True)

    def release(self, lease: SlotLease) -> None:
        self.events.append(("release", lease.endpoint, lease.token))


async def test_the_local_priority_queue_decides_who_asks_for_a_shared_slot_first():
    slots = RecordingSlots()
    limiter, *_ = limiter_with(slots=slots, max_concurrency=1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("Tickets", Priority.SWEEP, FAR):
            await gate.wait()

    async def call(priority: Priority) -> None:
        async with limiter.slot("Tickets", priority, FAR):
            pass

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiters = [
        asyncio.create_task(call(p))
        for p in (Priority.SWEEP, Priority.WEBHOOK, Priority.INTERACTIVE)
    ]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(holder, *waiters)
    asked = [priority for kind, _e, priority in slots.events if kind == "acquire"]
    assert asked == [Priority.SWEEP, Priority.INTERACTIVE, Priority.WEBHOOK, Priority.SWEEP]
    assert [kind for kind, *_ in slots.events].count("release") == 4


async def test_a_refused_shared_slot_gives_the_local_one_back():
    slots = RecordingSlots(refuse=True)
    limiter, *_ = limiter_with(slots=slots, max_concurrency=1)
    for _ in range(2):  # the second would hang if the first leaked its local slot
        with pytest.raises(DeadlineExceededError, match="no slot"):
            async with limiter.slot("Tickets", Priority.WEBHOOK, FAR):
                pass
    assert limiter._semaphores["Tickets"].free == 1


async def test_the_local_coordinator_binds_each_client_its_own_parts():
    coordinator = LocalCoordinator()
    clock = ManualClock()
    first = coordinator.bind("a", clock=clock)
    second = coordinator.bind("a", clock=clock)
    assert first.budget is not second.budget  # in-process: each client counts for itself
    lease = await first.slots.acquire("Tickets", capacity=3, priority=1, deadline=FAR)
    assert lease == SlotLease("Tickets")
    first.slots.release(lease)

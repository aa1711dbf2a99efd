"""Limits against the simulator: the concurrency cap, 429 and thread-limit back-off, the hourly
threshold, and budget throttling by priority. Waits are virtual (ManualClock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import pytest

from shared.autotask import (
    AutotaskClient,
    ClientConfig,
    LimiterConfig,
    ManualClock,
    Priority,
    RetryPolicy,
)
from shared.errors import DeadlineExceededError
from shared.metrics import AUTOTASK_RETRIES
from tests.helpers.clients import MakeClient, api_rows, requests_to
from tools.autotask_sim.server import Simulator


def retries(reason: str) -> float:
    return AUTOTASK_RETRIES.labels("test", reason)._value.get()


async def test_concurrency_never_exceeds_the_cap(sim: Simulator, client: AutotaskClient):
    sim.set_faults(latency=timedelta(milliseconds=20))  # long enough for calls to overlap
    tickets = api_rows(sim, "Tickets")[:50]
    got = await asyncio.gather(*(client.get("Tickets", t["id"]) for t in tickets))
    assert got == tickets
    stats = sim.state.requests
    assert stats.peak("Tickets") == 3  # used fully, never exceeded
    assert not stats.thread_rejections
    assert stats.by_status.get(429, 0) == 0


async def test_configured_cap_is_per_endpoint(sim: Simulator, make_client: MakeClient):
    client = await make_client(
        config=ClientConfig(limiter=LimiterConfig(endpoint_concurrency={"Companies": 1}))
    )
    sim.set_faults(latency=timedelta(milliseconds=10))
    await asyncio.gather(
        *(client.get("Companies", c["id"]) for c in api_rows(sim, "Companies")[:10]),
        *(client.get("Tickets", t["id"]) for t in api_rows(sim, "Tickets")[:10]),
    )
    assert sim.state.requests.peak("Companies") == 1
    assert sim.state.requests.peak("Tickets") == 3


@pytest.mark.parametrize("retry_after", [None, 7])
async def test_429_pauses_for_retry_after_or_60s_then_succeeds(
    sim: Simulator, client: AutotaskClient, clock: ManualClock, retry_after
):
    sim.set_limits(retry_after=None if retry_after is None else timedelta(seconds=retry_after))
    sim.set_faults(rate_429=1.0, endpoints=["Companies"])

    async def recover(_seconds: float) -> None:
        sim.clear_faults()

    clock.on_sleep.append(recover)
    before = retries("rate_limit")
    company = api_rows(sim, "Companies")[0]
    assert await client.get("Companies", company["id"]) == company
    assert clock.sleeps == [60.0 if retry_after is None else 7.0]
    assert sim.state.requests.by_endpoint_status[("Companies", 429)] == 1  # no hot retry
    assert retries("rate_limit") == before + 1


@pytest.mark.parametrize("status", [429, 500])
async def test_thread_limit_with_or_without_429_is_backed_off_and_retried(
    sim: Simulator, make_client: MakeClient, clock: ManualClock, status
):
    # Another integration's view of the limit: our cap of 4 exceeds the tenant's 2.
    sim.set_limits(thread_limit=2, thread_limit_status=status)
    sim.set_faults(latency=timedelta(milliseconds=10))
    client = await make_client(
        config=ClientConfig(
            limiter=LimiterConfig(max_concurrency=4, thread_limit_fallback=timedelta(seconds=5)),
            # ManualClock adds up the pauses of concurrent calls as if they were serial, so
            # the virtual deadline must not stop calls that would overlap in real time.
            retry=RetryPolicy(max_attempts=50, deadline=timedelta(days=10_000)),
        )
    )
    before = retries("thread_limit")
    tickets = api_rows(sim, "Tickets")[:16]
    got = await asyncio.gather(*(client.get("Tickets", t["id"]) for t in tickets))
    assert got == tickets
    rejections = sum(sim.state.requests.thread_rejections.values())
    assert rejections > 0
    assert sim.state.requests.by_endpoint_status[("Tickets", status)] == rejections
    assert retries("thread_limit") - before == rejections
    assert clock.sleeps
    assert all(0 < s <= 5.0 for s in clock.sleeps)  # the endpoint pause, never hot retries


async def test_hourly_limit_pauses_the_whole_connection(
    sim: Simulator, client: AutotaskClient, clock: ManualClock
):
    sim.set_limits(hourly_limit=100, latency_at_50=timedelta(0), latency_at_75=timedelta(0))
    companies, tickets = api_rows(sim, "Companies"), api_rows(sim, "Tickets")
    await client.get("Companies", companies[0]["id"])  # reads usage: ~2%
    await _use_budget(sim, 98)  # another integration spends the rest; our estimate lags
    during_pause: list[tuple[int, float]] = []

    async def hour_passes(seconds: float) -> None:
        # While paused, every endpoint of the connection waits, not just the one refused.
        during_pause.append(
            (sim.state.requests.hourly_rejections, client.limiter.paused_for("Tickets"))
        )
        sim.reset_counters()  # the rolling hour frees up (this clears the statistics too)

    clock.on_sleep.append(hour_passes)
    assert await client.get("Companies", companies[1]["id"]) == companies[1]
    assert clock.sleeps == [60.0]  # one pause of the fallback length (no Retry-After)
    assert during_pause == [(1, 60.0)]  # refused once, not hot-retried
    assert await client.get("Tickets", tickets[0]["id"]) == tickets[0]


async def _use_budget(sim: Simulator, calls: int) -> None:
    """Another integration on the same tenant spends ``calls`` of the hourly budget."""
    async with aiohttp.ClientSession() as session:
        for _ in range(calls):
            url = f"{sim.rest_url}/v1.0/ThresholdInformation"
            async with session.get(url, headers=sim.auth_headers()) as response:
                assert response.status == 200


@pytest.fixture
def budget_sim(sim: Simulator) -> Simulator:
    sim.set_limits(hourly_limit=100, latency_at_50=timedelta(0), latency_at_75=timedelta(0))
    return sim


async def test_sweeps_pause_at_90_percent_while_webhook_work_goes_through(
    budget_sim: Simulator, make_client: MakeClient, clock: ManualClock
):
    sim = budget_sim
    await _use_budget(sim, 91)
    client = await make_client(
        config=ClientConfig(retry=RetryPolicy(deadline=timedelta(seconds=300)))
    )
    companies = api_rows(sim, "Companies")

    webhook_fetch = await client.get("Companies", companies[0]["id"], priority=Priority.WEBHOOK)
    assert webhook_fetch == companies[0]
    assert client.budget.used_ratio is not None
    assert client.budget.used_ratio >= 0.9
    fetched = requests_to(sim, "Companies")
    with pytest.raises(DeadlineExceededError, match=r"sweep work is paused.*9\d%"):
        await client.get("Companies", companies[1]["id"], priority=Priority.SWEEP)
    assert requests_to(sim, "Companies") == fetched  # the sweep never reached Autotask
    assert clock.sleeps
    assert all(s == 60.0 for s in clock.sleeps)
    assert sum(clock.sleeps) <= 300
    assert await client.get("Companies", companies[2]["id"], priority=Priority.WEBHOOK)


async def test_a_paused_sweep_resumes_when_usage_falls(
    budget_sim: Simulator, make_client: MakeClient, clock: ManualClock
):
    sim = budget_sim
    await _use_budget(sim, 92)
    client = await make_client()

    async def window_rolls(_seconds: float) -> None:
        sim.reset_counters()

    clock.on_sleep.append(window_rolls)
    company = api_rows(sim, "Companies")[3]
    assert await client.get("Companies", company["id"], priority=Priority.SWEEP) == company
    assert clock.sleeps == [60.0]


async def test_sweeps_slow_down_above_half_the_budget(
    budget_sim: Simulator, make_client: MakeClient, clock: ManualClock
):
    sim = budget_sim
    await _use_budget(sim, 69)  # + our usage reading = 70%
    client = await make_client()
    company = api_rows(sim, "Companies")[0]
    await client.get("Companies", company["id"], priority=Priority.WEBHOOK)
    assert clock.sleeps == []  # webhook work is not slowed
    await client.get("Companies", company["id"], priority=Priority.SWEEP)
    assert len(clock.sleeps) == 1
    assert 0.9 < clock.sleeps[0] < 1.2  # ~half of the 2 s maximum at ~70%

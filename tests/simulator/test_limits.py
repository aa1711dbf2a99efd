"""Thread and hourly limits (§5) and the statistics clients' tests rely on."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.simulator.conftest import Api, fast_config, poll
from tools.autotask_sim import LimitsConfig, Simulator, run_simulator
from tools.autotask_sim.limits import THREAD_LIMIT_CODE, hourly_limit_text, thread_limit_text

THREAD_TEXT = (
    "Thread Threshold Exceeded — The Autotask API thread threshold of 3 threads has been exceeded."
)


async def _burst(api: Api, paths: list[str], **kw: object) -> list[int]:
    replies = await asyncio.gather(*(api.get(p, **kw) for p in paths))
    return [r.status for r in replies]


async def test_fourth_concurrent_call_on_an_endpoint_gets_thread_429(
    api: Api, sim: Simulator
) -> None:
    sim.set_faults(latency_s=0.3)  # hold each admitted call open
    replies = await asyncio.gather(*(api.get("Tickets/7000") for _ in range(5)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 200, 200, 429, 429]
    rejected = next(r for r in replies if r.status == 429)
    assert rejected.body == {"errors": [THREAD_TEXT, THREAD_LIMIT_CODE]}
    assert thread_limit_text(3) == THREAD_TEXT
    key = (sim.integration_code, "Tickets")
    stats = sim.state.requests
    # Peak attempted concurrency: three admitted calls plus one rejected arrival at a time.
    assert stats.max_concurrency[key] == 4
    assert stats.max_admitted[key] == 3
    assert stats.thread_rejections[key] == 2
    assert stats.peak("tickets") == 4


async def test_limit_is_per_endpoint_and_per_integration_code(api: Api, sim: Simulator) -> None:
    sim.set_faults(latency_s=0.3)
    other = sim.add_api_user("second@sim.local", "second-secret", "SECONDINTEGRATIONCODE")
    other_headers = {
        "UserName": other.username,
        "Secret": other.secret,
        "ApiIntegrationCode": other.integration_code,
    }
    calls = [api.get("Tickets/7000") for _ in range(3)]
    calls += [api.get("Companies/0") for _ in range(3)]
    calls += [api.get("Tickets/7000", headers=other_headers) for _ in range(3)]
    statuses = [r.status for r in await asyncio.gather(*calls)]
    assert statuses == [200] * 9
    assert sim.state.requests.peak("Tickets", sim.integration_code) == 3
    assert sim.state.requests.peak("Tickets", "SECONDINTEGRATIONCODE") == 3


async def test_thread_rejection_status_can_be_non_429(session: aiohttp.ClientSession) -> None:
    async with run_simulator(fast_config(limits=LimitsConfig(thread_limit_status=500))) as sim:
        api = Api(sim, session)
        sim.set_faults(latency_s=0.3)
        replies = await asyncio.gather(*(api.get("Tickets/7000") for _ in range(4)))
        [rejected] = [r for r in replies if r.status != 200]
        assert rejected.status == 500
        assert THREAD_LIMIT_CODE in rejected.body["errors"]


async def test_sequential_calls_never_hit_the_thread_limit(api: Api, sim: Simulator) -> None:
    for _ in range(10):
        assert (await api.get("Tickets/7000")).status == 200
    assert sim.state.requests.max_concurrency[(sim.integration_code, "Tickets")] == 1


async def test_hourly_threshold_429_and_rolling_window(session: aiohttp.ClientSession) -> None:
    limits = LimitsConfig(hourly_limit=5, hourly_window_s=1.0, latency_at_50_s=0, latency_at_75_s=0)
    async with run_simulator(fast_config(limits=limits)) as sim:
        api = Api(sim, session)
        usage = []
        for _ in range(5):
            reply = await api.get("ThresholdInformation")
            assert reply.status == 200
            usage.append(reply.body["currentTimeframeRequestCount"])
        assert usage == [1, 2, 3, 4, 5]  # the usage call counts itself
        assert reply.body["externalRequestThreshold"] == 5
        assert reply.body["requestThresholdTimeframe"] == 60
        refused = await api.get("Companies/0")
        assert refused.status == 429
        assert refused.body == {"errors": [hourly_limit_text(5)]}
        assert "Retry-After" not in refused.headers
        assert sim.state.requests.hourly_rejections == 1

        async def recovered() -> bool:
            return (await api.get("Companies/0")).status == 200

        await poll(recovered, max_wait=3)


async def test_retry_after_header_option(session: aiohttp.ClientSession) -> None:
    limits = LimitsConfig(hourly_limit=1, retry_after_s=30, latency_at_50_s=0, latency_at_75_s=0)
    async with run_simulator(fast_config(limits=limits)) as sim:
        api = Api(sim, session)
        assert (await api.get("Companies/0")).status == 200
        refused = await api.get("Companies/0")
        assert (refused.status, refused.headers.get("Retry-After")) == (429, "30")


async def test_usage_latency_above_50_and_75_percent(session: aiohttp.ClientSession) -> None:
    # Bands wide enough that a busy machine's own delays cannot move a call into the next one.
    limits = LimitsConfig(hourly_limit=8, latency_at_50_s=0.15, latency_at_75_s=0.6)
    async with run_simulator(fast_config(limits=limits)) as sim:
        api = Api(sim, session)
        timings = []
        for _ in range(8):
            start = time.perf_counter()
            assert (await api.get("Companies/0")).status == 200
            timings.append(time.perf_counter() - start)
        # A call counts itself: calls 4-5 run at >= 50 % usage, calls 6-8 at >= 75 %.
        assert max(timings[:3]) < 0.15, timings
        assert all(0.15 <= t < 0.6 for t in timings[3:5]), timings
        assert all(t >= 0.6 for t in timings[5:]), timings


async def test_request_counts_per_endpoint_in_admin_api(api: Api, sim: Simulator) -> None:
    await api.get("Tickets/7000")
    await api.query("Tickets", [{"op": "eq", "field": "id", "value": 7000}])
    await api.get("Companies/0")
    await api.get("Companies/0", headers=api.headers(Secret="bad"))
    reply = await api.admin("GET", "requests")
    assert reply.body["requestsByEndpoint"] == {"Tickets": 2, "Companies": 2}
    assert reply.body["requestsByStatus"] == {"200": 3, "401": 1}
    assert reply.body["hourlyUsage"] == 3  # failed logins do not count
    peaks = {(m["endpoint"], m["max"]) for m in reply.body["maxConcurrency"]}
    assert peaks == {("Tickets", 1), ("Companies", 1)}
    assert (await api.admin("POST", "requests/reset")).status == 200
    assert (await api.admin("GET", "requests")).body["requestsByEndpoint"] == {}


async def test_limits_can_change_at_run_time(api: Api, sim: Simulator) -> None:
    change = {"hourly_limit": 2, "latency_at_50_s": 0, "latency_at_75_s": 0}
    assert (await api.admin("PATCH", "limits", change)).status == 200
    assert (await api.get("Companies/0")).status == 200
    assert (await api.get("Companies/0")).status == 200
    assert (await api.get("Companies/0")).status == 429
    sim.set_limits(hourly_limit=10_000)
    assert (await api.get("Companies/0")).status == 200

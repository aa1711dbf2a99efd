"""Thread and hourly limits (§5) and the statistics clients' tests rely on."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import aiohttp

from tests.helpers.simapi import Api, fast_config
from tests.helpers.waiting import eventually
from tools.autotask_sim import LimitsConfig, Simulator, SimulatorConfig, run_simulator
from tools.autotask_sim.access.limits import THREAD_LIMIT_CODE, hourly_limit_text, thread_limit_text

HOLD = timedelta(milliseconds=300)  # injected latency that holds each admitted call open
THREAD_TEXT = (
    "Thread Threshold Exceeded — The Autotask API thread threshold of 3 threads has been exceeded."
    " Method: query (Itgenatr005)"
)


async def _burst(api: Api, paths: list[str], **kw: object) -> list[int]:
    replies = await asyncio.gather(*(api.get(p, **kw) for p in paths))
    return [r.status for r in replies]


async def test_fourth_concurrent_call_on_an_endpoint_gets_thread_429(
    api: Api, sim: Simulator
) -> None:
    sim.set_faults(latency=HOLD)  # hold each admitted call open
    replies = await asyncio.gather(*(api.get("Tickets/7000") for _ in range(5)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 200, 200, 429, 429]
    rejected = next(r for r in replies if r.status == 429)
    assert rejected.body == {"errors": [THREAD_TEXT]}  # the text as seen, code included
    assert thread_limit_text(3, "query") == THREAD_TEXT
    assert "Retry-After" not in rejected.headers
    key = (sim.integration_code, "Tickets")
    stats = sim.state.requests
    # Peak attempted concurrency: three admitted calls plus one rejected arrival at a time.
    assert stats.max_concurrency[key] == 4
    assert stats.max_admitted[key] == 3
    assert stats.thread_rejections[key] == 2
    assert stats.peak("tickets") == 4


async def test_limit_is_per_endpoint_and_per_integration_code(api: Api, sim: Simulator) -> None:
    sim.set_faults(latency=HOLD)
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
        sim.set_faults(latency=HOLD)
        replies = await asyncio.gather(*(api.get("Tickets/7000") for _ in range(4)))
        [rejected] = [r for r in replies if r.status != 200]
        assert rejected.status == 500
        assert rejected.body == {"errors": [THREAD_TEXT]}  # the same body, another status
        assert THREAD_LIMIT_CODE in rejected.body["errors"][0]


async def test_thread_rejection_names_the_method(api: Api, sim: Simulator) -> None:
    sim.set_faults(latency=HOLD)
    usage = await asyncio.gather(*(api.get("ThresholdInformation") for _ in range(4)))
    [rejected] = [r for r in usage if r.status == 429]
    assert rejected.body == {"errors": [thread_limit_text(3, "getThresholdAndUsageInfo")]}
    assert "Method: getThresholdAndUsageInfo (Itgenatr005)" in rejected.body["errors"][0]
    patch = {"id": 0, "phone": "+1 555 0101"}
    writes = await asyncio.gather(*(api.patch("Companies", patch) for _ in range(4)))
    [rejected] = [r for r in writes if r.status == 429]
    assert rejected.body == {"errors": [thread_limit_text(3, "update")]}


async def test_thread_rejection_retry_after_option(session: aiohttp.ClientSession) -> None:
    limits = LimitsConfig(retry_after=timedelta(seconds=7))
    async with run_simulator(fast_config(limits=limits)) as sim:
        api = Api(sim, session)
        sim.set_faults(latency=HOLD)
        replies = await asyncio.gather(*(api.get("Tickets/7000") for _ in range(4)))
        [rejected] = [r for r in replies if r.status == 429]
        assert rejected.headers.get("Retry-After") == "7"


async def test_sequential_calls_never_hit_the_thread_limit(api: Api, sim: Simulator) -> None:
    for _ in range(10):
        assert (await api.get("Tickets/7000")).status == 200
    assert sim.state.requests.max_concurrency[(sim.integration_code, "Tickets")] == 1


def _hourly(**limits: Any) -> SimulatorConfig:
    """A simulator with these hourly limits and no usage latency (the calls stay quick)."""
    quiet = {"latency_at_50": timedelta(0), "latency_at_75": timedelta(0)}
    return fast_config(limits=LimitsConfig(**(quiet | limits)))


async def test_hourly_threshold_429_and_rolling_window(session: aiohttp.ClientSession) -> None:
    # A window far longer than the calls take: none ages out before the limit is reached.
    async with run_simulator(_hourly(hourly_limit=5, hourly_window=timedelta(seconds=3))) as sim:
        api = Api(sim, session)
        usage = []
        for _ in range(5):
            reply = await api.get("ThresholdInformation")
            assert reply.status == 200
            usage.append(reply.body["currentTimeframeRequestCount"])
        assert usage == [1, 2, 3, 4, 5]  # the usage call counts itself
        # Flat and camelCase, no "item" wrapper.
        assert set(reply.body) == {
            "externalRequestThreshold",
            "requestThresholdTimeframe",
            "currentTimeframeRequestCount",
        }
        assert reply.body["externalRequestThreshold"] == 5
        assert reply.body["requestThresholdTimeframe"] == 60
        refused = await api.get("Companies/0")
        assert refused.status == 429
        assert refused.body == {"errors": [hourly_limit_text(5)]}
        assert "Retry-After" not in refused.headers
        assert sim.state.requests.hourly_rejections == 1

        async def recovered() -> bool:
            return (await api.get("Companies/0")).status == 200

        await eventually(recovered, within=timedelta(seconds=10))


async def test_other_integrations_usage_counts_against_the_threshold_and_ages_out(
    session: aiohttp.ClientSession,
) -> None:
    async with run_simulator(_hourly(hourly_limit=10, hourly_window=timedelta(seconds=3))) as sim:
        api = Api(sim, session)
        added = await api.admin("POST", "usage", {"calls": 8})
        assert (added.status, added.body) == (200, {"hourlyUsage": 8})
        reading = await api.get("ThresholdInformation")
        assert reading.body["currentTimeframeRequestCount"] == 9  # theirs and this call
        assert (await api.get("Companies/0")).status == 200
        assert (await api.get("Companies/0")).status == 429  # 10 in the window: the limit
        bad = await api.admin("POST", "usage", {"calls": "many"})
        assert bad.status == 400
        assert "'calls' must be a whole number" in bad.body["errors"][0]
        assert sim.add_usage(0) == 10

        async def aged_out() -> bool:
            return sim.add_usage(0) == 0

        await eventually(aged_out, within=timedelta(seconds=10))


async def test_retry_after_header_option(session: aiohttp.ClientSession) -> None:
    async with run_simulator(_hourly(hourly_limit=1, retry_after=timedelta(seconds=30))) as sim:
        api = Api(sim, session)
        assert (await api.get("Companies/0")).status == 200
        refused = await api.get("Companies/0")
        assert (refused.status, refused.headers.get("Retry-After")) == (429, "30")


async def test_usage_latency_above_50_and_75_percent(session: aiohttp.ClientSession) -> None:
    # Bands wide enough that a busy machine's own delays cannot move a call into the next one.
    limits = LimitsConfig(
        hourly_limit=8,
        latency_at_50=timedelta(milliseconds=150),
        latency_at_75=timedelta(milliseconds=600),
    )
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
    change = {"hourly_limit": 2, "latency_at_50": 0, "latency_at_75": "0ms"}
    assert (await api.admin("PATCH", "limits", change)).status == 200
    assert (await api.get("Companies/0")).status == 200
    assert (await api.get("Companies/0")).status == 200
    assert (await api.get("Companies/0")).status == 429
    sim.set_limits(hourly_limit=10_000)
    assert (await api.get("Companies/0")).status == 200

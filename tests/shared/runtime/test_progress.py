"""Progress and the probes: a part with work and nothing done fails readiness, then liveness,
but liveness only while the dependencies answer; idle is never a stall."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shared.autotask import ManualClock
from shared.runtime.ops import add_ops_routes, serve
from shared.runtime.progress import Progress, Stalled


def _progress(clock: ManualClock, pending: list[int]) -> Progress:
    return Progress(
        "callouts",
        pending=lambda: pending[0],
        unready_after=timedelta(seconds=60),
        unhealthy_after=timedelta(seconds=300),
        what="callouts",
        clock=clock.monotonic,
    )


async def test_idle_is_never_a_stall_and_work_is_timed_from_when_it_was_seen() -> None:
    clock, pending = ManualClock(), [0]
    progress = _progress(clock, pending)
    clock.now += 3600  # an hour idle
    assert progress.sample() == 0
    pending[0] = 5
    clock.now += 10
    assert progress.sample() == 10  # not an hour and ten seconds
    await progress.readiness()


async def test_stalled_work_fails_readiness_then_liveness_and_progress_clears_both() -> None:
    clock, pending = ManualClock(), [7]
    progress = _progress(clock, pending)
    clock.now += 61
    with pytest.raises(Stalled, match=r"callouts: callouts waiting and nothing done for 61 s"):
        await progress.readiness()
    await progress.liveness()  # not yet
    clock.now += 240
    with pytest.raises(Stalled):
        await progress.liveness()
    progress.advanced()
    await progress.readiness()
    await progress.liveness()


def test_the_liveness_bound_must_be_the_longer_one() -> None:
    with pytest.raises(ValueError, match="unhealthy_after"):
        Progress(
            "x",
            pending=lambda: 1,
            unready_after=timedelta(seconds=60),
            unhealthy_after=timedelta(seconds=60),
        )


async def _probe(app: web.Application, path: str) -> tuple[int, Any]:
    async with serve(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
        port = server.addresses[0][1]
        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.json()


async def _kafka_away() -> None:
    raise ConnectionError("Kafka is away")


async def _fine() -> None:
    return None


@pytest.mark.parametrize("kafka_answers", [True, False])
async def test_a_stuck_part_fails_liveness_only_while_its_dependencies_answer(
    kafka_answers: bool,
) -> None:
    clock, pending = ManualClock(), [3]
    progress = _progress(clock, pending)
    clock.now += 400
    app = web.Application()
    add_ops_routes(
        app,
        {"kafka": _fine if kafka_answers else _kafka_away, "callouts": progress.readiness},
        liveness={"callouts": progress.liveness},
    )
    ready_status, ready = await _probe(app, "/readyz")
    assert ready_status == 503
    assert "nothing done for 400 s" in ready["failing"]["callouts"]
    live_status, live = await _probe(app, "/healthz")
    if kafka_answers:  # stuck while everything around it answers: replace the pod
        assert live_status == 503
        assert live["status"] == "stuck"
        assert "callouts" in live["failing"]
    else:  # waiting for Kafka: a restart would not help
        assert (live_status, live) == (200, {"status": "ok"})
        assert ready["failing"]["kafka"] == "ConnectionError: Kafka is away"


async def test_watch_samples_until_stopped() -> None:
    clock, pending = ManualClock(), [1]
    progress = _progress(clock, pending)
    stop = asyncio.Event()
    watching = asyncio.create_task(progress.watch(stop, timedelta(milliseconds=10)))
    clock.now += 5
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(watching, 2)
    assert REGISTRY.get_sample_value("autotask_sync_stalled_seconds", {"part": "callouts"}) == 5

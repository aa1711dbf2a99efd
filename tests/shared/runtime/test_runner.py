"""The service runner: start in order, stop on a signal, drain, close in reverse."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from shared.runtime.runner import ServiceRunner


def _resource(name: str, events: list[str]):
    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        events.append(f"open {name}")
        try:
            yield name
        finally:
            events.append(f"close {name}")

    return resource()


async def test_sigterm_drains_tasks_and_closes_in_reverse_order() -> None:
    events: list[str] = []
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def worker() -> None:
        await runner.stopping.wait()
        await asyncio.sleep(0.05)  # finishing the current batch
        events.append("worker drained")

    async def start(r: ServiceRunner) -> None:
        await r.enter(_resource("db", events))
        await r.enter(_resource("kafka", events))
        r.spawn(worker(), "worker")
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

    code = await asyncio.wait_for(runner.run(start), timeout=10)
    assert code == 0
    assert events == ["open db", "open kafka", "worker drained", "close kafka", "close db"]


async def test_task_over_budget_is_cancelled_and_failure_sets_exit_code() -> None:
    events: list[str] = []
    runner = ServiceRunner("test", grace=timedelta(seconds=0.2))

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def crashing() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("lost the broker")

    async def start(r: ServiceRunner) -> None:
        await r.enter(_resource("db", events))
        r.spawn(stubborn(), "stubborn")
        r.spawn(crashing(), "crashing")

    code = await asyncio.wait_for(runner.run(start), timeout=10)
    assert code == 1
    assert events == ["open db", "cancelled", "close db"]

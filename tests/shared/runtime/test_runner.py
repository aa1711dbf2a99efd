"""The service runner: start in order, stop on a signal, drain (intakes, then tasks), close in
reverse."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from shared.errors import DatabaseError
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


async def test_intakes_close_first_while_tasks_still_run_then_tasks_then_resources() -> None:
    events: list[str] = []
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    @asynccontextmanager
    async def server() -> AsyncIterator[None]:
        yield
        # Finishing a request in flight: the task serving it must still be running.
        events.append(f"server closed, tasks told to stop: {runner.stopping.is_set()}")

    async def worker() -> None:
        await runner.stopping.wait()
        events.append("worker drained")

    async def start(r: ServiceRunner) -> None:
        await r.enter(_resource("db", events))
        r.spawn(worker(), "worker")
        await r.intake(server())
        await r.enter(_resource("cache", events))  # entered after the intake, closed after it
        asyncio.get_running_loop().call_later(0.05, r.request_stop, "test")

    code = await asyncio.wait_for(runner.run(start), timeout=10)
    assert code == 0
    assert events == [
        "open db",
        "open cache",
        "server closed, tasks told to stop: False",
        "worker drained",
        "close cache",
        "close db",
    ]


async def test_a_task_over_its_own_stop_budget_is_cancelled_before_the_grace_ends() -> None:
    runner = ServiceRunner("test", grace=timedelta(seconds=30))
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def start(r: ServiceRunner) -> None:
        r.spawn(stubborn(), "stubborn", stop_within=timedelta(seconds=0.2))
        r.request_stop("test")

    began = time.monotonic()
    code = await asyncio.wait_for(runner.run(start), timeout=10)
    assert code == 0
    assert cancelled.is_set()
    assert time.monotonic() - began < 5  # not the 30 s grace


async def test_intakes_and_tasks_share_the_grace() -> None:
    runner = ServiceRunner("test", grace=timedelta(seconds=2))

    @asynccontextmanager
    async def slow_server() -> AsyncIterator[None]:
        yield
        await asyncio.sleep(2)  # requests in flight take the whole budget

    async def stubborn() -> None:
        await asyncio.sleep(60)

    async def start(r: ServiceRunner) -> None:
        r.spawn(stubborn(), "stubborn")
        await r.intake(slow_server())
        r.request_stop("test")

    began = time.monotonic()
    code = await asyncio.wait_for(runner.run(start), timeout=10)
    took = time.monotonic() - began
    assert code == 0
    assert took < 3.5, took  # 2 s for the server, nothing left for the task (not 2 s more)


async def test_a_task_that_may_finish_does_not_stop_the_service() -> None:
    runner = ServiceRunner("test", grace=timedelta(seconds=5))
    finished: list[str] = []

    async def connect() -> None:
        finished.append("connected")

    async def start(r: ServiceRunner) -> None:
        r.spawn(connect(), "connect", may_finish=True)

    async with runner.running(start):
        await asyncio.sleep(0.1)
        assert finished == ["connected"]
        assert not runner.stop_requested.is_set()

    other = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start_other(r: ServiceRunner) -> None:
        r.spawn(connect(), "connect")

    async with other.running(start_other):
        await asyncio.wait_for(other.stop_requested.wait(), timeout=5)  # it ended: stop


async def test_running_gives_the_block_what_start_returned_and_stops_when_it_ends() -> None:
    events: list[str] = []
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def worker() -> None:
        await runner.stopping.wait()
        events.append("worker drained")

    async def start(r: ServiceRunner) -> str:
        db = await r.enter(_resource("db", events))
        r.spawn(worker(), "worker")
        return db

    async with runner.running(start) as db:
        assert db == "db"
        events.append("used")
    assert events == ["open db", "used", "worker drained", "close db"]


async def test_a_failed_start_stops_the_tasks_it_spawned_and_closes_what_it_opened() -> None:
    events: list[str] = []
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def worker() -> None:
        await runner.stopping.wait()
        events.append("worker drained")

    async def start(r: ServiceRunner) -> None:
        await r.enter(_resource("db", events))
        r.spawn(worker(), "worker")
        raise DatabaseError("could not reach PostgreSQL")

    with pytest.raises(DatabaseError):
        await asyncio.wait_for(runner.run(start), timeout=10)
    assert events == ["open db", "worker drained", "close db"]


async def test_a_stop_during_start_ends_a_wait_for_a_dependency() -> None:
    runner = ServiceRunner("test", grace=timedelta(seconds=5))

    async def start(r: ServiceRunner) -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(r.stop_requested.wait(), timeout=5)  # as a startup wait does

    code = await asyncio.wait_for(runner.run(start), timeout=10)
    assert code == 0

"""The shared API budget: what a tenant-wide slot (and the shared count) adds to each call.

Every call through a :class:`~shared.apibudget.SharedCoordinator` takes one of the endpoint's
slots from PostgreSQL (one round trip, ``UPDATE ... FOR UPDATE SKIP LOCKED``), gives it back in
the background, and spends from a block of calls reserved in the shared counter (one round trip
per block). The baseline is the same client with the in-process limiter only
(``LocalCoordinator``), measured in the same run, interleaved in rounds so drift cancels out:

1. ``GET`` by id one at a time: latency per call, p50 / p99, local vs shared, and the difference;
2. 3 callers at once (the endpoint's whole cap, so nobody waits for a slot): the same;
3. the slot round trip alone (``acquire`` then ``release``), without HTTP.

The simulator runs in a child process, as in bench_client; PostgreSQL is ``DATABASE_URL``, the
running development stack, or one started for the run. Loopback only.

    uv run python -m bench.bench_budget [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any

from pydantic import SecretStr

from bench.report import latency_summary, write_results
from shared.apibudget import CoordinatorConfig, SharedCoordinator
from shared.autotask import (
    AutotaskClient,
    Connection,
    Coordinator,
    LocalCoordinator,
    Priority,
    SystemClock,
)
from shared.settings import configured_value
from tools.dev_infra.cli import running_stack
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.stack import DevStack


def _serve(pipe: Pipe, tickets: int) -> None:
    """Child process: run a simulator until the parent says stop."""
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        config = SimulatorConfig(
            seed=5, tickets=tickets, companies=20, limits=LimitsConfig(hourly_limit=10**9)
        )
        async with run_simulator(config) as sim:
            pipe.send(
                {
                    "zone_lookup_url": sim.zone_lookup_url,
                    "username": sim.username,
                    "secret": sim.secret,
                    "integration_code": sim.integration_code,
                    "ticket_ids": [r["id"] for r in sim.state.entities("Tickets")],
                }
            )
            await asyncio.to_thread(pipe.recv)  # any message means stop

    asyncio.run(main())


def _connection(info: dict[str, Any]) -> Connection:
    return Connection(
        name="bench",
        username=info["username"],
        secret=SecretStr(info["secret"]),
        integration_code=SecretStr(info["integration_code"]),
        zone_lookup_url=info["zone_lookup_url"],
    )


Call = Callable[[int], Awaitable[Any]]


async def _timed(callers: int, calls: int, call: Call) -> list[float]:
    """Seconds of each of ``calls`` calls made by ``callers`` concurrent workers."""
    samples: list[float] = []
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            started = time.perf_counter()
            await call(n)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(callers)))
    return samples


async def per_call(
    info: dict[str, Any], coordinators: dict[str, Coordinator], calls: int
) -> list[dict[str, Any]]:
    """GET by id, local vs shared, one caller and three, interleaved in rounds."""
    ids = info["ticket_ids"]
    clients = {
        name: AutotaskClient(_connection(info), coordinator=coordinator)
        for name, coordinator in coordinators.items()
    }
    rows: list[dict[str, Any]] = []
    try:
        for client in clients.values():
            await client.__aenter__()
            for n in range(30):  # warm: zone, first reading, connections, reservations
                await client.get("Tickets", ids[n % len(ids)])
        for callers in (1, 3):
            samples: dict[str, list[float]] = {name: [] for name in clients}
            rounds = 10
            for _ in range(rounds):
                for name, client in clients.items():

                    async def get(n: int, client: AutotaskClient = client) -> Any:
                        return await client.get("Tickets", ids[n % len(ids)])

                    samples[name] += await _timed(callers, max(1, calls // rounds), get)
            local, shared = latency_summary(samples["local"]), latency_summary(samples["shared"])
            scenario = "sequential" if callers == 1 else f"{callers} callers at once"
            rows.append({"scenario": f"GET by id, {scenario}: local limiter", **local})
            rows.append(
                {
                    "scenario": f"GET by id, {scenario}: shared slot + shared count",
                    **shared,
                    "extra_p50_ms": round(shared["p50_ms"] - local["p50_ms"], 3),
                    "extra_p99_ms": round(shared["p99_ms"] - local["p99_ms"], 3),
                }
            )
    finally:
        for client in clients.values():
            await client.close()
    return rows


async def slot_round_trip(coordinator: SharedCoordinator, calls: int) -> dict[str, Any]:
    """``acquire`` + ``release`` of a shared slot, nothing else."""
    clock = SystemClock()
    slots = coordinator.bind("bench-slots", clock=clock).slots
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        lease = await slots.acquire(
            "Tickets", capacity=3, priority=Priority.WEBHOOK, deadline=clock.monotonic() + 10
        )
        samples.append(time.perf_counter() - started)
        slots.release(lease)
        await asyncio.sleep(0)
    return {"scenario": "shared slot acquire alone (1 round trip)", **latency_summary(samples)}


async def run(info: dict[str, Any], database_url: str, quick: bool) -> list[dict[str, Any]]:
    async with scratch_database(database_url, "bench_budget") as dsn:
        config = CoordinatorConfig(sync_interval=timedelta(seconds=1))
        async with SharedCoordinator(dsn, config) as shared:
            calls = 300 if quick else 2000
            rows = await per_call(info, {"local": LocalCoordinator(), "shared": shared}, calls)
            rows.append(await slot_round_trip(shared, calls))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_budget")
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke test)")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, 300), daemon=True)
    process.start()
    stack: DevStack | None = None
    try:
        database_url = configured_value("database_url")
        if not database_url:
            running = running_stack()
            if running is not None:
                database_url = running.database_url
            else:
                stack = DevStack(owned=True, kafka=False)
                database_url = stack.up().database_url
        deadline = time.monotonic() + 60
        while not parent.poll(0.2):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start (see its traceback above)")
        info = parent.recv()
        rows = asyncio.run(run(info, database_url, args.quick))
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()
        if stack is not None:
            stack.down()
    write_results(
        "budget",
        rows,
        simulator="tools.autotask_sim in a child process, loopback",
        postgresql="local",
        concurrency_cap=3,
        quick=args.quick,
    )


if __name__ == "__main__":
    main()

"""The Autotask client against the simulator: overhead per call, throughput, batch savings.

Three questions, each answered with a baseline measured in the same run:

1. What does the client cost per call? ``client.get`` (zone cache, limiter, budget tracker,
   retry loop, error translation, metrics) against a bare ``aiohttp`` GET of the same URL with
   the same headers, one call at a time, interleaved in rounds.
2. How many calls per second does it sustain within its concurrency cap (3 per endpoint), with
   64 callers queueing? Compared with bare aiohttp limited by a plain semaphore of 3, with and
   without 20 ms of server latency; the simulator's peak concurrency and 429 count prove the
   cap held.
3. How many API calls does fetching N changed ids take with ``fetch_by_ids`` (``in`` chunks of
   200) compared with one GET per id?

The simulator runs in a child process (its own interpreter), so server work does not share the
client's event loop or GIL. Loopback only; bounded in calls and time.

    uv run python -m bench.bench_client [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
from pydantic import SecretStr

from bench.report import write_results
from shared.autotask import AutotaskClient, Connection
from shared.errors import NotFoundError


def _serve(pipe: Pipe, tickets: int) -> None:
    """Child process: run a simulator until the parent says stop."""
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        # A budget the benchmark cannot exhaust: it measures the client, not the threshold.
        config = SimulatorConfig(
            seed=5, tickets=tickets, companies=50, limits=LimitsConfig(hourly_limit=10**9)
        )
        async with run_simulator(config) as sim:
            ids = [r["id"] for r in sim.state.entities("Tickets")]
            pipe.send(
                {
                    "base_url": sim.base_url,
                    "zone_lookup_url": sim.zone_lookup_url,
                    "rest_url": sim.rest_url,
                    "username": sim.username,
                    "secret": sim.secret,
                    "integration_code": sim.integration_code,
                    "ticket_ids": ids,
                }
            )
            await asyncio.to_thread(pipe.recv)  # any message means stop

    asyncio.run(main())


class Sim:
    """Handle on the child simulator: credentials, ids and its admin API."""

    def __init__(self, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        self.info = info
        self.session = session
        self.admin = f"{info['base_url']}/_sim"

    def connection(self) -> Connection:
        return Connection(
            name="bench",
            username=self.info["username"],
            secret=SecretStr(self.info["secret"]),
            integration_code=SecretStr(self.info["integration_code"]),
            zone_lookup_url=self.info["zone_lookup_url"],
        )

    def headers(self) -> dict[str, str]:
        return {
            "ApiIntegrationCode": self.info["integration_code"],
            "UserName": self.info["username"],
            "Secret": self.info["secret"],
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    async def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.admin}{path}", json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self.admin_call("GET", "/requests")
        return data


async def _bare_get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with session.get(url, headers=headers) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"bare GET answered {response.status}")
        return json.loads(body)["item"]


async def overhead(sim: Sim, client: AutotaskClient, calls: int) -> list[dict[str, Any]]:
    """Sequential GET by id: client vs bare aiohttp, interleaved in rounds."""
    ids = sim.info["ticket_ids"]
    headers = sim.headers()
    base = f"{sim.info['rest_url'].rstrip('/')}/v1.0/Tickets"
    rounds, per_round = 20, max(1, calls // 20)
    bare_us: list[float] = []
    client_us: list[float] = []
    for _ in range(20):  # warm both paths (connections, caches, first budget reading)
        await _bare_get(sim.session, f"{base}/{ids[0]}", headers)
        await client.get("Tickets", ids[0])
    for r in range(rounds):
        chunk = [ids[(r * per_round + i) % len(ids)] for i in range(per_round)]
        started = time.perf_counter()
        for ticket_id in chunk:
            await _bare_get(sim.session, f"{base}/{ticket_id}", headers)
        bare_us.append((time.perf_counter() - started) / per_round * 1e6)
        started = time.perf_counter()
        for ticket_id in chunk:
            await client.get("Tickets", ticket_id)
        client_us.append((time.perf_counter() - started) / per_round * 1e6)
    bare, ours = statistics.median(bare_us), statistics.median(client_us)
    # The ratio of each round's pair, then the median: drift between rounds cancels out.
    ratio = statistics.median(c / b for c, b in zip(client_us, bare_us, strict=True))
    return [
        {"scenario": "GET by id, sequential: bare aiohttp", "calls": rounds * per_round,
         "us_per_call": bare, "ratio_vs_bare": 1.0},
        {"scenario": "GET by id, sequential: AutotaskClient", "calls": rounds * per_round,
         "us_per_call": ours, "ratio_vs_bare": ratio, "overhead_us": ours - bare},
    ]  # fmt: skip


async def _drain(calls: int, callers: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """``calls`` calls made by ``callers`` concurrent workers; seconds taken."""
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            await call(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(callers)))
    return time.perf_counter() - started


async def throughput(
    sim: Sim, client: AutotaskClient, calls: int, latency: float
) -> list[dict[str, Any]]:
    """64 callers share the endpoint's 3 slots: client vs bare aiohttp behind a semaphore."""
    ids = sim.info["ticket_ids"]
    headers = sim.headers()
    base = f"{sim.info['rest_url'].rstrip('/')}/v1.0/Tickets"
    semaphore = asyncio.Semaphore(3)

    async def bare(n: int) -> None:
        async with semaphore:
            await _bare_get(sim.session, f"{base}/{ids[n % len(ids)]}", headers)

    async def ours(n: int) -> None:
        await client.get("Tickets", ids[n % len(ids)])

    await sim.admin_call("PATCH", "/faults", {"latency": latency})
    rows = []
    try:
        for name, call in (("bare aiohttp + semaphore(3)", bare), ("AutotaskClient", ours)):
            await sim.admin_call("POST", "/requests/reset")
            seconds = await _drain(calls, 64, call)
            stats = await sim.stats()
            peak = max(m["max"] for m in stats["maxConcurrency"] if m["endpoint"] == "Tickets")
            rows.append(
                {
                    "scenario": f"64 callers, {latency * 1000:.0f} ms latency: {name}",
                    "calls": calls,
                    "calls_per_s": calls / seconds,
                    "peak_concurrency": peak,
                    "http_429": stats["requestsByStatus"].get("429", 0),
                }
            )
    finally:
        await sim.admin_call("DELETE", "/faults")
    base_rate = rows[0]["calls_per_s"]
    for row in rows:
        row["ratio_vs_bare"] = row["calls_per_s"] / base_rate
    return rows


async def batch_savings(sim: Sim, client: AutotaskClient, changed: int) -> list[dict[str, Any]]:
    """Calls to fetch ``changed`` ids (5% of them deleted): batch vs one GET each."""
    ids = sim.info["ticket_ids"]
    missing = [10**9 + n for n in range(changed // 20)]
    wanted = ids[: changed - len(missing)] + missing
    rows = []

    await sim.admin_call("POST", "/requests/reset")
    started = time.perf_counter()
    result = await client.fetch_by_ids("Tickets", wanted)
    seconds = time.perf_counter() - started
    calls = (await sim.stats())["requestsByEndpoint"].get("Tickets", 0)
    assert sorted(result.missing) == missing
    assert len(result.found) == len(wanted) - len(missing)
    rows.append({"scenario": f"fetch {changed} changed ids: fetch_by_ids (chunks of 200)",
                 "api_calls": calls, "calls_per_1000_ids": calls * 1000 / changed,
                 "seconds": seconds})  # fmt: skip

    async def one(ticket_id: int) -> None:
        with contextlib.suppress(NotFoundError):  # the deleted 5% answer 404
            await client.get("Tickets", ticket_id)

    await sim.admin_call("POST", "/requests/reset")
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in wanted))
    seconds = time.perf_counter() - started
    calls = (await sim.stats())["requestsByEndpoint"].get("Tickets", 0)
    rows.append({"scenario": f"fetch {changed} changed ids: one GET each",
                 "api_calls": calls, "calls_per_1000_ids": calls * 1000 / changed,
                 "seconds": seconds})  # fmt: skip
    rows[0]["ratio_vs_one_each"] = rows[0]["api_calls"] / rows[1]["api_calls"]
    return rows


async def run(info: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        sim = Sim(info, session)
        async with AutotaskClient(sim.connection()) as client:
            rows = await overhead(sim, client, 500 if quick else 3000)
            for latency in (0.0, 0.02):
                rows += await throughput(sim, client, 300 if quick else 1500, latency)
            rows += await batch_savings(sim, client, 300 if quick else 1000)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_client")
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke test)")
    args = parser.parse_args()
    tickets = 600 if args.quick else 2000
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, tickets), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 60
        while not parent.poll(0.2):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start (see its traceback above)")
        info = parent.recv()
        rows = asyncio.run(run(info, args.quick))
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()
    write_results(
        "client",
        rows,
        simulator="tools.autotask_sim in a child process, loopback",
        tickets=tickets,
        concurrency_cap=3,
        quick=args.quick,
    )


if __name__ == "__main__":
    main()

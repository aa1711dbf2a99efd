"""How fast is the simulator, and how big is a 100,000-ticket tenant?

    uv run python -m bench.bench_simulator [--quick] [--concurrency N] [--seconds S]

Each server runs in its own process (so client and server each get a core), on loopback:

- baseline: a bare aiohttp handler answering a fixed JSON body (the same bytes the simulator
  sends for the scenario), i.e. the cost of aiohttp itself;
- simulator: a 100,000-ticket tenant, thread and hourly limits lifted so raw throughput is
  measured (with the default 3-thread limit, concurrent clients would just collect 429s).

Scenarios: ``GET /Tickets/{id}`` for random ids, and ``POST /Tickets/query`` pages of 100
records from a random id onward. Each is driven by N concurrent aiohttp clients for a bounded
time and request count. Also reported: the simulator process's RSS before and after building the
tenant, and the generation time. Prints a table; writes ``bench/results/simulator.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import web

from bench.report import latency_summary, write_results
from tools.dev_infra.processes import rss_bytes

TICKETS = 100_000
PAGE = 100
Request = Callable[[aiohttp.ClientSession, random.Random], Awaitable[int]]


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    size = rss_bytes(os.getpid())
    return float("nan") if size is None else size / 2**20


# ----------------------------------------------------------------- server processes


def _baseline_process(conn: Connection) -> None:
    bodies: dict[str, bytes] = conn.recv()

    async def main() -> None:
        async def get(_request: web.Request) -> web.Response:
            return web.Response(body=bodies["get"], content_type="application/json")

        async def post(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=bodies["page"], content_type="application/json")

        app = web.Application()
        app.router.add_get("/item", get)
        app.router.add_post("/page", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send({"port": runner.addresses[0][1], "rss_mib": rss_mib()})
        await asyncio.to_thread(conn.recv)
        await runner.cleanup()

    asyncio.run(main())


def _simulator_process(conn: Connection, tickets: int) -> None:
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    config = SimulatorConfig(
        seed=1,
        tickets=tickets,
        ticket_notes=tickets,
        companies=max(50, tickets // 20),
        contacts=max(100, tickets // 5),
        configuration_items=max(100, tickets // 5),
        limits=LimitsConfig(thread_limit=10_000, hourly_limit=10**9),
    )

    async def main() -> None:
        before = rss_mib()
        started = time.perf_counter()
        async with run_simulator(config) as sim:
            elapsed = time.perf_counter() - started
            ids = sim.state.tenant.require("Tickets").ids()
            conn.send(
                {
                    "rest_url": sim.rest_url,
                    "headers": sim.auth_headers(),
                    "ids": [ids[0], ids[-1]],
                    "sample": random.Random(2).sample(ids, 5000),
                    "rss_before_mib": before,
                    "rss_after_mib": rss_mib(),
                    "start_seconds": elapsed,
                    "records": {n: len(t) for n, t in sim.state.tenant.tables.items()},
                }
            )
            await asyncio.to_thread(conn.recv)

    asyncio.run(main())


# ----------------------------------------------------------------------- load driver


async def drive(
    name: str, server: str, request: Request, concurrency: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """``concurrency`` clients issue ``request`` until the time or request budget is spent."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up connections and caches outside the measurement.
        warm = random.Random(0)
        await asyncio.gather(*(request(session, warm) for _ in range(concurrency * 2)))
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while loop.time() < deadline and len(latencies) < max_requests:
                t0 = time.perf_counter()
                status = await request(session, rng)
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = loop.time() - start
    count = len(latencies)
    return {
        "scenario": name,
        "server": server,
        "requests": count,
        "seconds": round(elapsed, 3),
        "req_per_s": round(count / elapsed, 1),
        **latency_summary(latencies),
        "non_200": count - statuses[200],
    }


def _get_request(url: Callable[[random.Random], str], headers: dict[str, str]) -> Request:
    async def call(session: aiohttp.ClientSession, rng: random.Random) -> int:
        async with session.get(url(rng), headers=headers) as response:
            await response.read()
            return response.status

    return call


def _post_request(
    url: str, body: Callable[[random.Random], dict[str, Any]], headers: dict[str, str]
) -> Request:
    async def call(session: aiohttp.ClientSession, rng: random.Random) -> int:
        async with session.post(url, data=json.dumps(body(rng)), headers=headers) as response:
            await response.read()
            return response.status

    return call


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    sim_conn, sim_child = ctx.Pipe()
    sim_proc = ctx.Process(target=_simulator_process, args=(sim_child, args.tickets), daemon=True)
    sim_proc.start()
    info: dict[str, Any] = await asyncio.to_thread(sim_conn.recv)
    lo, hi = info["ids"]
    sample: list[int] = info["sample"]  # existing ids (ids have gaps, like real tenants)
    rest, headers = info["rest_url"], info["headers"]

    def page_body(rng: random.Random) -> dict[str, Any]:
        after = rng.randint(lo, max(lo, hi - PAGE * 2))
        return {"filter": [{"op": "gt", "field": "id", "value": after}], "MaxRecords": PAGE}

    # The baseline answers the same bytes the simulator sends for each scenario.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{rest}/v1.0/Tickets/{lo}", headers=headers) as r:
            get_body = await r.read()
        body = json.dumps(page_body(random.Random(1)))
        async with session.post(f"{rest}/v1.0/Tickets/query", data=body, headers=headers) as r:
            page_bytes = await r.read()
    base_conn, base_child = ctx.Pipe()
    base_proc = ctx.Process(target=_baseline_process, args=(base_child,), daemon=True)
    base_proc.start()
    base_conn.send({"get": get_body, "page": page_bytes})
    base_info: dict[str, Any] = await asyncio.to_thread(base_conn.recv)
    base = f"http://127.0.0.1:{base_info['port']}"

    c, s, m = args.concurrency, args.seconds, args.max_requests
    results = [
        await drive("GET by id", "baseline", _get_request(lambda _r: f"{base}/item", {}), c, s, m),
        await drive(
            "GET by id",
            "simulator",
            _get_request(lambda r: f"{rest}/v1.0/Tickets/{r.choice(sample)}", headers),
            c,
            s,
            m,
        ),
        await drive(
            f"POST query page ({PAGE})",
            "baseline",
            _post_request(f"{base}/page", page_body, {"Content-Type": "application/json"}),
            c,
            s,
            m,
        ),
        await drive(
            f"POST query page ({PAGE})",
            "simulator",
            _post_request(f"{rest}/v1.0/Tickets/query", page_body, headers),
            c,
            s,
            m,
        ),
    ]
    for conn in (sim_conn, base_conn):
        conn.send("stop")
    for proc in (sim_proc, base_proc):
        await asyncio.to_thread(proc.join, 15)
    for row in results:  # each scenario against the bare handler of the same run
        baseline = next(r for r in results if r["scenario"] == row["scenario"])
        row["ratio_vs_baseline"] = round(row["req_per_s"] / baseline["req_per_s"], 3)
    context = {
        "aiohttp": aiohttp.__version__,
        "settings": {"concurrency": c, "seconds": s, "max_requests": m, "tickets": args.tickets},
        "tenant": {
            "records": info["records"],
            "generation_and_start_seconds": round(info["start_seconds"], 2),
            "rss_before_mib": round(info["rss_before_mib"], 1),
            "rss_after_mib": round(info["rss_after_mib"], 1),
            "rss_tenant_mib": round(info["rss_after_mib"] - info["rss_before_mib"], 1),
            "baseline_process_rss_mib": round(base_info["rss_mib"], 1),
        },
        "page_bytes": len(page_bytes),
        "item_bytes": len(get_body),
    }
    return results, context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--tickets", type=int, default=TICKETS)
    args = parser.parse_args()
    args.seconds = args.seconds or (1.5 if args.quick else 5.0)
    args.max_requests = args.max_requests or (20_000 if args.quick else 200_000)
    rows, context = asyncio.run(run(args))
    context["settings"]["quick"] = args.quick
    write_results("simulator", rows, **context)
    tenant = context["tenant"]
    print(
        f"tenant {tenant['records']}: generated and started in "
        f"{tenant['generation_and_start_seconds']} s, RSS {tenant['rss_before_mib']} -> "
        f"{tenant['rss_after_mib']} MiB (bare aiohttp process: "
        f"{tenant['baseline_process_rss_mib']} MiB)"
    )


if __name__ == "__main__":
    main()

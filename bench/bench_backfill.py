"""Backfill of 100,000 tickets: wall time, API calls and rows/s, beside a raw COPY of the rows.

The backfill is the reconciler's (``shared.reconcile``): ``count`` for the total, pages of 500 by
id cursor at sweep priority, each page through the monotonic upsert and its change events on
Kafka (acks=all), the cursor stored after every page. The baseline is the floor PostgreSQL sets:
the same 100,000 entity documents written with one ``COPY`` into a plain table (no Autotask, no
Kafka, no upsert), so ``ratio`` says what reading, judging, upserting and publishing cost on top.

The simulator runs in a child process (its own interpreter, so serving pages does not share the
benchmark's event loop); PostgreSQL and Kafka are the running local stack, or one started here.

    uv run python -m bench.bench_backfill [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
import asyncpg
from pydantic import SecretStr

from bench.report import write_results
from shared.autotask import Connection
from shared.connections.catalogue import ConnectionCatalogue, ServedConnection
from shared.db import create_pool
from shared.kafka import ensure_topics, make_producer
from shared.messages.topics import Topics
from shared.reconcile.due import Job
from shared.reconcile.jobs import Reconciler
from shared.reconcile.settings import SweepPolicy
from tools.dev_infra.cli import running_stack
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.stack import DevStack, StackEnv


def _serve(pipe: Pipe, tickets: int) -> None:
    """Child process: one simulated tenant until the parent says stop."""
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        config = SimulatorConfig(
            seed=9,
            tickets=tickets,
            companies=200,
            contacts=200,
            configuration_items=0,
            ticket_notes=0,
            limits=LimitsConfig(hourly_limit=10**9),
        )
        async with run_simulator(config) as sim:
            pipe.send(
                {
                    "base_url": sim.base_url,
                    "zone_lookup_url": sim.zone_lookup_url,
                    "username": sim.username,
                    "secret": sim.secret,
                    "integration_code": sim.integration_code,
                }
            )
            await asyncio.to_thread(pipe.recv)

    asyncio.run(main())


async def _calls(session: aiohttp.ClientSession, base_url: str) -> int:
    async with session.get(f"{base_url}/_sim/requests") as response:
        stats = await response.json()
    return int(stats["requestsByEndpoint"].get("Tickets", 0))


async def _backfill(dsn: str, bootstrap: str, info: dict[str, Any]) -> dict[str, Any]:
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:6]}", partitions=3)
    await ensure_topics(bootstrap, topics.declarations(), replication_factor=1)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    producer = make_producer(bootstrap, client_id="bench-backfill")
    await producer.start()
    connection = Connection(
        name="bench",
        username=info["username"],
        secret=SecretStr(info["secret"]),
        integration_code=SecretStr(info["integration_code"]),
        zone_lookup_url=info["zone_lookup_url"],
    )
    catalogue = ConnectionCatalogue(
        environment=ServedConnection(connection=connection, source="environment"),
        database_url=None,
        box=None,
        default_zone_lookup_url=info["zone_lookup_url"],
    )
    try:
        async with catalogue, aiohttp.ClientSession() as session:
            reconciler = Reconciler(
                catalogue=catalogue,
                pool=pool,
                producer=producer,
                topics=topics,
                dsn=dsn,
                policy=SweepPolicy(progress_every=40),
            )
            before = await _calls(session, info["base_url"])
            started = time.perf_counter()
            result = await reconciler.run(Job("bench", "Tickets", "backfill", "cli"))
            seconds = time.perf_counter() - started
            calls = await _calls(session, info["base_url"]) - before
    finally:
        await producer.stop()
        await pool.close()
    if result.run is None or result.outcome != "succeeded":
        raise RuntimeError(f"the backfill did not succeed: {result.message}")
    rows = result.run.counts.fetched
    return {
        "measure": "backfill (reconciler)",
        "rows": rows,
        "wall_s": round(seconds, 2),
        "api_calls": calls,
        "pages": result.run.counts.pages,
        "rows_per_s": round(rows / seconds),
    }


async def _raw_copy(dsn: str) -> dict[str, Any]:
    db = await asyncpg.connect(dsn)  # asyncpg's own codecs: jsonb travels as text
    try:
        records = await db.fetch("SELECT id, entity::text AS entity FROM autotask.tickets")
        await db.execute("CREATE TABLE raw_copy (id bigint, entity jsonb)")
        started = time.perf_counter()
        await db.copy_records_to_table(
            "raw_copy",
            records=[(r["id"], r["entity"]) for r in records],
            columns=["id", "entity"],
        )
        seconds = time.perf_counter() - started
    finally:
        await db.close()
    return {
        "measure": "raw COPY of the same rows",
        "rows": len(records),
        "wall_s": round(seconds, 2),
        "api_calls": 0,
        "pages": 0,
        "rows_per_s": round(len(records) / seconds),
    }


async def run(info: dict[str, Any], env: StackEnv) -> list[dict[str, Any]]:
    async with scratch_database(env.database_url, "bench_backfill") as dsn:
        backfill = await _backfill(dsn, env.kafka_bootstrap_servers, info)
        copy = await _raw_copy(dsn)
    backfill["vs_copy"] = round(backfill["wall_s"] / max(copy["wall_s"], 1e-6), 1)
    copy["vs_copy"] = 1.0
    return [backfill, copy]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_backfill")
    parser.add_argument("--quick", action="store_true", help="10,000 tickets")
    args = parser.parse_args()
    tickets = 10_000 if args.quick else 100_000
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, tickets), daemon=True)
    process.start()
    stack: DevStack | None = None
    env = running_stack()
    try:
        if env is None:
            stack = DevStack(owned=True)
            env = stack.up()
        info = parent.recv()
        results = asyncio.run(run(info, env))
    finally:
        parent.send("stop")
        process.join(timeout=10)
        if stack is not None:
            stack.down()
    write_results("backfill", results, quick=args.quick, tickets=tickets, budget_calls=220)


if __name__ == "__main__":
    main()

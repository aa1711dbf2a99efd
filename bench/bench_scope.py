"""A scope change on a tenant of the demo's size: how long until the mirror follows it, and what
it costs in API calls, beside the full sweeps an operator had to run before.

The tenant is the demo's default (200 companies, 1,000 contacts, 400 configuration items, 5,000
tickets, 5,000 notes; ``--quick``: the demo's small one). One connection starts with a scope of
two queues and 20 companies; the reconciler's scheduler (concurrency 2, as deployed) loads it.
Then the scope is edited four times: a queue added, two queues removed, 20 companies added, 30
removed. After each edit the scheduler runs until nothing is due (the scope runs, parents before
children) and the change is measured: wall time from the edit, API calls, rows that entered and
left the mirror. The baseline, in the same run, is what followed an edit before: a full sweep
(``sweep --full``) of every entity the edit concerns, which also re-reads everything.

    uv run python -m bench.bench_scope [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
from pydantic import SecretStr

from bench.report import write_results
from shared.autotask import Connection
from shared.connections.catalogue import ConnectionCatalogue, ServedConnection
from shared.db import Pool, create_pool, session
from shared.entities import (
    COMPANIES,
    CONFIGURATION_ITEMS,
    CONTACTS,
    TICKET_NOTES,
    TICKETS,
    EntitySpec,
)
from shared.kafka import ensure_topics, make_producer
from shared.kafka.producer import AnyProducer
from shared.messages.topics import Topics
from shared.reconcile.due import Job, Schedule
from shared.reconcile.jobs import Reconciler
from shared.reconcile.scheduler import Scheduler
from shared.reconcile.settings import SweepPolicy
from shared.scope.rules import SyncScope
from tools.dev_infra.cli import running_stack
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.stack import DevStack, StackEnv

SIZES = {
    "default": {"companies": 200, "contacts": 1_000, "configuration_items": 400, "tickets": 5_000},
    "quick": {"companies": 40, "contacts": 200, "configuration_items": 80, "tickets": 1_000},
}
ENTITIES = ["Tickets", "TicketNotes", "Companies", "Contacts", "ConfigurationItems"]
NEVER = timedelta(days=365)
"""The schedule's intervals: after the first load, only scope changes are due."""


def _serve(pipe: Pipe, size: dict[str, int]) -> None:
    """Child process: one simulated tenant until the parent says stop."""
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        config = SimulatorConfig(
            seed=43, ticket_notes=size["tickets"], limits=LimitsConfig(hourly_limit=10**9), **size
        )
        async with run_simulator(config) as sim:
            tenant = sim.state.tenant
            queues: dict[int, int] = {}
            for ticket in tenant.require("Tickets").rows():
                queues[ticket["queueID"]] = queues.get(ticket["queueID"], 0) + 1
            pipe.send(
                {
                    "base_url": sim.base_url,
                    "zone_lookup_url": sim.zone_lookup_url,
                    "username": sim.username,
                    "secret": sim.secret,
                    "integration_code": sim.integration_code,
                    "queues": sorted(queues, key=lambda q: -queues[q]),
                    "companies": sorted(tenant.require("Companies").ids()),
                }
            )
            await asyncio.to_thread(pipe.recv)

    asyncio.run(main())


async def _calls(http: aiohttp.ClientSession, base_url: str) -> int:
    async with http.get(f"{base_url}/_sim/requests") as response:
        stats = await response.json()
    return sum(int(n) for n in stats["requestsByEndpoint"].values())


class Bench:
    """The tenant's connection, the mirror's database, Kafka: one scheduler per scope."""

    def __init__(self, info: dict[str, Any], pool: Pool, producer: AnyProducer, dsn: str,
                 topics: Topics, http: aiohttp.ClientSession) -> None:  # fmt: skip
        self.info, self.pool, self.producer, self.dsn = info, pool, producer, dsn
        self.topics, self.http = topics, http
        self.connection = Connection(
            name="bench",
            username=info["username"],
            secret=SecretStr(info["secret"]),
            integration_code=SecretStr(info["integration_code"]),
            zone_lookup_url=info["zone_lookup_url"],
        )

    async def settle(self, scope: SyncScope) -> tuple[float, int]:
        """Run the scheduler with ``scope`` until nothing is due; wall seconds and API calls."""
        async with self._catalogue(scope) as catalogue:
            scheduler = Scheduler(
                reconciler=self._reconciler(catalogue),
                catalogue=catalogue,
                pool=self.pool,
                schedule=Schedule(
                    interval=lambda _spec: NEVER, id_interval=NEVER, metadata_interval=NEVER
                ),
                concurrency=2,
            )
            before = await _calls(self.http, self.info["base_url"])
            started = time.perf_counter()
            while True:
                begun = await scheduler.tick()
                running = list(scheduler.running.values())
                if running:
                    await asyncio.wait(running)
                elif not begun:
                    break
            failed = [r for r in scheduler.results if r.outcome != "succeeded"]
            if failed:
                raise RuntimeError(f"runs did not succeed: {[(r.job, r.message) for r in failed]}")
            return time.perf_counter() - started, await _calls(
                self.http, self.info["base_url"]
            ) - before

    async def full_sweeps(self, scope: SyncScope, entities: list[EntitySpec]) -> tuple[float, int]:
        """The baseline: ``sweep --full`` of ``entities``, parents first."""
        async with self._catalogue(scope) as catalogue:
            reconciler = self._reconciler(catalogue)
            before = await _calls(self.http, self.info["base_url"])
            started = time.perf_counter()
            for entity in entities:
                # As the schedule starts it, having seen the last one (a command repeated within
                # two minutes would be refused as a duplicate of the previous edit's baseline).
                job = Job("bench", entity.rest_name, "full", last_seen=datetime.now(UTC))
                result = await reconciler.run(job)
                if result.outcome != "succeeded":
                    raise RuntimeError(f"the full sweep failed: {result.message}")
            return time.perf_counter() - started, await _calls(
                self.http, self.info["base_url"]
            ) - before

    async def live(self) -> dict[str, int]:
        counts = {}
        async with session(self.pool, "count the live rows") as db:
            for spec in (TICKETS, TICKET_NOTES, COMPANIES, CONTACTS, CONFIGURATION_ITEMS):
                counts[spec.rest_name] = int(
                    await db.fetchval(
                        f"SELECT count(*) FROM {spec.mirror_table} WHERE connection = 'bench' "  # noqa: S608 - registry name
                        "AND deleted_at IS NULL AND out_of_scope_at IS NULL"
                    )
                )
        return counts

    def _catalogue(self, scope: SyncScope) -> ConnectionCatalogue:
        """The connection served with ``scope``, as a process serves it after the edit."""
        served = ServedConnection(connection=self.connection, scope=scope, source="environment")
        return ConnectionCatalogue(
            environment=served,
            database_url=None,
            box=None,
            default_zone_lookup_url=self.info["zone_lookup_url"],
        )

    def _reconciler(self, catalogue: ConnectionCatalogue) -> Reconciler:
        return Reconciler(
            catalogue=catalogue,
            pool=self.pool,
            producer=self.producer,
            topics=self.topics,
            dsn=self.dsn,
            policy=SweepPolicy(progress_every=10_000),
        )


def _scope(queues: list[int], companies: list[int]) -> SyncScope:
    return SyncScope.parse(
        {
            "entities": ENTITIES,
            "tickets": {"include_queues": queues},
            "companies": {"company_ids": companies},
        }
    )


async def run(info: dict[str, Any], env: StackEnv) -> list[dict[str, Any]]:
    queues, companies = info["queues"], info["companies"]
    start = _scope(queues[:2], companies[:20])
    edits = [
        ("a queue added", _scope(queues[:3], companies[:20]), [TICKETS, TICKET_NOTES]),
        ("two queues removed", _scope(queues[2:3], companies[:20]), [TICKETS, TICKET_NOTES]),
        ("20 companies added", _scope(queues[2:3], companies[:40]),
         [COMPANIES, CONTACTS, CONFIGURATION_ITEMS]),
        ("30 companies removed", _scope(queues[2:3], companies[:10]),
         [COMPANIES, CONTACTS, CONFIGURATION_ITEMS]),
    ]  # fmt: skip
    rows: list[dict[str, Any]] = []
    async with scratch_database(env.database_url, "bench_scope") as dsn:
        topics = Topics(prefix=f"bench{uuid.uuid4().hex[:6]}", partitions=3)
        await ensure_topics(
            env.kafka_bootstrap_servers, topics.declarations(), replication_factor=1
        )
        pool = await create_pool(dsn, min_size=1, max_size=6)
        producer = make_producer(env.kafka_bootstrap_servers, client_id="bench-scope")
        await producer.start()
        try:
            async with aiohttp.ClientSession() as http:
                bench = Bench(info, pool, producer, dsn, topics, http)
                seconds, calls = await bench.settle(start)
                live = await bench.live()
                rows.append({"change": "first load", "wall_s": round(seconds, 1),
                             "api_calls": calls, **live})  # fmt: skip
                for name, scope, concerned in edits:
                    seconds, calls = await bench.settle(scope)
                    after = await bench.live()
                    moved = {k: after[k] - live[k] for k in after}
                    live = after
                    full_s, full_calls = await bench.full_sweeps(scope, concerned)
                    rows.append(
                        {
                            "change": name,
                            "wall_s": round(seconds, 1),
                            "api_calls": calls,
                            **{k: f"{v:+d}" for k, v in moved.items()},
                            "full_sweeps_wall_s": round(full_s, 1),
                            "full_sweeps_api_calls": full_calls,
                            "calls_vs_full": round(calls / max(full_calls, 1), 2),
                        }
                    )
        finally:
            await producer.stop()
            await pool.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scope")
    parser.add_argument("--quick", action="store_true", help="the demo's small tenant")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "default"]
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, size), daemon=True)
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
    write_results("scope", results, quick=args.quick, **size)


if __name__ == "__main__":
    main()

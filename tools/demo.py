"""``make demo``: the project against the built-in Autotask simulator, on local infrastructure.

What runs today, end to end and for real:
1. local PostgreSQL and Kafka (or the ones the environment names);
2. the database migrations and the Kafka topics;
3. a simulated Autotask tenant (a real HTTP server on 127.0.0.1);
4. ``test-connection`` against it;
5. the REST client syncing a snapshot: a full paged read, then a burst of changes in the tenant
   found again with one incremental query and fetched with batched ``in`` queries, with the API
   calls counted by the simulator;
6. a summary. The callout pipeline (gateway, worker, provisioner) is listed as not available.

Everything it starts stops when it ends.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from pydantic import SecretStr

from shared.autotask import AutotaskClient, Connection, F, Priority, Query
from shared.autotask.timestamps import format_timestamp
from shared.commands.test_connection import check, render_text
from shared.kafka import ensure_topics
from shared.logging import configure_logging
from shared.migrations import apply_migrations
from shared.topics import Topics
from tools.autotask_sim import Simulator, SimulatorConfig, run_simulator
from tools.dev_infra.stack import DevStack

SEED = 42
CHANGES = 300


def say(step: str, text: str = "") -> None:
    print(f"\n== {step}" + (f"\n{text}" if text else ""), flush=True)


async def demo(database_url: str, bootstrap: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        applied = await apply_migrations(connection)
    finally:
        await connection.close()
    say("database migrations", f"   applied now: {[f'{m.version:04d}_{m.name}' for m in applied]}")

    topics = Topics()
    created = await ensure_topics(bootstrap, topics.declarations(), replication_factor=1)
    say("Kafka topics", "\n".join(f"   {t.name}" for t in topics.declarations())
        + f"\n   ({len(created)} created now)")  # fmt: skip

    config = SimulatorConfig(seed=SEED, companies=200, contacts=600, tickets=5_000)
    async with run_simulator(config) as sim:
        say("Autotask simulator", f"   {sim.base_url} (seed {SEED}, 5,000 tickets, 200 companies)")
        conn = Connection(
            name="demo",
            username=sim.username,
            secret=SecretStr(sim.secret),
            integration_code=SecretStr(sim.integration_code),
            zone_lookup_url=sim.zone_lookup_url,
        )
        report = await check(conn, deadline=30)
        say("autotask-sync test-connection", render_text(report))
        if not report.ok:
            raise SystemExit(1)
        await _sync_snapshot(sim, conn)

    say(
        "not available in this version",
        "   webhook gateway -> Kafka -> sync worker -> PostgreSQL mirror and change topics,\n"
        "   webhook provisioning and reconciliation sweeps",
    )


async def _sync_snapshot(sim: Simulator, conn: Connection) -> None:
    sim.reset_counters()
    async with AutotaskClient(conn) as client:
        started = time.perf_counter()
        tickets = [t async for t in client.query("Tickets", Query.where(F("id").gte(0)))]
        seconds = time.perf_counter() - started
        calls = sum(sim.state.requests.by_endpoint.values())
        say(
            "full read of Tickets",
            f"   {len(tickets):,} tickets in {seconds:.2f} s with {calls} API calls "
            f"(pages of 500, nextPageUrl followed)",
        )

        watermark = datetime.now(UTC) - timedelta(seconds=1)
        sim.apply_changes(CHANGES, seed=SEED)
        sim.reset_counters()
        changed = [
            t["id"]
            async for t in client.query(
                "Tickets",
                Query.where(F("lastTrackedModificationDateTime").gte(format_timestamp(watermark)))
                .include("id"),
                priority=Priority.SWEEP,
            )
        ]  # fmt: skip
        batch = await client.fetch_by_ids("Tickets", changed, priority=Priority.WEBHOOK)
        calls = sum(sim.state.requests.by_endpoint.values())
        say(
            f"{CHANGES} random changes in the tenant, then an incremental read",
            f"   {len(changed)} tickets changed since the watermark; fetched {len(batch.found)} "
            f"with {batch.calls} batched call(s) ({calls} API calls in all; one GET per ticket "
            f"would have taken {len(changed)})",
        )


def main() -> int:
    configure_logging("WARNING", "console")
    say("local infrastructure")
    stack = DevStack(owned=True)
    env = stack.up()
    print(f"   PostgreSQL: {stack.sources['postgres']}; Kafka: {stack.sources['kafka']}")
    for key, value in stack.timings.items():
        print(f"   {key}: {value:.1f}")
    try:
        asyncio.run(demo(env.database_url, env.kafka_bootstrap_servers))
    finally:
        stack.down()
    say("done", "   everything the demo started has stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

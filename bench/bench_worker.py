"""The sync worker: write throughput, end-to-end latency, API calls, freshness and memory.

Each figure stands beside a baseline measured in the same run:

1. **Mirror writes**: the monotonic upsert (``shared.mirror.store.upsert``: advisory locks, old
   rows read for ``before``, content hashes, ON CONFLICT with the version rule) against a raw
   ``COPY`` of the same rows into a plain table with the same columns.
2. **End-to-end latency** at 200 and 1,000 callouts/s with the simulator's API latency at 100 ms:
   from the callout's ``received-at`` (what the gateway stamps) to the change event the worker
   produced (its Kafka timestamp, taken once the row is committed; the event is acknowledged
   right after). The worker runs as a real process (``python -m services.sync_worker``).
3. **API calls per 1,000 callouts** in those runs, against one GET per callout.
4. **Calls per hour and freshness** at a sustained 10 changes/s, with the tenant's usage low and
   then above 75% (the adaptive window widens to fewer calls per change).
5. The worker's peak RSS.

The simulator runs in a child process; PostgreSQL and Kafka are the local stack (or the ones the
environment names). Loopback only, bounded in time.

    uv run python -m bench.bench_worker [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.report import latency_summary, record_latencies, write_results
from shared.connections import store as rows
from shared.db import connect
from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, ensure_topics, make_producer, produce_many
from shared.kafka.reader import read_to_end
from shared.messages.callout import callout_headers, callout_key
from shared.messages.topics import Topics
from shared.mirror.store import Snapshot, content_hash, upsert, version_of
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.processes import free_port, peak_rss_bytes
from tools.dev_infra.stack import DevStack

ROOT = Path(__file__).resolve().parents[1]


def _serve(pipe: Pipe, tickets: int) -> None:
    """Child process: one simulated tenant until the parent says stop."""
    from tools.autotask_sim import LimitsConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        config = SimulatorConfig(
            seed=3,
            tickets=tickets,
            companies=100,
            contacts=100,
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
                    "ticket_ids": [r["id"] for r in sim.state.entities("Tickets")],
                }
            )
            await asyncio.to_thread(pipe.recv)

    asyncio.run(main())


class Admin:
    """The child simulator's admin API."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.url = f"{base_url}/_sim"
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def calls(self) -> int:
        stats = await self.call("GET", "/requests")
        return int(stats["requestsByEndpoint"].get("Tickets", 0))

    async def tickets(self, count: int) -> list[dict[str, Any]]:
        data = await self.call("GET", f"/entities/Tickets?limit={count}")
        return list(data["items"])


# --- 1. mirror writes -----------------------------------------------------------------------
async def mirror_writes(
    dsn: str, records: list[dict[str, Any]], repeats: int
) -> list[dict[str, Any]]:
    """The upsert against COPY of the same rows (both in batches of 500)."""
    now = datetime.now(UTC)
    snapshots = [Snapshot(id=r["id"], entity=r, fetched_at=now) for r in records]
    rows_total = len(records) * repeats
    db = await connect(dsn)
    try:
        started = time.perf_counter()
        for n in range(repeats):
            for i in range(0, len(snapshots), 500):
                await upsert(db, TICKETS, f"bench{n}", snapshots[i : i + 500], origin="backfill")
        ours = time.perf_counter() - started
    finally:
        await db.close()
    raw = await asyncpg.connect(dsn)  # asyncpg's own binary codecs, as COPY needs
    try:
        # The same rows into a table of the same shape (generated columns, indexes, logged):
        # the bulk-load floor the upsert's rules cost on top of.
        await raw.execute("CREATE TABLE copy_baseline (LIKE autotask.tickets INCLUDING ALL)")
        columns = ["connection", "id", "entity", "version", "fetched_at", "content_hash", "origin"]
        copy_rows = [
            (
                f"bench{n}",
                r["id"],
                json.dumps(r),
                version_of(TICKETS, r),
                now,
                content_hash(r),
                "backfill",
            )
            for n in range(repeats)
            for r in records
        ]
        started = time.perf_counter()
        for i in range(0, len(copy_rows), 500):
            await raw.copy_records_to_table(
                "copy_baseline", records=copy_rows[i : i + 500], columns=columns
            )
        baseline = time.perf_counter() - started
    finally:
        await raw.close()
    measure = "mirror writes (rows/s)"
    return [
        {
            "measure": measure,
            "variant": "raw COPY into a table of the same shape",
            "rows": rows_total,
            "per_second": round(rows_total / baseline),
            "ratio_vs_baseline": 1.0,
        },
        {
            "measure": measure,
            "variant": "monotonic upsert",
            "rows": rows_total,
            "per_second": round(rows_total / ours),
            "ratio_vs_baseline": round(baseline / ours, 3),
            "target_ratio": 0.5,
        },
    ]


# --- 2-4. the worker as a process ------------------------------------------------------------
class Rig:
    """A database, topics and a worker process for the runs."""

    def __init__(self, dsn: str, bootstrap: str, info: dict[str, Any]) -> None:
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.info = info
        self.key = SecretBox.generate_key()
        self.topics = Topics(prefix=f"bw{uuid.uuid4().hex[:8]}", partitions=6)
        self.ops_port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.next_ticket = 0

    async def forget_reading(self) -> None:
        """Drop the shared usage reading: otherwise a worker started now would use the last
        one (up to ``refresh_interval`` old) and see the tenant's new usage only later."""
        db = await connect(self.dsn)
        try:
            await db.execute(
                "UPDATE api_budget SET threshold = NULL, tenant_calls = NULL, read_at = NULL "
                "WHERE connection = 'bench'"
            )
        finally:
            await db.close()

    async def prepare(self) -> None:
        await ensure_topics(self.bootstrap, self.topics.declarations(), replication_factor=1)
        db = await connect(self.dsn)
        try:
            await rows.insert(
                db,
                rows.NewConnection(
                    name="bench",
                    username=self.info["username"],
                    secret=_secret(self.info["secret"]),
                    integration_code=_secret(self.info["integration_code"]),
                    zone_lookup_url=self.info["zone_lookup_url"],
                    scope=SyncScope(entities=["Tickets"]),
                ),
                SecretBox([self.key]),
            )
        finally:
            await db.close()

    async def start_worker(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTOTASK_SYNC_")},
            "DATABASE_URL": self.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": self.topics.prefix,
            "AUTOTASK_SYNC_SECRET_KEYS": self.key,
            "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
            "AUTOTASK_SYNC_OPS_PORT": str(self.ops_port),
            "AUTOTASK_SYNC_LOG_LEVEL": "WARNING",
            "AUTOTASK_SYNC_LOG_FORMAT": "json",
            "AUTOTASK_SYNC_SWEEPS_ENABLED": "false",
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.sync_worker",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{self.ops_port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the worker did not become ready")

    async def stop_worker(self) -> int | None:
        rss = peak_rss_bytes(self.process.pid) if self.process else None
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        return rss

    def fresh_tickets(self, count: int) -> list[int]:
        ids = self.info["ticket_ids"][self.next_ticket : self.next_ticket + count]
        if len(ids) < count:
            raise RuntimeError("the simulated tenant has too few tickets for this run")
        self.next_ticket += count
        return list(ids)

    async def drive(self, rate: float, seconds: float) -> dict[int, float]:
        """Callouts for never-mirrored tickets at ``rate``/s; returns id -> received-at."""
        producer = make_producer(self.bootstrap, client_id="bench-callouts")
        await producer.start()
        sent: dict[int, float] = {}
        try:
            total = int(rate * seconds)
            ids = self.fresh_tickets(total)
            step = 0.05
            per_step = max(1, round(rate * step))
            started = time.monotonic()
            for i in range(0, total, per_step):
                chunk = ids[i : i + per_step]
                now = datetime.now(UTC)
                messages = []
                for ticket_id in chunk:
                    callout = {"Action": "Update", "EntityType": "Ticket", "Id": ticket_id}
                    body = json.dumps(callout).encode()
                    headers = callout_headers(
                        connection="bench",
                        registration_id="bench",
                        entity=TICKETS,
                        received_at=now,
                        request_id=str(ticket_id),
                    )
                    messages.append(
                        OutgoingMessage(callout_key("bench", TICKETS, ticket_id), body, headers)
                    )
                    sent[ticket_id] = now.timestamp()
                await produce_many(producer, self.topics.callouts, messages)
                target = started + (i + per_step) / rate
                await asyncio.sleep(max(0.0, target - time.monotonic()))
        finally:
            await producer.stop()
        return sent

    async def latencies(self, sent: dict[int, float], within: float = 60.0) -> list[float]:
        """Seconds from received-at to the change event, for every ticket in ``sent``."""
        deadline = time.monotonic() + within
        found: dict[int, float] = {}
        while len(found) < len(sent) and time.monotonic() < deadline:
            found = {}
            async for record in read_to_end(self.bootstrap, self.topics.changes(TICKETS)):
                if record.value is None:
                    continue
                ticket = json.loads(record.key)["id"]
                if ticket in sent and ticket not in found:
                    found[ticket] = record.timestamp / 1000 - sent[ticket]
            if len(found) < len(sent):
                await asyncio.sleep(0.5)
        if len(found) < len(sent):
            raise RuntimeError(f"only {len(found)} of {len(sent)} callouts reached the topic")
        return list(found.values())


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def worker_runs(rig: Rig, admin: Admin, quick: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    seconds = 4.0 if quick else 15.0
    await admin.call("PATCH", "/faults", {"latency": 0.1})
    await rig.start_worker()
    for rate in (200, 1000):
        before = await admin.calls()
        sent = await rig.drive(rate, seconds)
        latencies = await rig.latencies(sent)
        record_latencies(f"worker end-to-end at {rate} callouts/s", latencies)
        calls = await admin.calls() - before
        per_thousand = 1000 * calls / len(sent)
        results += [
            {
                "measure": f"end-to-end latency at {rate} callouts/s (API latency 100 ms)",
                "variant": "worker",
                "callouts": len(sent),
                **latency_summary(latencies),
                "target_p99_ms": 1000 if rate == 1000 else None,
            },
            {
                "measure": f"API calls per 1,000 callouts at {rate}/s",
                "variant": "one GET per callout",
                "per_1000": 1000.0,
                "ratio_vs_baseline": 1.0,
            },
            {
                "measure": f"API calls per 1,000 callouts at {rate}/s",
                "variant": "worker (coalesced, batched)",
                "per_1000": round(per_thousand, 2),
                "ratio_vs_baseline": round(per_thousand / 1000, 4),
            },
        ]
    await admin.call("PATCH", "/faults", {"latency": 0.0})

    # Freshness at a sustained 10 changes/s: usage low, then above 75% (a wider window).
    sustained = 10.0 if quick else 30.0
    for label, busy in (("usage low", False), ("usage above 75%", True)):
        if busy:
            # The tenant's other integrations bring its usage to 80% of a 10,000 threshold:
            # the worker's own share (half of it) is nearly untouched, the tenant is busy.
            count = int((await admin.call("GET", "/requests"))["hourlyUsage"])
            await admin.call("PATCH", "/limits", {"hourly_limit": 10_000})
            await admin.call("POST", "/usage", {"calls": max(0, 8_000 - count)})
            await rig.stop_worker()
            await rig.forget_reading()  # the restarted worker reads the tenant's usage at once
            await rig.start_worker()
        before = await admin.calls()
        started = time.monotonic()
        sent = await rig.drive(10.0, sustained)
        latencies = await rig.latencies(sent)
        calls = await admin.calls() - before
        elapsed = time.monotonic() - started
        results.append(
            {
                "measure": "sustained 10 changes/s (freshness = end-to-end latency)",
                "variant": label,
                "calls_per_hour": round(calls / elapsed * 3600),
                **latency_summary(latencies),
            }
        )
    rss = await rig.stop_worker()
    results.append(
        {
            "measure": "worker peak RSS (MiB)",
            "variant": "worker",
            "rss_mib": round(rss / 2**20, 1) if rss else None,
            "target_mib": 250,
        }
    )
    return results


async def run(info: dict[str, Any], env: Any, quick: bool) -> list[dict[str, Any]]:
    async with (
        scratch_database(env.database_url, "bench_worker") as dsn,
        aiohttp.ClientSession() as session,
    ):
        admin = Admin(info["base_url"], session)
        records = await admin.tickets(2000 if quick else 10000)
        results = await mirror_writes(dsn, records, repeats=1 if quick else 2)
        rig = Rig(dsn, env.kafka_bootstrap_servers, info)
        await rig.prepare()
        results += await worker_runs(rig, admin, quick)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_worker")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tickets = 8_000 if args.quick else 40_000
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, tickets), daemon=True)
    process.start()
    stack = DevStack(owned=True)
    try:
        env = stack.up()
        info = parent.recv()
        results = asyncio.run(run(info, env, args.quick))
    finally:
        parent.send("stop")
        process.join(timeout=10)
        stack.down()
    write_results("worker", results, quick=args.quick, tickets=tickets)


if __name__ == "__main__":
    main()

"""Many connections in one deployment: per-tenant API calls, limits, and a noisy neighbour.

A vendor runs one worker for many MSPs' tenants. This benchmark serves ``--tenants`` simulated
tenants (20; 5 with ``--quick``), each its own Autotask with its own limits and 50 ms of API
latency, stores them as connections, and runs one worker process over all of them:

1. **Quiet neighbours**: every tenant sends 5 callouts/s for fresh tickets.
2. **One noisy tenant**: the same, while the first tenant sends 200/s.

Per run: end-to-end latency (the callout's ``received-at`` to its change event) of the quiet
tenants and of the noisy one, API calls per connection and per 1,000 callouts (baseline: one GET
per callout), and the limits each tenant saw: the peak concurrent calls per endpoint (Autotask
allows 3), thread-limit and hourly-limit rejections (must be 0). The quiet tenants' p99 with the
noisy neighbour, divided by their p99 without it, says how well tenants are isolated.

    uv run python -m bench.bench_tenants [--quick] [--tenants N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp

from bench.bench_worker import Rig, _secret
from bench.report import latency_summary, percentile, record_latencies, write_results
from shared.connections import store as rows
from shared.db import connect
from shared.entities import TICKETS
from shared.kafka import OutgoingMessage, make_producer, produce_many
from shared.kafka.reader import read_to_end
from shared.messages.callout import callout_headers, callout_key
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tools.dev_infra.databases import scratch_database
from tools.dev_infra.stack import DevStack

QUIET_RATE = 5.0
NOISY_RATE = 200.0


def _serve(pipe: Pipe, tenants: int, noisy_tickets: int, quiet_tickets: int) -> None:
    """Child process: ``tenants`` simulated tenants until the parent says stop."""
    from contextlib import AsyncExitStack
    from datetime import timedelta

    from tools.autotask_sim import FaultConfig, SimulatorConfig, run_simulator

    async def main() -> None:
        async with AsyncExitStack() as stack:
            infos = []
            for index in range(tenants):
                config = SimulatorConfig(
                    seed=index + 1,
                    tickets=noisy_tickets if index == 0 else quiet_tickets,
                    companies=20,
                    contacts=20,
                    ticket_notes=0,
                    faults=FaultConfig(latency=timedelta(milliseconds=50)),
                )
                sim = await stack.enter_async_context(run_simulator(config))
                infos.append(
                    {
                        "base_url": sim.base_url,
                        "zone_lookup_url": sim.zone_lookup_url,
                        "username": sim.username,
                        "secret": sim.secret,
                        "integration_code": sim.integration_code,
                        "ticket_ids": [r["id"] for r in sim.state.entities("Tickets")],
                    }
                )
            pipe.send(infos)
            await asyncio.to_thread(pipe.recv)

    asyncio.run(main())


class Tenants(Rig):
    """One worker over many connections; the tenants' own admin APIs for their counters."""

    def __init__(self, dsn: str, bootstrap: str, infos: list[dict[str, Any]]) -> None:
        super().__init__(dsn, bootstrap, infos[0])
        self.infos = infos
        self.names = [f"t{i + 1:02d}" for i in range(len(infos))]
        self.used = dict.fromkeys(self.names, 0)

    async def prepare(self) -> None:
        from shared.kafka import ensure_topics

        await ensure_topics(self.bootstrap, self.topics.declarations(), replication_factor=1)
        db = await connect(self.dsn)
        try:
            for name, info in zip(self.names, self.infos, strict=True):
                await rows.insert(
                    db,
                    rows.NewConnection(
                        name=name,
                        username=info["username"],
                        secret=_secret(info["secret"]),
                        integration_code=_secret(info["integration_code"]),
                        zone_lookup_url=info["zone_lookup_url"],
                        scope=SyncScope(entities=["Tickets"]),
                    ),
                    SecretBox([self.key]),
                )
        finally:
            await db.close()

    def take(self, name: str, count: int) -> list[int]:
        ids = self.infos[self.names.index(name)]["ticket_ids"][self.used[name] :][:count]
        if len(ids) < count:
            raise RuntimeError(f"tenant {name} has too few tickets for this run")
        self.used[name] += count
        return list(ids)

    async def send(self, rates: dict[str, float], seconds: float) -> dict[tuple[str, int], float]:
        """Callouts for fresh tickets at each tenant's rate; (connection, id) -> received-at."""
        producer = make_producer(self.bootstrap, client_id="bench-tenants")
        await producer.start()
        sent: dict[tuple[str, int], float] = {}
        try:
            pending = {name: self.take(name, int(rate * seconds)) for name, rate in rates.items()}
            step = 0.05
            started = time.monotonic()
            for tick in range(int(seconds / step)):
                now = datetime.now(UTC)
                messages = []
                for name, rate in rates.items():
                    due = round(rate * step * (tick + 1)) - round(rate * step * tick)
                    for ticket in pending[name][:due]:
                        callout = {"Action": "Update", "EntityType": "Ticket", "Id": ticket}
                        body = json.dumps(callout)
                        headers = callout_headers(
                            connection=name,
                            registration_id=f"bench-{name}",
                            entity=TICKETS,
                            received_at=now,
                            request_id=f"{name}-{ticket}",
                        )
                        key = callout_key(name, TICKETS, ticket)
                        messages.append(OutgoingMessage(key, body.encode(), headers))
                        sent[name, ticket] = now.timestamp()
                    pending[name] = pending[name][due:]
                await produce_many(producer, self.topics.callouts, messages)
                await asyncio.sleep(max(0.0, started + (tick + 1) * step - time.monotonic()))
        finally:
            await producer.stop()
        return sent

    async def arrivals(
        self, sent: dict[tuple[str, int], float], within: float = 120.0
    ) -> dict[tuple[str, int], float]:
        """Seconds from received-at to the change event, for every callout in ``sent``."""
        deadline = time.monotonic() + within
        found: dict[tuple[str, int], float] = {}
        while len(found) < len(sent) and time.monotonic() < deadline:
            async for record in read_to_end(self.bootstrap, self.topics.changes(TICKETS)):
                if record.value is None:
                    continue
                key = json.loads(record.key)
                wanted = (key["connection"], key["id"])
                if wanted in sent and wanted not in found:
                    found[wanted] = record.timestamp / 1000 - sent[wanted]
            if len(found) < len(sent):
                await asyncio.sleep(0.5)
        if len(found) < len(sent):
            raise RuntimeError(f"only {len(found)} of {len(sent)} callouts reached the topic")
        return found


async def _limits(session: aiohttp.ClientSession, infos: list[dict[str, Any]]) -> list[Any]:
    stats = []
    for info in infos:
        async with session.get(f"{info['base_url']}/_sim/requests") as response:
            stats.append(await response.json())
    return stats


async def _reset(session: aiohttp.ClientSession, infos: list[dict[str, Any]]) -> None:
    for info in infos:
        async with session.post(f"{info['base_url']}/_sim/requests/reset") as response:
            response.raise_for_status()


async def runs(rig: Tenants, seconds: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results: list[dict[str, Any]] = []
    per_connection: dict[str, Any] = {}
    quiet_p99: dict[str, float] = {}
    await rig.start_worker()
    async with aiohttp.ClientSession() as session:
        for label, noisy in (("quiet neighbours", False), ("one noisy tenant", True)):
            await _reset(session, rig.infos)
            rates = dict.fromkeys(rig.names, QUIET_RATE)
            if noisy:
                rates[rig.names[0]] = NOISY_RATE
            sent = await rig.send(rates, seconds)
            arrived = await rig.arrivals(sent)
            stats = await _limits(session, rig.infos)
            calls = {
                name: int(s["requestsByEndpoint"].get("Tickets", 0))
                for name, s in zip(rig.names, stats, strict=True)
            }
            quiet = [v for (name, _), v in arrived.items() if not (noisy and name == rig.names[0])]
            loud = [v for (name, _), v in arrived.items() if noisy and name == rig.names[0]]
            quiet_p99[label] = percentile(quiet, 0.99)
            record_latencies(f"tenants, {label}: quiet tenants", quiet)
            if loud:
                record_latencies(f"tenants, {label}: the noisy tenant", loud)
            row: dict[str, Any] = {
                "measure": "many tenants, one worker",
                "variant": label,
                "tenants": len(rig.names),
                "callouts": len(sent),
                "callouts_per_s": round(len(sent) / seconds),
                **{f"quiet_{k}": v for k, v in latency_summary(quiet).items() if k != "mean_ms"},
                "api_calls": sum(calls.values()),
                "calls_per_1000": round(1000 * sum(calls.values()) / len(sent), 1),
                "baseline_calls_per_1000": 1000,
                "max_calls_one_tenant": max(calls.values()),
                "peak_concurrency": max(
                    (c["max"] for s in stats for c in s["maxConcurrency"]), default=0
                ),
                "thread_rejections": sum(c["count"] for s in stats for c in s["threadRejections"]),
                "hourly_rejections": sum(s["hourlyRejections"] for s in stats),
            }
            if noisy:
                row.update({f"noisy_{k}": v for k, v in latency_summary(loud).items()})
                row["quiet_p99_ratio_vs_alone"] = round(
                    quiet_p99[label] / quiet_p99["quiet neighbours"], 2
                )
            results.append(row)
            per_connection[label] = {
                name: {"callouts": sum(1 for (n, _) in sent if n == name), "api_calls": calls[name]}
                for name in rig.names
            }
    await rig.stop_worker()
    return results, per_connection


async def run(infos: list[dict[str, Any]], env: Any, seconds: float) -> tuple[list[Any], Any]:
    async with scratch_database(env.database_url, "bench_tenants") as dsn:
        rig = Tenants(dsn, env.kafka_bootstrap_servers, infos)
        await rig.prepare()
        return await runs(rig, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tenants")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tenants", type=int, default=None, help="simulated tenants (20)")
    args = parser.parse_args()
    tenants = args.tenants or (5 if args.quick else 20)
    if tenants < 2:
        parser.error("--tenants must be at least 2 (one noisy, the others quiet)")
    seconds = 5.0 if args.quick else 15.0
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    noisy_tickets = int(NOISY_RATE * seconds) + int(QUIET_RATE * seconds) + 10
    quiet_tickets = 2 * int(QUIET_RATE * seconds) + 10
    process = context.Process(
        target=_serve, args=(child, tenants, noisy_tickets, quiet_tickets), daemon=True
    )
    process.start()
    stack = DevStack(owned=True)
    try:
        env = stack.up()
        infos = parent.recv()
        results, per_connection = asyncio.run(run(infos, env, seconds))
    finally:
        parent.send("stop")
        process.join(timeout=10)
        stack.down()
    write_results(
        "tenants",
        results,
        quick=args.quick,
        tenants=tenants,
        seconds=seconds,
        api_latency_ms=50,
        per_connection=per_connection,
    )


if __name__ == "__main__":
    main()

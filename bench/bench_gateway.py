"""The webhook gateway under load: signed callouts, answered only once Kafka acknowledged them.

    uv run python -m bench.bench_gateway [--quick]

Three processes on loopback, plus the local PostgreSQL and Kafka (``KAFKA_BOOTSTRAP_SERVERS`` /
``DATABASE_URL`` when set, else a stack started for the run):

- the gateway, as in production: ``python -m services.webhook_gateway`` (idempotent producer,
  ``acks=all``, one JSON log line per request), with a registration in a database of its own and
  topics of its own (12 partitions);
- the baseline: a bare aiohttp handler that reads the body and answers 200, the cost of aiohttp
  itself on this machine;
- the load generator (this module with ``--load``), sending pre-signed, all-distinct callouts
  (so de-duplication never short-cuts one): a closed loop of concurrent senders for the
  saturation throughput, then open loops at rising fixed rates for latencies (measured from each
  request's scheduled send time, so a stall counts in full).

Reported per target: accepted callouts/s at saturation, p50/p99 at each rate (1,000/s is the
target's), ratios to the baseline, server CPU time per request (which other load on the machine
barely moves, unlike rates and latencies), and the gateway's RSS after each step. Afterwards the
callouts topic is counted: every accepted callout must be on it. Prints a table; writes
``bench/results/gateway.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from bench.report import latency_summary, percentile, record_latencies, write_results
from shared.db import apply_migrations, connect
from shared.kafka import ensure_topics
from shared.messages.topics import Topics
from shared.registrations import RegistrationState, create_pending, set_state
from shared.secrets import SecretBox
from tools.dev_infra.processes import free_port, peak_rss_bytes
from tools.dev_infra.stack import DevStack

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret-0001"  # noqa: S105 - the benchmark's own throwaway webhook


# --- the load generator (its own process) -------------------------------------------------------
def _bodies(count: int, offset: int) -> list[tuple[bytes, str]]:
    """Distinct callouts of a realistic size (~450 bytes), each with its signature."""
    signed = []
    for n in range(offset, offset + count):
        body = json.dumps(
            {
                "Action": "Update",
                "Guid": "4c3bd1a2-7c1e-4a53-9a0f-0f4e2a7d9b11",
                "EntityType": "Ticket",
                "Id": 100_000 + n % 5000,
                "Fields": {
                    "ticketNumber": f"T20261201.{n:05d}",
                    "status": 5,
                    "title": f"Printer on floor {n % 7} is down again, user reports paper jam",
                    "assignedResourceID": 29682885,
                },
                "EventTime": "2026-12-01T12:00:00.000Z",
                "SequenceNumber": n,
                "PersonID": 29682885,
            },
            separators=(",", ":"),
        ).encode()
        digest = hmac.new(SECRET.encode(), body, hashlib.sha1).digest()
        signed.append((body, "sha1=" + base64.b64encode(digest).decode()))
    return signed


async def _closed_loop(
    url: str, bodies: list[tuple[bytes, str]], concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` senders, each sending the next callout as soon as it has an answer."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    position = 0
    deadline = time.perf_counter() + seconds

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal position
        while time.perf_counter() < deadline and position < len(bodies):
            body, sig = bodies[position]
            position += 1
            started = time.perf_counter()
            async with session.post(
                url,
                data=body,
                headers={"X-Hook-Signature": sig, "Content-Type": "application/json"},
            ) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "sent": len(latencies),
        "ok": statuses.get(200, 0),
        "statuses": statuses,
        "seconds": elapsed,
        "latencies": latencies,
    }


async def _open_loop(
    url: str, bodies: list[tuple[bytes, str]], rate: float, seconds: float
) -> dict[str, Any]:
    """Callouts at a fixed rate whatever the answers do; latency from the scheduled time."""
    count = min(len(bodies), int(rate * seconds))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, sig: str, scheduled: float) -> None:
            headers = {"X-Hook-Signature": sig, "Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        began = time.perf_counter()
        tasks = []
        for n in range(count):
            scheduled = began + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(*bodies[n], scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    return {
        "sent": count,
        "ok": statuses.get(200, 0),
        "statuses": statuses,
        "seconds": elapsed,
        "latencies": latencies,
    }


def _load(args: argparse.Namespace) -> None:
    """The load generator's process: runs one plan and prints its results as JSON."""
    plan = json.loads(args.load)
    bodies = _bodies(plan["count"], plan["offset"])
    if plan["mode"] == "closed":
        result = asyncio.run(
            _closed_loop(plan["url"], bodies, plan["concurrency"], plan["seconds"])
        )
    else:
        result = asyncio.run(_open_loop(plan["url"], bodies, plan["rate"], plan["seconds"]))
    print(json.dumps(result))


def _baseline(port: int) -> None:
    """The baseline's process: read the body, answer 200 with a tiny body."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"status":"accepted"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/callouts/{registration_id}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the orchestration --------------------------------------------------------------------------
def _run_load(plan: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_gateway", "--load", json.dumps(plan)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _wait_http(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if process.poll() is not None:
                    raise RuntimeError(f"{url}: the process exited with {process.returncode}")
                try:
                    async with session.get(url) as response:
                        if response.status in (200, 404, 405):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            raise RuntimeError(f"{url} did not answer within {seconds} s")

    asyncio.run(poll())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _prepare(
    database_url: str, bootstrap: str, key: str, suffix: str
) -> tuple[str, Topics, str]:
    """A database of the run's own (migrated), its topics, and one active registration."""
    name = f"bench_gateway_{suffix}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{database_url.rpartition('/')[0]}/{name}"
    db = await connect(dsn)
    try:
        await apply_migrations(db)
        registration = await create_pending(
            db, SecretBox([key]), of_connection="bench", entity="Tickets", secret=SecretStr(SECRET)
        )
        await set_state(db, registration.registration_id, RegistrationState.ACTIVE)
    finally:
        await db.close()
    topics = Topics(prefix=f"bench{suffix}")
    await ensure_topics(bootstrap, topics.declarations(entities=[]), replication_factor=1)
    return dsn, topics, registration.registration_id


async def _drop(database_url: str, dsn: str) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await admin.close()


async def _count_topic(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[p] - starts[p] for p in partitions)
    finally:
        await consumer.stop()


def _step(pid: int, plan: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Run one load plan; also returns the server's CPU seconds spent meanwhile."""
    before = _cpu_seconds(pid)
    result = _run_load(plan)
    return result, _cpu_seconds(pid) - before


def _row(
    target: str, scenario: str, measured: tuple[dict[str, Any], float], pid: int
) -> dict[str, Any]:
    result, cpu = measured
    latencies = result["latencies"]
    record_latencies(f"gateway {target}: {scenario}", latencies)
    refused = {code: n for code, n in result["statuses"].items() if str(code) != "200"}
    return {
        "target": target,
        "scenario": scenario,
        "sent": result["sent"],
        "ok": result["ok"],
        "ok_per_s": result["ok"] / result["seconds"],
        **latency_summary(latencies),
        "max_ms": round(max(latencies) * 1000, 3) if latencies else float("nan"),
        "p999_ms": round(percentile(latencies, 0.999) * 1000, 3),
        "refused": sum(refused.values()),
        # Server CPU per answered request: the one figure other load on the machine barely moves.
        "cpu_us_per_req": round(cpu / max(1, result["sent"]) * 1e6),
        "rss_mib": round(_rss_mib(pid), 1),
        "rss_peak_mib": round((peak_rss_bytes(pid) or 0) / 2**20, 1),
    }


def _measure(
    target: str,
    url: str,
    *,
    seconds: float,
    rates: list[int],
    concurrency: int,
    offset: int,
    pid: int,
) -> list[dict[str, Any]]:
    """Warm up, then saturation, then each fixed rate; the server's RSS after each step."""
    rows = []
    warm = {"mode": "closed", "url": url, "count": 2000, "offset": offset, "concurrency": 16}
    _run_load({**warm, "seconds": 2})
    offset += 2000
    closed = {"mode": "closed", "url": url, "concurrency": concurrency, "seconds": seconds}
    count = 60_000 if seconds > 5 else 30_000
    rows.append(
        _row(
            target,
            f"saturation x{concurrency}",
            _step(pid, {**closed, "count": count, "offset": offset}),
            pid,
        )
    )
    offset += count
    for rate in rates:
        plan = {"mode": "open", "url": url, "rate": rate, "seconds": seconds}
        rows.append(
            _row(
                target,
                f"{rate}/s",
                _step(pid, {**plan, "count": int(rate * seconds), "offset": offset}),
                pid,
            )
        )
        offset += int(rate * seconds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(args)
        return
    if args.baseline:
        _baseline(args.baseline)
        return

    seconds = 3.0 if args.quick else 8.0
    rates = [1000] if args.quick else [250, 1000, 2000, 4000]
    concurrency = 32
    stack = None
    database_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not (database_url and bootstrap):
        stack = DevStack(owned=True)
        env = stack.up()
        database_url, bootstrap = env.database_url, env.kafka_bootstrap_servers
    key = SecretBox.generate_key()
    suffix = uuid.uuid4().hex[:8]
    dsn, topics, registration_id = asyncio.run(_prepare(database_url, bootstrap, key, suffix))
    log_file = Path(tempfile.mkstemp(prefix="bench-gateway-", suffix=".log")[1])
    gateway_port, baseline_port = free_port(), free_port()
    gateway_env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOTASK_SYNC_SECRET_KEYS": key,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(gateway_port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
    }
    rows: list[dict[str, Any]] = []
    with log_file.open("wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "services.webhook_gateway"],
            cwd=ROOT,
            env=gateway_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    baseline = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_gateway", "--baseline", str(baseline_port)], cwd=ROOT
    )
    try:
        _wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
        _wait_http(f"http://127.0.0.1:{baseline_port}/", baseline)
        idle_rss = _rss_mib(gateway.pid)
        path = f"/v1/callouts/{registration_id}"
        rows += _measure(
            "baseline", f"http://127.0.0.1:{baseline_port}{path}",
            seconds=seconds, rates=rates, concurrency=concurrency, offset=0, pid=baseline.pid,
        )  # fmt: skip
        rows += _measure(
            "gateway", f"http://127.0.0.1:{gateway_port}{path}",
            seconds=seconds, rates=rates, concurrency=concurrency, offset=0, pid=gateway.pid,
        )  # fmt: skip
        peak_rss = (peak_rss_bytes(gateway.pid) or 0) / 2**20
        end_rss = _rss_mib(gateway.pid)
        on_topic = asyncio.run(_count_topic(bootstrap, topics.callouts))
    finally:
        for process in (gateway, baseline):
            process.send_signal(signal.SIGTERM)
        for process in (gateway, baseline):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        asyncio.run(_drop(database_url, dsn))
        if stack is not None:
            stack.down()

    accepted = sum(r["ok"] for r in rows if r["target"] == "gateway")
    base = {r["scenario"]: r for r in rows if r["target"] == "baseline"}
    for row in rows:
        reference = base[row["scenario"]]
        row["throughput_ratio"] = round(row["ok_per_s"] / reference["ok_per_s"], 3)
        row["p50_ratio"] = round(row["p50_ms"] / reference["p50_ms"], 2)
        row["p99_ratio"] = round(row["p99_ms"] / reference["p99_ms"], 2)
    saturation = next(
        r for r in rows if r["target"] == "gateway" and r["scenario"].startswith("saturation")
    )
    at_1000 = next(r for r in rows if r["target"] == "gateway" and r["scenario"] == "1000/s")
    summary = {
        "accepted_per_s_at_saturation": round(saturation["ok_per_s"]),
        "throughput_ratio_vs_baseline": saturation["throughput_ratio"],
        "p50_ms_at_1000_per_s": at_1000["p50_ms"],
        "p99_ms_at_1000_per_s": at_1000["p99_ms"],
        "p99_ratio_at_1000_per_s": at_1000["p99_ratio"],
        "gateway_cpu_us_per_callout_at_1000_per_s": at_1000["cpu_us_per_req"],
        "baseline_cpu_us_per_request_at_1000_per_s": base["1000/s"]["cpu_us_per_req"],
        "gateway_rss_peak_mib_through_1000_per_s": at_1000["rss_peak_mib"],
        "gateway_rss_idle_mib": round(idle_rss, 1),
        "gateway_rss_peak_mib": round(peak_rss, 1),
        "gateway_rss_end_mib": round(end_rss, 1),
        "accepted": accepted,
        "on_topic": on_topic,
        "targets": {
            "throughput_ratio >= 0.5": saturation["throughput_ratio"] >= 0.5,
            "p99 at 1000/s < 10 ms": at_1000["p99_ms"] < 10,
            "rss < 120 MB (through 1000/s)": at_1000["rss_peak_mib"] < 120,
            "every accepted callout on the topic": on_topic >= accepted,
        },
    }
    write_results(
        "gateway",
        rows,
        summary=summary,
        kafka="local single broker" if stack else bootstrap,
        acks="all",
        idempotent=True,
        concurrency=concurrency,
        seconds_per_step=seconds,
    )
    print(json.dumps(summary, indent=2))
    log_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

"""The webhook gateway under load: signed callouts, answered only once Kafka acknowledged them.

    uv run python -m bench.bench_gateway [--quick]

Four processes on loopback, plus the local PostgreSQL and Kafka (``KAFKA_BOOTSTRAP_SERVERS`` /
``DATABASE_URL`` when set, else a stack started for the run):

- the gateway, as in production: ``python -m services.webhook_gateway`` (idempotent producer,
  ``acks=all``, one JSON log line per request), with a registration in a database of its own and
  topics of its own (12 partitions); its ops routes on a port of their own;
- the bare baseline: an aiohttp handler that reads the body and answers 200, the cost of aiohttp
  itself on this machine;
- the minimal durable baseline: an aiohttp handler that checks the HMAC-SHA1 signature of the
  raw body (``hmac.compare_digest``) and awaits an ``acks=all`` idempotent send of the body
  (``shared.kafka.make_producer``, the gateway's producer settings) before answering 200: the
  least any handler with the gateway's guarantee costs; what the gateway spends above it is
  its own (routing, headers, de-duplication, spool checks, metrics, the log line);
- the load generator (this module with ``--load``), sending pre-signed, all-distinct callouts
  (so de-duplication never short-cuts one): a closed loop of concurrent senders for the
  saturation throughput, then open loops at rising fixed rates for latencies (measured from each
  request's scheduled send time, so a stall counts in full).

Reported per target: accepted callouts/s at saturation, p50/p99 at each rate (1,000/s is the
target's), the gateway's ratios to both baselines (throughput and server CPU time per request,
which other load on the machine barely moves, unlike rates and latencies), and each server's
RSS after each step. The goals (``goal`` column, PASS/FAIL): at saturation the gateway accepts
at least 0.4x the bare handler's requests/s, and at 1,000/s it spends at most 2x the bare
handler's CPU per request, with ``acks=all`` and every callout awaited. Afterwards the callouts
topic is counted: every accepted callout must be on it. Prints a table; writes
``bench/results/gateway.json``. ``bench.bench_gateway_attack`` measures valid callouts while the
gateway is attacked; ``bench.profile_gateway`` says where a callout's CPU time goes.
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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from bench.report import latency_summary, percentile, record_latencies, write_results
from shared.db import apply_migrations, connect
from shared.kafka import ensure_topics, make_producer
from shared.messages.topics import Topics, TopicSpec
from shared.registrations import RegistrationState, create_pending, set_state
from shared.secrets import SecretBox
from tools.dev_infra.processes import free_port, peak_rss_bytes, rss_bytes
from tools.dev_infra.stack import DevStack

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-webhook-secret-0001"  # noqa: S105 - the benchmark's own throwaway webhook


# --- the load generator (its own process) -------------------------------------------------------
def signed_bodies(count: int, offset: int) -> list[tuple[bytes, str]]:
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
    bodies = signed_bodies(plan["count"], plan["offset"])
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


def _minimal(spec: dict[str, Any]) -> None:
    """The minimal durable handler's process: verify the raw body's HMAC-SHA1, await an
    ``acks=all`` send of it, answer 200 (401 for a wrong signature)."""
    secret = SECRET.encode()
    topic = spec["topic"]
    producer_key = web.AppKey("producer", AIOKafkaProducer)

    async def producer_ctx(app: web.Application) -> AsyncIterator[None]:
        producer = make_producer(spec["bootstrap"], client_id="bench-minimal")
        await producer.start()
        await producer.partitions_for(topic)  # metadata now, not on the first request
        app[producer_key] = producer
        yield
        await producer.stop()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        claimed = request.headers.get("X-Hook-Signature", "").encode()
        expected = b"sha1=" + base64.b64encode(hmac.digest(secret, body, "sha1"))
        if not hmac.compare_digest(claimed, expected):
            return web.Response(status=401, body=b'{"error":"bad signature"}')
        await (await request.app[producer_key].send(topic, body))
        return web.Response(body=b'{"status":"accepted"}', content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(producer_ctx)
    app.router.add_post("/v1/callouts/{registration_id}", handle)
    web.run_app(app, host="127.0.0.1", port=spec["port"], access_log=None, print=None)


# --- the orchestration --------------------------------------------------------------------------
def run_load(plan: dict[str, Any]) -> dict[str, Any]:
    """Run one load plan (see :func:`_load`) in a process of its own; its results."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_gateway", "--load", json.dumps(plan)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def wait_http(
    url: str, process: subprocess.Popen[bytes], seconds: float = 60, *, ready: bool = False
) -> None:
    """Until ``url`` answers (200 only when ``ready``); RuntimeError when ``process`` exits."""
    accepted = (200,) if ready else (200, 404, 405)

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if process.poll() is not None:
                    raise RuntimeError(f"{url}: the process exited with {process.returncode}")
                try:
                    async with session.get(url) as response:
                        if response.status in accepted:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            raise RuntimeError(f"{url} did not answer within {seconds} s")

    asyncio.run(poll())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of a live process now, in MiB (NaN once it is gone)."""
    size = rss_bytes(pid)
    return float("nan") if size is None else size / 2**20


def minimal_topic(topics: Topics) -> str:
    """The minimal durable handler's topic, beside the gateway's."""
    return f"{topics.prefix}.minimal.v1"


async def prepare(
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
    declarations = topics.declarations(entities=[])
    declarations.append(TopicSpec(minimal_topic(topics), topics.partitions))
    await ensure_topics(bootstrap, declarations, replication_factor=1)
    return dsn, topics, registration.registration_id


async def drop(database_url: str, dsn: str) -> None:
    """Drop the run's database."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await admin.close()


def dependencies() -> tuple[str, str, DevStack | None]:
    """PostgreSQL's URL and Kafka's bootstrap servers from the environment, else a stack started
    for the run (returned, to be stopped)."""
    database_url = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if database_url and bootstrap:
        return database_url, bootstrap, None
    stack = DevStack(owned=True)
    env = stack.up()
    return env.database_url, env.kafka_bootstrap_servers, stack


def start_gateway(
    *, dsn: str, bootstrap: str, key: str, topics: Topics, log: Path
) -> tuple[subprocess.Popen[bytes], int, int]:
    """``python -m services.webhook_gateway`` on loopback, logging JSON to ``log``; returns the
    process, its callout port and its ops port (``/readyz``, ``/metrics``), once it is ready."""
    http_port, ops_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOTASK_SYNC_SECRET_KEYS": key,
        "AUTOTASK_SYNC_TOPIC_PREFIX": topics.prefix,
        "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        "AUTOTASK_SYNC_HTTP_PORT": str(http_port),
        "AUTOTASK_SYNC_OPS_PORT": str(ops_port),
        "AUTOTASK_SYNC_LOG_FORMAT": "json",
    }
    with log.open("ab") as out:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "services.webhook_gateway"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{ops_port}/readyz", gateway, ready=True)
    except RuntimeError:
        stop_processes(gateway)
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    return gateway, http_port, ops_port


def stop_processes(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM each, wait up to 30 s, then kill."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    before = cpu_seconds(pid)
    result = run_load(plan)
    return result, cpu_seconds(pid) - before


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
        "refused_by_status": " ".join(f"{code}:{n}" for code, n in sorted(refused.items())) or "-",
        # Server CPU per answered request: the one figure other load on the machine barely moves.
        "cpu_us_per_req": round(cpu / max(1, result["sent"]) * 1e6),
        "rss_mib": round(rss_mib(pid), 1),
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
    run_load({**warm, "seconds": 2})
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


THROUGHPUT_GOAL = 0.4
"""At saturation the gateway accepts at least this share of the bare handler's requests/s."""
CPU_GOAL = 2.0
"""At 1,000/s the gateway spends at most this multiple of the bare handler's CPU per request."""


def _compare(rows: list[dict[str, Any]]) -> None:
    """Ratios of each non-bare row to the same scenario's bare and minimal rows; the goals."""
    by = {(r["target"], r["scenario"]): r for r in rows}
    for row in rows:
        if row["target"] == "bare":
            continue
        references = [("bare", by[("bare", row["scenario"])])]
        if row["target"] == "gateway":
            references.append(("minimal", by[("minimal", row["scenario"])]))
        for name, reference in references:
            row[f"tput_vs_{name}"] = round(row["ok_per_s"] / reference["ok_per_s"], 3)
            row[f"cpu_vs_{name}"] = round(
                row["cpu_us_per_req"] / max(1, reference["cpu_us_per_req"]), 2
            )
            row[f"p99_vs_{name}"] = round(row["p99_ms"] / reference["p99_ms"], 2)
        if row["target"] != "gateway":
            continue
        if row["scenario"].startswith("saturation"):
            ok = row["tput_vs_bare"] >= THROUGHPUT_GOAL
            row["goal"] = f"tput >= {THROUGHPUT_GOAL}x bare: {'PASS' if ok else 'FAIL'}"
        elif row["scenario"] == "1000/s":
            ok = row["cpu_vs_bare"] <= CPU_GOAL
            row["goal"] = f"cpu/req <= {CPU_GOAL:g}x bare: {'PASS' if ok else 'FAIL'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--minimal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(args)
        return
    if args.baseline:
        _baseline(args.baseline)
        return
    if args.minimal:
        _minimal(json.loads(args.minimal))
        return

    seconds = 3.0 if args.quick else 8.0
    rates = [1000] if args.quick else [250, 1000, 2000, 4000]
    concurrency = 32
    database_url, bootstrap, stack = dependencies()
    key = SecretBox.generate_key()
    suffix = uuid.uuid4().hex[:8]
    dsn, topics, registration_id = asyncio.run(prepare(database_url, bootstrap, key, suffix))
    log_file = Path(tempfile.mkstemp(prefix="bench-gateway-", suffix=".log")[1])
    bare_port, minimal_port = free_port(), free_port()
    rows: list[dict[str, Any]] = []
    bench = [sys.executable, "-m", "bench.bench_gateway"]
    minimal_spec = {"port": minimal_port, "bootstrap": bootstrap, "topic": minimal_topic(topics)}
    processes = [
        subprocess.Popen([*bench, "--baseline", str(bare_port)], cwd=ROOT),
        subprocess.Popen([*bench, "--minimal", json.dumps(minimal_spec)], cwd=ROOT),
    ]
    bare, minimal = processes
    try:
        gateway, gateway_port, _ = start_gateway(
            dsn=dsn, bootstrap=bootstrap, key=key, topics=topics, log=log_file
        )
        processes.append(gateway)
        wait_http(f"http://127.0.0.1:{bare_port}/", bare)
        wait_http(f"http://127.0.0.1:{minimal_port}/", minimal)
        idle_rss = rss_mib(gateway.pid)
        path = f"/v1/callouts/{registration_id}"
        offset = 0
        for target, port, process in (
            ("bare", bare_port, bare),
            ("minimal", minimal_port, minimal),
            ("gateway", gateway_port, gateway),
        ):
            # All-distinct bodies across targets too: the minimal handler's and the gateway's
            # messages are never the same bytes.
            rows += _measure(
                target, f"http://127.0.0.1:{port}{path}",
                seconds=seconds, rates=rates, concurrency=concurrency, offset=offset,
                pid=process.pid,
            )  # fmt: skip
            offset += 1_000_000
        peak_rss = (peak_rss_bytes(gateway.pid) or 0) / 2**20
        end_rss = rss_mib(gateway.pid)
        on_topic = asyncio.run(_count_topic(bootstrap, topics.callouts))
    finally:
        stop_processes(*processes)
        asyncio.run(drop(database_url, dsn))
        if stack is not None:
            stack.down()

    accepted = sum(r["ok"] for r in rows if r["target"] == "gateway")
    _compare(rows)
    gateway_rows = {r["scenario"]: r for r in rows if r["target"] == "gateway"}
    bare_rows = {r["scenario"]: r for r in rows if r["target"] == "bare"}
    minimal_rows = {r["scenario"]: r for r in rows if r["target"] == "minimal"}
    saturation_name = next(s for s in gateway_rows if s.startswith("saturation"))
    saturation, at_1000 = gateway_rows[saturation_name], gateway_rows["1000/s"]
    summary = {
        "accepted_per_s_at_saturation": round(saturation["ok_per_s"]),
        "bare_per_s_at_saturation": round(bare_rows[saturation_name]["ok_per_s"]),
        "minimal_per_s_at_saturation": round(minimal_rows[saturation_name]["ok_per_s"]),
        "throughput_ratio_vs_bare": saturation["tput_vs_bare"],
        "throughput_ratio_vs_minimal": saturation["tput_vs_minimal"],
        "p50_ms_at_1000_per_s": at_1000["p50_ms"],
        "p99_ms_at_1000_per_s": at_1000["p99_ms"],
        "gateway_cpu_us_per_callout_at_1000_per_s": at_1000["cpu_us_per_req"],
        "minimal_cpu_us_per_request_at_1000_per_s": minimal_rows["1000/s"]["cpu_us_per_req"],
        "bare_cpu_us_per_request_at_1000_per_s": bare_rows["1000/s"]["cpu_us_per_req"],
        "cpu_ratio_vs_bare_at_1000_per_s": at_1000["cpu_vs_bare"],
        "cpu_ratio_vs_minimal_at_1000_per_s": at_1000["cpu_vs_minimal"],
        "gateway_rss_peak_mib_through_1000_per_s": at_1000["rss_peak_mib"],
        "gateway_rss_idle_mib": round(idle_rss, 1),
        "gateway_rss_peak_mib": round(peak_rss, 1),
        "gateway_rss_end_mib": round(end_rss, 1),
        "accepted": accepted,
        "on_topic": on_topic,
        "targets": {
            f"throughput >= {THROUGHPUT_GOAL}x bare at saturation": saturation["tput_vs_bare"]
            >= THROUGHPUT_GOAL,
            f"cpu/request <= {CPU_GOAL:g}x bare at 1000/s": at_1000["cpu_vs_bare"] <= CPU_GOAL,
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
        every_callout_awaited=True,
        concurrency=concurrency,
        seconds_per_step=seconds,
    )
    print(json.dumps(summary, indent=2))
    log_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

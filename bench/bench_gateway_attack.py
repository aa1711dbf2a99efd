"""Valid callouts under attack: what a flood of bad requests costs the callouts that matter.

    uv run python -m bench.bench_gateway_attack [--quick]

A real gateway process (``python -m services.webhook_gateway``, as in ``bench.bench_gateway``:
its own database, topics and registration, the local PostgreSQL and Kafka) receives valid signed
callouts at 100/s from 127.0.0.1, alone and then while each attack runs from another loopback
address (127.0.0.2, .3, ...: one per attack, so whatever the gateway keys by client address tells
the attacker from Autotask, and a block kept from one attack does not decide the next):

- ``bad_signature``: 8 concurrent clients posting 1 MB JSON bodies with a well-formed but wrong
  signature to the registration's real URL (the body made of many small strings, the attacker's
  best case against the re-escaping fallback of autotask-api.md §8.5);
- ``slow_bodies``: 2,000 connections that send a callout's headers with a Content-Length and
  then dribble the body a few bytes a second, kept open (reopened when the gateway closes one);
- ``malformed``: garbage request lines, headers without a colon, an over-long request line and
  header, invalid chunked encoding, Content-Length with Transfer-Encoding, binary junk;
- ``oversize``: Content-Length above the body cap, and chunked bodies that pass the cap (sent
  until the answer arrives or 4 MiB are written; what the kernel buffers counts as written).

Each phase is bounded (10 s with ``--quick``, else 20 s); the attacker stops when told or at its
own deadline. Per phase: the valid callouts' p50/p99/max latency (from each one's scheduled send
time) and status counts, the attacker's requests and statuses, what the gateway counted by
outcome (``/metrics`` on its ops port), and the gateway's CPU share, the share of time its event
loop waited for a CPU (the machine's fault, not the code's), peak RSS and RSS at the end.
The goal per phase: valid p99 under attack at most 5x the p99 alone and under 1 s. Prints a
table; writes ``bench/results/gateway_attack.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.bench_gateway import (
    ROOT,
    cpu_seconds,
    dependencies,
    drop,
    prepare,
    rss_mib,
    run_load,
    start_gateway,
    stop_processes,
)
from bench.report import latency_summary, record_latencies, write_results
from shared.secrets import SecretBox

ATTACKER_NETWORK = "127.0.0."
"""Each attack comes from an address of its own (127.0.0.2, .3, ...): a block the gateway keeps
on one attacker's address must not decide the next phase."""
VALID_RATE = 100
P99_FACTOR_GOAL = 5.0
P99_CEILING_S = 1.0
SLOW_CONNECTIONS = 2000
FLOOD_CLIENTS = 8
MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


# --- the attacks (each in a process of its own: --attack) ---------------------------------------
class _Tally:
    """An attacker's counts: requests sent, answers by status, failures by kind."""

    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}

    def result(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            **self.extra,
        }


def _json_megabyte() -> bytes:
    """Just under 1,000,000 bytes of valid JSON: many small strings needing .NET escaping."""
    items = ",".join(f'{{"k":"<b>{n}</b>"}}' for n in range(70_000))
    body = ('{"Action":"Update","EntityType":"Ticket","Id":1,"Items":[' + items + "]}").encode()
    cut = body.rfind(b"},{", 0, 1_000_000 - 4)  # end the list there, still valid JSON
    return body[: cut + 1] + b"]}"


def _wrong_signature() -> str:
    return "sha1=" + base64.b64encode(random.randbytes(20)).decode()


async def _bad_signature(target: dict[str, Any], stop: asyncio.Event, tally: _Tally) -> None:
    body = _json_megabyte()
    tally.extra["body_bytes"] = len(body)
    connector = aiohttp.TCPConnector(limit=FLOOD_CLIENTS, local_addr=(target["source"], 0))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while not stop.is_set():
                tally.requests += 1
                headers = {
                    "X-Hook-Signature": _wrong_signature(),
                    "Content-Type": "application/json",
                }
                try:
                    async with session.post(target["url"], data=body, headers=headers) as answer:
                        await answer.read()
                        tally.statuses[str(answer.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)

        await _until(stop, *(client() for _ in range(FLOOD_CLIENTS)))


async def _connect(
    target: dict[str, Any], tally: _Tally
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A new attacker connection, counted as a request; None (the error counted) when it could
    not be opened."""
    try:
        opened = await asyncio.open_connection(
            target["host"], target["port"], local_addr=(target["source"], 0), limit=2**20
        )
    except OSError as exc:
        tally.errors[type(exc).__name__] += 1
        return None
    tally.requests += 1
    return opened


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _answer(reader: asyncio.StreamReader, wait: float) -> str:
    """The status code of the first answer on a connection, or what happened instead."""
    try:
        line = await asyncio.wait_for(reader.readline(), wait)
    except TimeoutError:
        return "no answer"
    except ConnectionError:
        return "reset"
    if not line:
        return "closed"
    parts = line.split()
    return parts[1].decode(errors="replace") if len(parts) > 1 else "garbled"


async def _slow_bodies(target: dict[str, Any], stop: asyncio.Event, tally: _Tally) -> None:
    head = (
        f"POST {target['path']} HTTP/1.1\r\nHost: {target['host']}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Hook-Signature: {_wrong_signature()}\r\nContent-Length: 200000\r\n\r\n"
    ).encode()
    open_now = 0
    tally.extra["open_peak"] = 0
    opening = asyncio.Semaphore(100)  # connects in flight: a ramp, not a SYN storm

    async def connection() -> None:
        nonlocal open_now
        while not stop.is_set():
            async with opening:
                opened = await _connect(target, tally)
            if opened is None:
                await asyncio.sleep(0.5)
                continue
            reader, writer = opened
            open_now += 1
            tally.extra["open_peak"] = max(tally.extra["open_peak"], open_now)
            answered = asyncio.ensure_future(_answer(reader, 3600))
            try:
                writer.write(head)
                while not stop.is_set() and not answered.done():
                    writer.write(b'{"a')  # three bytes a second
                    await writer.drain()
                    await asyncio.wait([answered], timeout=1.0)
            except ConnectionError as exc:
                tally.errors[type(exc).__name__] += 1
            finally:
                open_now -= 1
                if answered.done():
                    tally.statuses[answered.result()] += 1
                else:
                    answered.cancel()
                await _close(writer)
            if not stop.is_set():
                await asyncio.sleep(0.5)  # the gateway closed it: open another, gently

    await _until(stop, *(connection() for _ in range(SLOW_CONNECTIONS)))
    tally.extra["open_at_end"] = open_now


def _malformed_requests(path: str) -> dict[str, bytes]:
    host = b"Host: 127.0.0.1\r\n"
    post = f"POST {path} HTTP/1.1\r\n".encode() + host
    return {
        "garbage line": b"GARBAGE\x00\x01 NOT HTTP\r\n\r\n",
        "header without colon": post + b"This Header Has No Colon\r\nContent-Length: 0\r\n\r\n",
        "request line 64 KB": b"POST /" + b"a" * 65_536 + b" HTTP/1.1\r\n" + host + b"\r\n",
        "header 64 KB": post + b"X-Big: " + b"b" * 65_536 + b"\r\nContent-Length: 0\r\n\r\n",
        "bad chunk size": post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "chunk without end": post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX9999\r\n",
        "length and chunked": post
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "bad content-length": post + b"Content-Length: -1\r\n\r\n",
        "binary junk": random.Random(7).randbytes(512),
    }


async def _malformed(target: dict[str, Any], stop: asyncio.Event, tally: _Tally) -> None:
    kinds = list(_malformed_requests(target["path"]).items())
    by_kind: dict[str, Counter[str]] = {name: Counter() for name, _ in kinds}
    tally.extra["by_kind"] = by_kind

    async def client(start: int) -> None:
        n = start
        while not stop.is_set():
            name, payload = kinds[n % len(kinds)]
            n += 1
            if (opened := await _connect(target, tally)) is None:
                await asyncio.sleep(0.05)
                continue
            reader, writer = opened
            try:
                writer.write(payload)
                await writer.drain()
                status = await _answer(reader, 2.0)
            except ConnectionError:
                status = "reset"
            finally:
                await _close(writer)
            tally.statuses[status] += 1
            by_kind[name][status] += 1

    await _until(stop, *(client(n) for n in range(FLOOD_CLIENTS)))


async def _oversize(target: dict[str, Any], stop: asyncio.Event, tally: _Tally) -> None:
    head = (
        f"POST {target['path']} HTTP/1.1\r\nHost: {target['host']}\r\n"
        f"Content-Type: application/json\r\nX-Hook-Signature: {_wrong_signature()}\r\n"
    ).encode()
    chunk = b"x" * 65_536
    by_kind: dict[str, Counter[str]] = {"declared 10 MB": Counter(), "chunked past cap": Counter()}
    tally.extra["by_kind"] = by_kind
    sent_before_answer: list[int] = []

    async def client(start: int) -> None:
        n = start
        while not stop.is_set():
            chunked = n % 2 == 1
            n += 1
            if (opened := await _connect(target, tally)) is None:
                await asyncio.sleep(0.05)
                continue
            reader, writer = opened
            answered = asyncio.ensure_future(_answer(reader, 10.0))
            sent = 0
            try:
                if chunked:  # chunks until the gateway answers or 4 MiB passed (cap: 1 MiB)
                    writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
                    while not answered.done() and sent < 4 * MIB:
                        writer.write(b"10000\r\n" + chunk + b"\r\n")
                        sent += len(chunk)
                        await writer.drain()
                else:  # 10 MB declared, 64 KiB sent
                    writer.write(head + b"Content-Length: 10000000\r\n\r\n" + chunk)
                    sent = len(chunk)
                    await writer.drain()
                status = await answered
            except ConnectionError:
                status = answered.result() if answered.done() else "reset"
            finally:
                if not answered.done():
                    answered.cancel()
                await _close(writer)
            tally.statuses[status] += 1
            by_kind["chunked past cap" if chunked else "declared 10 MB"][status] += 1
            if chunked:
                sent_before_answer.append(sent)

    await _until(stop, *(client(n) for n in range(FLOOD_CLIENTS)))
    if sent_before_answer:
        tally.extra["chunked_bytes_sent_max"] = max(sent_before_answer)


ATTACKS = {
    "bad_signature": _bad_signature,
    "slow_bodies": _slow_bodies,
    "malformed": _malformed,
    "oversize": _oversize,
}


async def _until(stop: asyncio.Event, *workers: Any) -> None:
    """Run ``workers`` until ``stop``; then give them a moment to finish and cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in workers]
    await stop.wait()
    _done, pending = await asyncio.wait(tasks, timeout=3)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _attack(spec: dict[str, Any]) -> None:
    """The attacker's process: runs until a line (or EOF) on stdin, or its deadline; prints
    ``ready`` once under way and its tally as JSON at the end."""

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        threading.Thread(
            target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)),
            daemon=True,
        ).start()
        loop.call_later(spec["deadline"], stop.set)
        tally = _Tally()
        task = asyncio.ensure_future(ATTACKS[spec["kind"]](spec, stop, tally))
        await asyncio.sleep(spec["ramp"])
        print("ready", flush=True)
        started = time.monotonic()
        await task
        tally.extra["seconds"] = round(time.monotonic() - started, 1)
        return tally.result()

    result = asyncio.run(run())
    print(json.dumps(result, default=dict), flush=True)


# --- the orchestration --------------------------------------------------------------------------
class _Sampler:
    """The largest RSS of a process while the block runs (sampled every 100 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


_OUTCOME = re.compile(
    r'^autotask_sync_gateway_requests_total\{[^}]*outcome="([a-z_]+)"[^}]*\} ([0-9.e+]+)$'
)


def _outcomes(ops_port: int) -> Counter[str]:
    """The gateway's request counter by outcome (all routes and connections)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _OUTCOME.match(line)
        if match:
            counts[match.group(1)] += int(float(match.group(2)))
    return counts


def _runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread (the event loop) has waited for a CPU while runnable
    (/proc/<pid>/schedstat): how much a slow answer owes to the machine rather than the code."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _compact(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def _phase(
    name: str,
    kind: str | None,
    *,
    gateway: subprocess.Popen[bytes],
    port: int,
    path: str,
    ops_port: int,
    seconds: float,
    offset: int,
    source: str,
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    target = {
        "kind": kind,
        "source": source,
        "url": url,
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "ramp": 4.0 if kind == "slow_bodies" else 1.0,
        "deadline": seconds + 30,
    }
    attacker = None
    if kind is not None:
        attacker = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_gateway_attack", "--attack", json.dumps(target)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert attacker.stdout is not None
        if attacker.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the {kind} attacker did not start")
    before = _outcomes(ops_port)
    cpu_before, wall_before = cpu_seconds(gateway.pid), time.monotonic()
    waited_before = _runqueue_wait(gateway.pid)
    attacker_cpu_before = cpu_seconds(attacker.pid) if attacker else 0.0
    with _Sampler(gateway.pid) as sampler:
        plan = {
            "mode": "open",
            "url": url,
            "rate": VALID_RATE,
            "seconds": seconds,
            "count": int(VALID_RATE * seconds),
            "offset": offset,
        }
        valid = run_load(plan)
        cpu_after, wall_after = cpu_seconds(gateway.pid), time.monotonic()
        waited = _runqueue_wait(gateway.pid) - waited_before
        attacked: dict[str, Any] = {}
        if attacker is not None:
            attacker_cpu = cpu_seconds(attacker.pid) - attacker_cpu_before
            out, _ = attacker.communicate(b"stop\n", timeout=60)
            attacked = json.loads(out.decode().strip().splitlines()[-1])
            attacked["cpu_share"] = round(attacker_cpu / (wall_after - wall_before), 2)
    alive = gateway.poll() is None
    seen = _outcomes(ops_port) - before if alive else Counter()
    latencies = valid["latencies"]
    record_latencies(f"valid callouts: {name}", latencies)
    return {
        "phase": name,
        "valid_sent": valid["sent"],
        "valid_statuses": _compact(valid["statuses"]),
        "valid_not_200": valid["sent"] - valid["ok"],
        **latency_summary(latencies),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
        "attacker": source if kind else "-",
        "attack_requests": attacked.get("requests", 0),
        "attack_statuses": _compact(attacked.get("statuses", {})),
        "attack_errors": _compact(attacked.get("errors", {})),
        "gateway_outcomes": _compact(dict(seen)),
        "gateway_cpu_share": round((cpu_after - cpu_before) / (wall_after - wall_before), 2),
        "gateway_runq_wait_share": round(waited / (wall_after - wall_before), 2),
        "attacker_cpu_share": attacked.get("cpu_share", 0.0),
        "gateway_rss_peak_mib": round(sampler.peak, 1),
        "gateway_rss_end_mib": round(rss_mib(gateway.pid), 1) if alive else float("nan"),
        "gateway_alive": alive,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "attack_detail": {k: v for k, v in attacked.items() if k not in ("requests",)},
    }


PHASES: list[tuple[str, str | None]] = [
    ("alone", None),
    (f"bad signatures, 1 MB bodies, {FLOOD_CLIENTS} clients", "bad_signature"),
    (f"{SLOW_CONNECTIONS} slow bodies", "slow_bodies"),
    ("malformed requests", "malformed"),
    ("oversize bodies", "oversize"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 s phases instead of 20 s")
    parser.add_argument("--attack", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="attacks to run (default: all)")
    parser.add_argument("--keep-log", action="store_true", help="keep the gateway's log file")
    args = parser.parse_args()
    if args.attack:
        _attack(json.loads(args.attack))
        return

    seconds = 10.0 if args.quick else 20.0
    phases = [(n, k) for n, k in PHASES if k is None or not args.only or k in args.only]
    database_url, bootstrap, stack = dependencies()
    key = SecretBox.generate_key()
    dsn, topics, registration_id = asyncio.run(
        prepare(database_url, bootstrap, key, uuid.uuid4().hex[:8])
    )
    log_file = Path(tempfile.mkstemp(prefix="bench-gateway-attack-", suffix=".log")[1])
    rows: list[dict[str, Any]] = []
    gateway = None
    try:
        gateway, http_port, ops_port = start_gateway(
            dsn=dsn, bootstrap=bootstrap, key=key, topics=topics, log=log_file
        )
        path = f"/v1/callouts/{registration_id}"
        url = f"http://127.0.0.1:{http_port}{path}"
        warm = {"mode": "closed", "url": url, "count": 500, "offset": 0, "concurrency": 8}
        run_load({**warm, "seconds": 2})
        for number, (name, kind) in enumerate(phases):
            print(f"phase: {name}", flush=True)
            rows.append(
                _phase(
                    name,
                    kind,
                    gateway=gateway,
                    port=http_port,
                    path=path,
                    ops_port=ops_port,
                    seconds=seconds,
                    offset=(number + 1) * 100_000,
                    source=f"{ATTACKER_NETWORK}{number + 1}",
                )
            )
            if gateway.poll() is not None:
                print(f"the gateway exited ({gateway.returncode}); stopping", file=sys.stderr)
                break
            time.sleep(1.0)  # the attack's connections close before the next phase
    finally:
        if gateway is not None:
            stop_processes(gateway)
        asyncio.run(drop(database_url, dsn))
        if stack is not None:
            stack.down()
    # What the attacks cost in log volume (one line per refused request is the design).
    text = log_file.read_bytes()
    log_volume: dict[str, object] = {"bytes": len(text), "lines": text.count(b"\n")}
    if args.keep_log:
        log_volume["path"] = str(log_file)
    else:
        log_file.unlink(missing_ok=True)

    alone = rows[0]["p99_ms"] if rows and rows[0]["phase"] == "alone" else float("nan")
    for row in rows:
        row["p99_vs_alone"] = round(row["p99_ms"] / alone, 2)
        ok = row["p99_vs_alone"] <= P99_FACTOR_GOAL and row["p99_ms"] < P99_CEILING_S * 1000
        ok = ok and row["valid_not_200"] == 0 and row["gateway_alive"]
        row["goal"] = "PASS" if ok else "FAIL"
    details = {row["phase"]: row.pop("attack_detail") for row in rows}
    write_results(
        "gateway_attack",
        rows,
        goal=f"valid p99 <= {P99_FACTOR_GOAL:g}x alone and < {P99_CEILING_S:g} s, all 200",
        valid_rate_per_s=VALID_RATE,
        seconds_per_phase=seconds,
        attacker_addresses=f"{ATTACKER_NETWORK}2 and up, one per attack",
        attack_details=details,
        gateway_log=log_volume,
    )


if __name__ == "__main__":
    main()

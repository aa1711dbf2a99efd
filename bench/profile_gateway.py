"""Where a valid callout's CPU time goes in the gateway: cProfile plus timed pieces.

    uv run python -m bench.profile_gateway [--callouts 6000] [--concurrency 16]

Not a benchmark (``python -m bench`` does not run it): a tool for deciding what to make cheaper.
The gateway runs in this process, wired as in production (``open_gateway``: the real producer,
registrations, spool checks, de-duplication; served by ``shared.runtime.ops.serve``; JSON log
lines written to a file as production writes them to a pipe), on the local PostgreSQL and Kafka
(``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS``, else a stack started for the run). The load
generator of ``bench.bench_gateway`` sends signed, all-distinct callouts from its own process.

Three measurements:

1. CPU per callout without a profiler (this process's CPU time / callouts): the real figure;
2. the same load under cProfile: each part's share of the profiled time, scaled to (1), so the
   profiler's own overhead is spread evenly (it inflates many small calls more than few large
   ones: treat the figures as a ranking with rough sizes);
3. the request path's pieces timed alone (``timeit``, no profiler): the log line, the metrics,
   routing, headers, timestamps, request ids, HMAC, de-duplication, the response object.

Prints the tables; writes ``bench/results/profile_gateway.json`` (a file ``bench.summary``
also picks up) and the raw profile to ``bench/results/profile_gateway.prof`` (open it with
``python -m pstats`` or snakeviz).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from structlog.contextvars import bound_contextvars

from bench.bench_gateway import SECRET, dependencies, drop, prepare, run_load, signed_bodies
from bench.report import RESULTS_DIR, print_table, write_results
from services.webhook_gateway.app import open_gateway
from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.routing import route
from services.webhook_gateway.settings import GatewaySettings
from services.webhook_gateway.signature import sign, verify
from shared.logging import configure_logging, get_logger
from shared.messages.callout import format_instant, parse_callout
from shared.messages.topics import Topics
from shared.metrics import GATEWAY_BODY_BYTES, GATEWAY_REQUEST_SECONDS, GATEWAY_REQUESTS
from shared.registrations import Registration
from shared.runtime.ops import serve
from shared.secrets import SecretBox
from shared.settings import load_settings
from tools.dev_infra.processes import free_port

# What each part of the request path is, as (label, file fragment, function name) of the
# profile's entries whose cumulative time counts for it. Nested parts are listed apart and
# their time is also inside their parent's (the shares do not add up to 100 %).
PARTS: list[tuple[str, str, str]] = [
    ("handler: callout (whole, own steps)", "webhook_gateway/handlers.py", "callout"),
    ("  log line (_record: structlog -> stdlib -> JSON -> file)", "handlers.py", "_record"),
    ("  metrics (request counter + latency histogram)", "handlers.py", "_count"),
    (
        "  histograms (body size, request and produce seconds)",
        "prometheus_client/metrics.py",
        "observe",
    ),
    ("  read body", "handlers.py", "_read_capped"),
    ("  verify signature (HMAC-SHA1, secrets)", "handlers.py", "_verify"),
    ("    hmac digest", "hmac.py", "digest"),
    ("  route (parse JSON, key, headers)", "webhook_gateway/routing.py", "route"),
    ("    parse_callout", "messages/callout.py", "parse_callout"),
    ("    callout_headers (format_instant, encodes)", "messages/callout.py", "callout_headers"),
    ("  de-duplication: key_for", "webhook_gateway/dedup.py", "key_for"),
    ("  de-duplication: claim", "webhook_gateway/dedup.py", "claim"),
    ("  durability.store (send, await ack: own steps)", "webhook_gateway/durability.py", "store"),
    ("    aiokafka producer.send (enqueue)", "aiokafka/producer/producer.py", "send"),
    ("  last-callout bookkeeping", "webhook_gateway/bookkeeping.py", "saw"),
    ("  request id", "webhook_gateway/handlers.py", "_request_id"),
    ("  answer (web.Response)", "webhook_gateway/handlers.py", "_answer"),
    ("aiohttp: request parsing + protocol", "aiohttp/web_protocol.py", "data_received"),
    ("aiohttp: request handling + response write", "aiohttp/web_protocol.py", "_handle_request"),
    ("aiohttp: finish response (headers, write)", "aiohttp/web_protocol.py", "finish_response"),
    (
        "aiokafka: sender loop (batches, produce requests)",
        "aiokafka/producer/sender.py",
        "_sender_routine",
    ),
    ("aiokafka: broker I/O (conn)", "aiokafka/conn.py", "_read"),
    ("asyncio: event loop select", "selectors.py", "select"),
]


def _settings(dsn: str, bootstrap: str, key: str, prefix: str, log_path: Path) -> GatewaySettings:
    os.environ.update(
        {
            "DATABASE_URL": dsn,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUTOTASK_SYNC_SECRET_KEYS": key,
            "AUTOTASK_SYNC_TOPIC_PREFIX": prefix,
            "AUTOTASK_SYNC_HTTP_HOST": "127.0.0.1",
        }
    )
    settings = load_settings(GatewaySettings)
    # JSON lines to a file, as production writes them to a pipe (a TTY would pick the console).
    configure_logging(settings.log_level, "json", stream=log_path.open("w"))
    return settings


async def _wait_ready(gateway: Any, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        failing = []
        for name, check in gateway.checks.items():
            try:
                await check()
            except Exception:
                failing.append(name)
        if not failing:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the gateway did not become ready within {seconds} s")


async def _serve_and_load(
    settings: GatewaySettings, registration_id: str, callouts: int, concurrency: int
) -> tuple[dict[str, Any], pstats.Stats, Registration]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/callouts/{registration_id}"
    plan = {"mode": "closed", "url": url, "concurrency": concurrency, "seconds": 120}
    async with open_gateway(settings) as gateway:
        await _wait_ready(gateway)
        registration = gateway.registrations.get(registration_id)
        if registration is None:
            raise RuntimeError("the gateway did not load the bench's registration")
        async with serve(gateway.app, "127.0.0.1", port):
            await asyncio.to_thread(run_load, {**plan, "count": 1000, "offset": 0})  # warm
            cpu, wall = time.process_time(), time.perf_counter()
            plain = await asyncio.to_thread(run_load, {**plan, "count": callouts, "offset": 10**6})
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            # CPU time of this thread (the event loop), not wall time: on a busy machine a
            # preempted syscall would otherwise count the other processes' time as ours.
            profiler = cProfile.Profile(time.thread_time)
            profiled_cpu = time.process_time()
            profiler.enable()
            profiled = await asyncio.to_thread(
                run_load, {**plan, "count": callouts, "offset": 2 * 10**6}
            )
            profiler.disable()
            profiled_cpu = time.process_time() - profiled_cpu
    profiler.dump_stats(RESULTS_DIR / "profile_gateway.prof")
    stats = pstats.Stats(profiler, stream=io.StringIO())
    return (
        {
            "ok": plain["ok"],
            "ok_profiled": profiled["ok"],
            "statuses": plain["statuses"],
            "per_s": plain["ok"] / wall,
            "cpu_us_per_callout": cpu / max(1, plain["ok"]) * 1e6,
            "profiled_cpu_us_per_callout": profiled_cpu / max(1, profiled["ok"]) * 1e6,
        },
        stats,
        registration,
    )


def _parts(stats: pstats.Stats, callouts: int, scale: float) -> list[dict[str, Any]]:
    """Cumulative time of each of :data:`PARTS` per callout, profiled and scaled."""
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for label, fragment, function in PARTS:
        calls, cumulative = 0, 0.0
        for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in entries.items():
            if name == function and filename.endswith(fragment):
                calls += nc
                cumulative += ct
        if not calls:
            continue
        rows.append(
            {
                "part": label,
                "calls_per_callout": round(calls / callouts, 2),
                "profiled_us": round(cumulative / callouts * 1e6, 1),
                "est_us": round(cumulative / callouts * 1e6 * scale, 1),
            }
        )
    return rows


def _top(stats: pstats.Stats, callouts: int, scale: float, count: int = 25) -> list[dict[str, Any]]:
    """The functions with the most own time (tottime) per callout."""
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(entries.items(), key=lambda item: -item[1][2])[:count]
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in ranked:
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls_per_callout": round(nc / callouts, 2),
                "own_est_us": round(tt / callouts * 1e6 * scale, 1),
                "cum_est_us": round(ct / callouts * 1e6 * scale, 1),
            }
        )
    return rows


def _pieces(settings: GatewaySettings, registration: Registration) -> list[dict[str, Any]]:
    """The request path's pieces timed alone, in µs per call."""
    body, header = signed_bodies(1, 7)[0]
    secret = SECRET.encode()
    now = datetime.now(UTC)
    log = get_logger("services.webhook_gateway.handlers")
    recent = RecentCallouts(window=settings.dedup_window, capacity=settings.dedup_size)
    parsed = parse_callout(body)
    topics = Topics(prefix=settings.topic_prefix)
    fields = {
        "outcome": "accepted",
        "latency_ms": 1.234,
        "connection": "bench",
        "entity": "Tickets",
        "id": 100007,
        "action": "Update",
    }

    def log_line() -> None:
        with bound_contextvars(request_id=uuid.uuid4().hex, registration="abcdefgh"):
            log.info("callout", **fields)

    def bind_only() -> None:
        with bound_contextvars(request_id="r" * 32, registration="abcdefgh"):
            pass

    counter = GATEWAY_REQUESTS.labels("callout", "accepted", "bench")
    timer = GATEWAY_REQUEST_SECONDS.labels("callout")
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("log line with bound contextvars (as _record)", log_line),
        ("bound_contextvars alone (enter + exit)", bind_only),
        (
            "request counter .labels(...).inc()",
            lambda: GATEWAY_REQUESTS.labels("callout", "accepted", "bench").inc(),
        ),
        ("request counter, cached child .inc()", counter.inc),
        ("latency histogram, cached child .observe()", lambda: timer.observe(0.0012)),
        ("body size histogram .observe()", lambda: GATEWAY_BODY_BYTES.observe(len(body))),
        ("datetime.now(UTC)", lambda: datetime.now(UTC)),
        ("format_instant(now)", lambda: format_instant(now)),
        ("uuid.uuid4().hex", lambda: uuid.uuid4().hex),
        ("os.urandom(16).hex()", lambda: os.urandom(16).hex()),
        ("sign/HMAC-SHA1 of the body", lambda: sign(secret, body)),
        ("verify(header, body, [secret])", lambda: verify(header, body, [secret])),
        (
            "registration.verifying_secrets + encode",
            lambda: [s.get_secret_value().encode() for s in registration.verifying_secrets(now)],
        ),
        ("parse_callout(body)", lambda: parse_callout(body)),
        (
            "route(...) (parse, key, headers)",
            lambda: route(registration, body, topics=topics, received_at=now, request_id="r" * 32),
        ),
        (
            "dedup key_for(registration, parsed, body)",
            lambda: recent.key_for(registration.registration_id, parsed, body),
        ),
        (
            "web.Response(...) with X-Request-Id",
            lambda: web.Response(
                status=200,
                body=b'{"status":"accepted"}',
                content_type="application/json",
                headers={"X-Request-Id": "r" * 32},
            ),
        ),
    ]
    rows = []
    for label, piece in pieces:
        timer_ = timeit.Timer(piece)
        number, _ = timer_.autorange()
        best = min(timer_.repeat(repeat=3, number=number)) / number
        rows.append({"piece": label, "us": round(best * 1e6, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callouts", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    database_url, bootstrap, stack = dependencies()
    key = SecretBox.generate_key()
    dsn, topics, registration_id = asyncio.run(
        prepare(database_url, bootstrap, key, uuid.uuid4().hex[:8])
    )
    log_path = Path(tempfile.mkstemp(prefix="profile-gateway-", suffix=".log")[1])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        settings = _settings(dsn, bootstrap, key, topics.prefix, log_path)
        measured, stats, registration = asyncio.run(
            _serve_and_load(settings, registration_id, args.callouts, args.concurrency)
        )
    finally:
        asyncio.run(drop(database_url, dsn))
        if stack is not None:
            stack.down()
    lines = [
        n
        for n in log_path.read_bytes().splitlines()
        if b'"event": "callout"' in n or b'"event":"callout"' in n
    ]
    log_path.unlink(missing_ok=True)
    callouts = measured["ok_profiled"]
    scale = measured["cpu_us_per_callout"] / measured["profiled_cpu_us_per_callout"]
    parts = _parts(stats, callouts, scale)
    top = _top(stats, callouts, scale)
    pieces = _pieces(settings, registration)
    summary = {
        **{k: round(v, 1) if isinstance(v, float) else v for k, v in measured.items()},
        "profiler_scale": round(scale, 3),
        "log_bytes_per_callout": round(sum(map(len, lines)) / max(1, len(lines)), 1),
    }
    print("\nparts of the request path, cumulative, per callout:")
    write_results("profile_gateway", parts, summary=summary, concurrency=args.concurrency)
    print("\nfunctions by own time, per callout:")
    print_table(top)
    print("\npieces timed alone:")
    print_table(pieces)
    path = RESULTS_DIR / "profile_gateway.json"
    payload = json.loads(path.read_text())
    payload["context"]["top_functions"] = top
    payload["context"]["pieces"] = pieces
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Durable produce on the local broker: what ``acks=all`` + idempotence costs.

The gateway answers Autotask only after Kafka acknowledged the callout, so the latency of one
awaited, durable send is on its request path. Compared in the same run against the cheapest
producer (``acks=1``, not idempotent, fire-and-forget batches) on the same topic.

    uv run python -m bench.bench_kafka [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.report import latency_summary, write_results
from shared.kafka import ensure_topics, make_producer
from shared.messages.topics import TopicSpec
from tools.dev_infra.stack import DevStack

VALUE = b'{"Action":"Update","EntityType":"Ticket","Fields":{"title":"' + b"x" * 900 + b'"}}'


async def _burst(producer: AIOKafkaProducer, topic: str, count: int) -> float:
    """Send ``count`` messages without waiting between them; seconds until all are acked."""
    started = time.perf_counter()
    futures = [
        await producer.send(topic, VALUE, key=f"c:Ticket:{n % 500}".encode()) for n in range(count)
    ]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def _awaited(
    producer: AIOKafkaProducer, topic: str, count: int, concurrency: int
) -> tuple[float, list[float]]:
    """``concurrency`` callers each awaiting their own ack (the gateway's request path)."""
    latencies: list[float] = []
    per_worker = count // concurrency

    async def worker(w: int) -> None:
        for n in range(per_worker):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, VALUE, key=f"c:Ticket:{w}:{n}".encode())
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started, latencies


async def run(bootstrap: str, count: int) -> list[dict[str, Any]]:
    topic = f"bench.produce.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 12)])
    baseline = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    # The project's producer lingers 0 ms; 5 ms shows what a common tuning costs when every
    # send is awaited.
    durable = make_producer(bootstrap, client_id="bench-linger", linger_ms=5)
    durable_no_linger = make_producer(bootstrap, client_id="bench")
    await baseline.start()
    await durable.start()
    await durable_no_linger.start()
    rows: list[dict[str, Any]] = []
    try:
        await _burst(baseline, topic, 500)  # warm both connections and metadata
        await _burst(durable, topic, 500)
        base_seconds = await _burst(baseline, topic, count)
        base_rate = count / base_seconds
        rows.append(
            {
                "scenario": "baseline acks=1 burst",
                "msgs": count,
                "msgs_per_s": base_rate,
                "ratio_vs_baseline": 1.0,
            }
        )
        seconds = await _burst(durable, topic, count)
        rows.append(
            {
                "scenario": "acks=all idempotent burst",
                "msgs": count,
                "msgs_per_s": count / seconds,
                "ratio_vs_baseline": (count / seconds) / base_rate,
            }
        )
        await _burst(durable_no_linger, topic, 500)
        for linger, producer in (("linger 5ms", durable), ("linger 0", durable_no_linger)):
            for concurrency in (1, 16, 64):
                n = count // 10 if concurrency == 1 else count
                seconds, latencies = await _awaited(producer, topic, n, concurrency)
                rows.append(
                    {
                        "scenario": f"acks=all awaited x{concurrency}, {linger}",
                        "msgs": n,
                        "msgs_per_s": len(latencies) / seconds,
                        "ratio_vs_baseline": (len(latencies) / seconds) / base_rate,
                        **latency_summary(latencies),
                    }
                )
    finally:
        await durable_no_linger.stop()
        await durable.stop()
        await baseline.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 2_000 if args.quick else 20_000
    stack = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        stack = DevStack(owned=True, postgres=False)
        bootstrap = stack.up().kafka_bootstrap_servers
    try:
        rows = asyncio.run(run(bootstrap, count))
    finally:
        if stack is not None:
            stack.down()
    write_results(
        "kafka",
        rows,
        message_bytes=len(VALUE),
        partitions=12,
        broker="local single node" if stack else bootstrap,
    )


if __name__ == "__main__":
    main()

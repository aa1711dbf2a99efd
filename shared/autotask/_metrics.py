"""Cached metric children for the per-call path.

``labels(...)`` costs a lock and a tuple build on every call; the client looks each child up
once and keeps it (label sets are bounded: connection, endpoint, method, status class), which
took a measurable share of the per-call overhead (bench/bench_client.py).
"""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import (
    AUTOTASK_BUDGET_USED_RATIO,
    AUTOTASK_INFLIGHT,
    AUTOTASK_REQUEST_SECONDS,
    AUTOTASK_REQUESTS,
    AUTOTASK_THROTTLE_WAIT_SECONDS,
)


@lru_cache(maxsize=4096)
def requests_total(connection: str, endpoint: str, method: str, status: str) -> Counter:
    return AUTOTASK_REQUESTS.labels(connection, endpoint, method, status)


@lru_cache(maxsize=2048)
def request_seconds(connection: str, endpoint: str, method: str) -> Histogram:
    return AUTOTASK_REQUEST_SECONDS.labels(connection, endpoint, method)


@lru_cache(maxsize=1024)
def inflight(connection: str, endpoint: str) -> Gauge:
    return AUTOTASK_INFLIGHT.labels(connection, endpoint)


@lru_cache(maxsize=256)
def throttle_wait_seconds(connection: str, priority: str) -> Counter:
    return AUTOTASK_THROTTLE_WAIT_SECONDS.labels(connection, priority)


@lru_cache(maxsize=256)
def budget_used_ratio(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_USED_RATIO.labels(connection)


__all__ = [
    "budget_used_ratio",
    "inflight",
    "request_seconds",
    "requests_total",
    "throttle_wait_seconds",
]

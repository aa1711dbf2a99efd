"""Cached metric children for the per-call path.

``labels(...)`` costs a lock and a tuple build on every call; the client looks each child up
once and keeps it (label sets are bounded: connection, endpoint, method, status class), which
took a measurable share of the per-call overhead (bench/bench_client.py).
"""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import (
    AUTOTASK_AUTH_FAILURES,
    AUTOTASK_AUTH_PAUSED,
    AUTOTASK_BUDGET_PROJECT_CALLS,
    AUTOTASK_BUDGET_PROJECT_USED_RATIO,
    AUTOTASK_BUDGET_SHARE_RATIO,
    AUTOTASK_BUDGET_TENANT_CALLS,
    AUTOTASK_BUDGET_USED_RATIO,
    AUTOTASK_BUDGET_WAIT_SECONDS,
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


@lru_cache(maxsize=512)
def budget_wait_seconds(connection: str, priority: str, state: str) -> Counter:
    return AUTOTASK_BUDGET_WAIT_SECONDS.labels(connection, priority, state)


@lru_cache(maxsize=256)
def budget_used_ratio(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_USED_RATIO.labels(connection)


@lru_cache(maxsize=256)
def budget_project_calls(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_PROJECT_CALLS.labels(connection)


@lru_cache(maxsize=256)
def budget_tenant_calls(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_TENANT_CALLS.labels(connection)


@lru_cache(maxsize=256)
def budget_project_used_ratio(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_PROJECT_USED_RATIO.labels(connection)


@lru_cache(maxsize=256)
def budget_share_ratio(connection: str) -> Gauge:
    return AUTOTASK_BUDGET_SHARE_RATIO.labels(connection)


@lru_cache(maxsize=256)
def auth_paused(connection: str) -> Gauge:
    return AUTOTASK_AUTH_PAUSED.labels(connection)


@lru_cache(maxsize=256)
def auth_failures(connection: str) -> Counter:
    return AUTOTASK_AUTH_FAILURES.labels(connection)


__all__ = [
    "auth_failures",
    "auth_paused",
    "budget_project_calls",
    "budget_project_used_ratio",
    "budget_share_ratio",
    "budget_tenant_calls",
    "budget_used_ratio",
    "budget_wait_seconds",
    "inflight",
    "request_seconds",
    "requests_total",
    "throttle_wait_seconds",
]

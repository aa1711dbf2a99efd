"""Every Prometheus metric the project exports, defined in one place.

Label sets are small and bounded: ``connection`` (a configured slug), ``entity`` (registry),
``endpoint`` (entity REST name, never an id), status classes. Nothing here ever carries a secret
or an unbounded value such as an entity id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

NAMESPACE = "autotask_sync"

# --- Autotask REST client --------------------------------------------------------------------
AUTOTASK_REQUESTS = Counter(
    "autotask_requests_total",
    "Autotask REST calls by outcome (status is the HTTP status, or 'error' for no response).",
    ["connection", "endpoint", "method", "status"],
    namespace=NAMESPACE,
)
AUTOTASK_REQUEST_SECONDS = Histogram(
    "autotask_request_seconds",
    "Latency of Autotask REST calls, including limiter waits.",
    ["connection", "endpoint", "method"],
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTOTASK_RETRIES = Counter(
    "autotask_retries_total",
    "Retries of Autotask calls by reason (rate_limit, thread_limit, server, network, auth_zone).",
    ["connection", "reason"],
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_USED_RATIO = Gauge(
    "autotask_budget_used_ratio",
    "Share of the tenant's hourly request threshold used, as last read from "
    "ThresholdInformation plus calls made since.",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_THROTTLE_WAIT_SECONDS = Counter(
    "autotask_throttle_wait_seconds_total",
    "Seconds calls spent waiting in the limiter, by priority.",
    ["connection", "priority"],
    namespace=NAMESPACE,
)
AUTOTASK_INFLIGHT = Gauge(
    "autotask_inflight_requests",
    "Autotask calls in flight per endpoint.",
    ["connection", "endpoint"],
    namespace=NAMESPACE,
)

# --- Kafka -----------------------------------------------------------------------------------
KAFKA_PRODUCED = Counter(
    "kafka_messages_produced_total",
    "Messages acknowledged by Kafka, by topic.",
    ["topic"],
    namespace=NAMESPACE,
)
KAFKA_PRODUCE_ERRORS = Counter(
    "kafka_produce_errors_total",
    "Produce attempts that failed, by topic.",
    ["topic"],
    namespace=NAMESPACE,
)

# --- Service lifecycle -----------------------------------------------------------------------
SERVICE_INFO = Gauge(
    "service_up",
    "1 while the service is running; labelled with its name and version.",
    ["service", "version"],
    namespace=NAMESPACE,
)
SHUTDOWN_SECONDS = Histogram(
    "shutdown_seconds",
    "Time from stop signal to the last resource closed.",
    ["service"],
    namespace=NAMESPACE,
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30),
)


def metrics_handler(
    registry: CollectorRegistry = REGISTRY,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving ``registry`` in the Prometheus text format."""

    async def handle(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle

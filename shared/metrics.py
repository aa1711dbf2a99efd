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
AUTOTASK_SLOTS_IN_USE = Gauge(
    "autotask_slots_in_use",
    "Shared concurrency slots (PostgreSQL leases) this process holds per endpoint; summed over "
    "every process it is the tenant-wide count, which never exceeds the endpoint's limit.",
    ["connection", "endpoint"],
    namespace=NAMESPACE,
)
AUTOTASK_SLOT_WAITS = Counter(
    "autotask_slot_waits_total",
    "Shared slot acquisitions that found every slot taken (by other processes) and waited.",
    ["connection", "endpoint"],
    namespace=NAMESPACE,
)
AUTOTASK_SLOT_ACQUIRE_SECONDS = Histogram(
    "autotask_slot_acquire_seconds",
    "Time to take a shared slot: the round trip to PostgreSQL, plus waiting when all are taken.",
    ["connection", "endpoint"],
    namespace=NAMESPACE,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTOTASK_SLOT_FALLBACK = Gauge(
    "autotask_slot_fallback",
    "1 while PostgreSQL is unreachable and this process uses its local share instead of shared "
    "slots and budget (1 slot per endpoint, its own call count).",
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_PROJECT_CALLS = Gauge(
    "autotask_budget_project_calls",
    "Calls this deployment (every process together) made in the rolling hour, reservations "
    "included.",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_TENANT_CALLS = Gauge(
    "autotask_budget_tenant_calls",
    "The tenant's calls in the rolling hour, every integration included: the last "
    "ThresholdInformation reading plus this deployment's calls since.",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_SHARE_RATIO = Gauge(
    "autotask_budget_share_ratio",
    "The share of the tenant's hourly threshold this deployment may use (AUTOTASK_SYNC_API_SHARE).",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_PROJECT_USED_RATIO = Gauge(
    "autotask_budget_project_used_ratio",
    "Share of this deployment's allowance (share x threshold) used in the rolling hour.",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_BUDGET_WAIT_SECONDS = Counter(
    "autotask_budget_wait_seconds_total",
    "Seconds calls waited for the hourly budget, by priority and state (slowed: sweeps above "
    "half the budget; paused: above a priority's pause level or the allowance used up).",
    ["connection", "priority", "state"],
    namespace=NAMESPACE,
)
AUTOTASK_AUTH_PAUSED = Gauge(
    "autotask_auth_paused",
    "1 while calls to the connection are held back after Autotask rejected its credentials.",
    ["connection"],
    namespace=NAMESPACE,
)
AUTOTASK_AUTH_FAILURES = Counter(
    "autotask_auth_failures_total",
    "401 answers that paused the connection (after the one zone re-discovery).",
    ["connection"],
    namespace=NAMESPACE,
)

# --- Connections ---------------------------------------------------------------------------
CONNECTIONS_SERVED = Gauge(
    "connections_served",
    "Connections this process serves, by where they are configured (environment, database).",
    ["source"],
    namespace=NAMESPACE,
)

# --- Mirror (worker and reconciler) ---------------------------------------------------------
MIRROR_WRITES = Counter(
    "mirror_writes_total",
    "Rows offered to the mirror by outcome (created, updated, unchanged, stale, deleted, "
    "already_deleted, out_of_scope, out_of_scope_skipped) and origin (webhook, sweep, backfill).",
    ["connection", "entity", "origin", "outcome"],
    namespace=NAMESPACE,
)

# --- Webhook gateway -------------------------------------------------------------------------
GATEWAY_REQUESTS = Counter(
    "gateway_requests_total",
    "Requests to the Autotask-facing routes by route (callout, deactivation), outcome "
    "(accepted, spooled, duplicate, dead_lettered, bad_signature, unknown_registration, retired, "
    "too_large, bad_request, unavailable, overloaded, suppressed) and connection (empty when the "
    "registration is unknown).",
    ["route", "outcome", "connection"],
    namespace=NAMESPACE,
)
GATEWAY_REQUEST_SECONDS = Histogram(
    "gateway_request_seconds",
    "Time from a request's arrival to its answer, by route.",
    ["route"],
    namespace=NAMESPACE,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GATEWAY_PRODUCE_SECONDS = Histogram(
    "gateway_produce_seconds",
    "Time Kafka took to acknowledge (acks=all) a message sent on the request path.",
    namespace=NAMESPACE,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GATEWAY_PRODUCE_FAILURES = Counter(
    "gateway_produce_failures_total",
    "Request-path sends that Kafka did not acknowledge, by reason (deadline: slower than the "
    "produce deadline; error: refused; not_connected: no producer yet; unresponsive: not tried, "
    "an earlier send is still overdue). The message was spooled instead.",
    ["reason"],
    namespace=NAMESPACE,
)
GATEWAY_BODY_BYTES = Histogram(
    "gateway_body_bytes",
    "Sizes of the callout bodies read, verified or not.",
    namespace=NAMESPACE,
    buckets=(256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144, 1048576),
)
GATEWAY_SIGNATURE_FALLBACKS = Counter(
    "gateway_signature_fallbacks_total",
    "Callouts that verified only once re-escaped the .NET way (autotask-api.md §8.5).",
    ["connection"],
    namespace=NAMESPACE,
)
GATEWAY_SPOOLED = Counter(
    "gateway_spooled_total",
    "Messages this replica wrote to the spool, by topic.",
    ["topic"],
    namespace=NAMESPACE,
)
GATEWAY_SPOOL_DRAINED = Counter(
    "gateway_spool_drained_total",
    "Spooled messages this replica's drainer moved to Kafka (acknowledged, then deleted).",
    namespace=NAMESPACE,
)
GATEWAY_CONNECTIONS_REFUSED = Counter(
    "gateway_connections_refused_total",
    "Connections to the public port reset as soon as they were accepted, their address over "
    "its limits (too many bad requests this minute, or its share of unfinished bodies).",
    namespace=NAMESPACE,
)
GATEWAY_SPOOL_REJECTED = Counter(
    "gateway_spool_rejected_total",
    "Spooled messages Kafka refused for good (too large, topic refused...), moved aside by "
    "destination: dlq (the dead-letter topic) or table (spool_rejects; `autotask-sync spool`).",
    ["destination"],
    namespace=NAMESPACE,
)
GATEWAY_SPOOL_ROWS = Gauge(
    "gateway_spool_rows",
    "Rows in the spool (every replica's) at the last check.",
    namespace=NAMESPACE,
)
GATEWAY_SPOOL_OLDEST_AGE_SECONDS = Gauge(
    "gateway_spool_oldest_age_seconds",
    "Age of the oldest spooled message at the last check (0 when the spool is empty).",
    namespace=NAMESPACE,
)
GATEWAY_DEACTIVATION_CHECKS = Counter(
    "gateway_deactivation_checks_total",
    "Deactivation notices by what followed: requested (a webhook_deactivated event was "
    "published), suppressed (one was, for that registration, within the interval), failed.",
    ["connection", "outcome"],
    namespace=NAMESPACE,
)
GATEWAY_REGISTRATIONS = Gauge(
    "gateway_registrations",
    "Webhook registrations in the gateway's in-memory view, by state.",
    ["state"],
    namespace=NAMESPACE,
)

# --- Sync worker -----------------------------------------------------------------------------
WORKER_CALLOUTS = Counter(
    "worker_callouts_total",
    "Callouts consumed, per connection and entity (API calls per 1,000 callouts = "
    "1000 * worker_api_calls_total / worker_callouts_total).",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
WORKER_API_CALLS = Counter(
    "worker_api_calls_total",
    "Autotask calls the worker spent fetching entities.",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
WORKER_FETCHED_IDS = Counter(
    "worker_fetched_ids_total",
    "Distinct ids fetched after coalescing (callouts / fetched ids = coalescing ratio).",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
WORKER_UNIT_CALLOUTS = Histogram(
    "worker_unit_callouts",
    "Callouts coalesced into one fetch unit.",
    ["connection", "entity"],
    namespace=NAMESPACE,
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
WORKER_WINDOW_SECONDS = Gauge(
    "worker_coalescing_window_seconds",
    "The coalescing window now in use (it widens as the tenant's API usage climbs).",
    ["connection"],
    namespace=NAMESPACE,
)
WORKER_FETCH_SECONDS = Histogram(
    "worker_fetch_seconds",
    "Time to fetch one unit's entities (retries of missing ids included).",
    ["connection", "entity"],
    namespace=NAMESPACE,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WORKER_END_TO_END_SECONDS = Histogram(
    "worker_end_to_end_seconds",
    "From the callout accepted by the gateway to its change committed and acknowledged.",
    ["connection", "entity"],
    namespace=NAMESPACE,
    # Fine below 2 s, where a healthy pipeline is: quantiles are interpolated within a bucket.
    buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300),
)
WORKER_UNRESOLVED = Counter(
    "worker_unresolved_ids_total",
    "Ids a fetch did not return after its retries (left for the sweep).",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
WORKER_DEAD_LETTERS = Counter(
    "worker_dead_letters_total",
    "Callouts sent to the dead-letter topic, by error class.",
    ["connection", "error"],
    namespace=NAMESPACE,
)
WORKER_RETRIES = Counter(
    "worker_unit_retries_total",
    "Fetch units retried after a failure, by error class.",
    ["connection", "error"],
    namespace=NAMESPACE,
)
WORKER_CONSUMER_LAG = Gauge(
    "worker_consumer_lag",
    "Messages behind the end of each partition of the callouts topic this worker owns now "
    "(a partition revoked from it is no longer exported, so the sum over workers is the "
    "group's lag).",
    ["topic", "partition"],
    namespace=NAMESPACE,
)
CONSUMER_EVICTIONS = Counter(
    "consumer_evictions_total",
    "Times the consumer group removed this member (a commit refused for an unknown member or "
    "an old generation, or the member found itself removed when its partitions were revoked): "
    "its unfinished work is redelivered to the next owner. Should stay 0; rebalances are not "
    "evictions.",
    namespace=NAMESPACE,
)
CONSUMER_REVOKE_SECONDS = Histogram(
    "consumer_revoke_seconds",
    "Time a rebalance spent revoking this member's partitions: flushing their buckets, "
    "waiting (at most REVOKE_WAIT) for their in-flight messages and committing.",
    namespace=NAMESPACE,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30),
)
WORKER_IN_FLIGHT = Gauge(
    "worker_in_flight_callouts",
    "Callouts consumed and not yet durable (partitions pause above the limit).",
    namespace=NAMESPACE,
)

# --- Provisioner -----------------------------------------------------------------------------
PROVISIONER_PASSES = Counter(
    "provisioner_passes_total",
    "Provisioning passes of a connection by trigger (startup, schedule, deactivation, "
    "reprovision, connection_changed, cli) and outcome (in_sync, applied, failed, held, locked).",
    ["connection", "trigger", "outcome"],
    namespace=NAMESPACE,
)
PROVISIONER_STEPS = Counter(
    "provisioner_steps_total",
    "Plan steps executed, by kind (create_webhook, add_field, reactivate...) and outcome "
    "(done, gone, failed, skipped, owed).",
    ["connection", "entity", "kind", "outcome"],
    namespace=NAMESPACE,
)
PROVISIONER_WEBHOOKS = Gauge(
    "provisioner_webhooks",
    "The connection's webhook per entity as last observed: 1 for its state (active, inactive, "
    "not_ready, missing, blocked), 0 for the others.",
    ["connection", "entity", "state"],
    namespace=NAMESPACE,
)
PROVISIONER_ROTATIONS = Counter(
    "provisioner_secret_rotations_total",
    "Webhook secret rotations by outcome (rotated, resumed, failed).",
    ["connection", "entity", "outcome"],
    namespace=NAMESPACE,
)
PROVISIONER_HEAL_ACTIONS = Counter(
    "provisioner_heal_actions_total",
    "What passes did to webhooks beyond plain set-up: created, recreated, reactivated, readied, "
    "repaired (each followed by a catch-up sweep request), duplicate_deleted, orphan_deleted, "
    "teardown_deleted.",
    ["connection", "entity", "action"],
    namespace=NAMESPACE,
)
PROVISIONER_APPLY_SECONDS = Histogram(
    "provisioner_apply_seconds",
    "Time to apply a connection's plan (passes with nothing to do are not observed).",
    ["connection"],
    namespace=NAMESPACE,
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PROVISIONER_CONTROL_EVENTS = Counter(
    "provisioner_control_events_total",
    "Control-topic events read, by type and what came of them (scheduled, coalesced, ignored).",
    ["type", "outcome"],
    namespace=NAMESPACE,
)

# --- Reconciler ------------------------------------------------------------------------------
SWEEP_RUNS = Counter(
    "sweep_runs_total",
    "Reconciliation runs by mode (incremental, catchup, full, ids, backfill, resync, metadata) "
    "and outcome (succeeded, failed, aborted, skipped: a duplicate request, locked: another "
    "replica holds the connection and entity, not_due).",
    ["connection", "entity", "mode", "outcome"],
    namespace=NAMESPACE,
)
SWEEP_REPAIRED = Counter(
    "sweep_repaired_total",
    "Rows a sweep really changed (created, updated, deleted): what the webhooks missed.",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
SWEEP_PAGES = Counter(
    "sweep_pages_total",
    "Query pages read by reconciliation runs.",
    ["connection", "entity", "mode"],
    namespace=NAMESPACE,
)
SWEEP_API_CALLS = Counter(
    "sweep_api_calls_total",
    "Autotask calls spent by reconciliation runs (pages, counts, confirmations, metadata).",
    ["connection", "entity", "mode"],
    namespace=NAMESPACE,
)
SWEEP_DELETED = Counter(
    "sweep_deleted_total",
    "Rows reconciliation marked deleted, by how it knew (delete_log, id_sweep, rebuild).",
    ["connection", "entity", "source"],
    namespace=NAMESPACE,
)
SWEEP_MASS_DELETE_REFUSED = Counter(
    "sweep_mass_delete_refused_total",
    "Delete detections refused because more than the allowed share of rows would go.",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
SWEEP_WATERMARK_LAG_SECONDS = Gauge(
    "sweep_watermark_lag_seconds",
    "How far the incremental watermark is behind now, after the last sweep.",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
SWEEP_RUN_SECONDS = Histogram(
    "sweep_run_seconds",
    "Duration of reconciliation runs, by mode.",
    ["mode"],
    namespace=NAMESPACE,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
BACKFILL_PROGRESS_RATIO = Gauge(
    "backfill_progress_ratio",
    "Share of the entity's rows a backfill or resync has read (1 when done).",
    ["connection", "entity"],
    namespace=NAMESPACE,
)
METADATA_REFRESHES = Counter(
    "metadata_refreshes_total",
    "PSA metadata (picklists, UDF definitions) refreshes by outcome (succeeded, failed).",
    ["connection", "outcome"],
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
KAFKA_PRODUCER_REPLACED = Counter(
    "kafka_producer_replaced_total",
    "Producers closed and started afresh because the broker no longer accepted their "
    "idempotence state (reason: the broker's error, e.g. OutOfOrderSequenceNumber); the sends "
    "that failed were sent again (shared/kafka/producer.py).",
    ["reason"],
    namespace=NAMESPACE,
)

# --- Service lifecycle -----------------------------------------------------------------------
SERVICE_INFO = Gauge(
    "service_up",
    "1 while the service is running; labelled with its name and version.",
    ["service", "version"],
    namespace=NAMESPACE,
)
STALLED_SECONDS = Gauge(
    "stalled_seconds",
    "How long a part of the service has had work waiting with nothing done (0: idle or "
    "moving); the probes fail on it (shared/runtime/progress.py).",
    ["part"],
    namespace=NAMESPACE,
)
PROBE_FAILING = Gauge(
    "probe_failing",
    "1 while a check fails the probe that last ran it (probe: readiness or liveness).",
    ["probe", "check"],
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

"""Settings of the sync worker (read once at start; docs/configuration.md lists them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from shared.reconcile.settings import SweepSettings
from shared.settings import Duration, Within

REVOKE_COMMIT_WAIT = timedelta(seconds=2)
"""How long a revoke waits for its commit once the in-flight wait is over."""
REBALANCE_MARGIN = 1.5
"""How much longer than the longest revoke the rebalance timeout must be."""

Window = Annotated[Duration, Within("1ms", "10m")]
"""A coalescing window."""


class WorkerSettings(SweepSettings):
    """The worker's settings: the shared ones plus consumer, coalescing and fetch tuning, and
    the in-process sweeps (:class:`~shared.reconcile.settings.SweepSettings`)."""

    sweeps_enabled: bool = Field(
        default=True,
        description="Run the reconciliation scheduler inside the worker (off when the "
        "reconciler service or CronJob commands do it; both at once is safe too).",
    )

    consumer_group: str = Field(
        default="autotask-sync-worker", description="Kafka consumer group of the worker replicas."
    )
    window_low: Window = Field(
        default=timedelta(milliseconds=250),
        description="Coalescing window while the tenant's API usage is below WINDOW_MEDIUM_AT.",
    )
    window_medium: Window = Field(default=timedelta(seconds=2))
    window_high: Window = Field(default=timedelta(seconds=10))
    window_medium_at: float = Field(default=0.5, ge=0, le=1)
    window_high_at: float = Field(default=0.75, ge=0, le=1)
    max_ids_per_fetch: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="The most ids in one fetch unit; a full bucket is fetched at once.",
    )
    missing_retries: int = Field(
        default=3, ge=0, description="Extra reads of ids a fetch did not return."
    )
    missing_retry_delay: Annotated[Duration, Within("10ms", "1m")] = Field(
        default=timedelta(milliseconds=500), description="First back-off; it doubles."
    )
    dead_letter_after: int = Field(
        default=3, ge=1, description="Attempts before a non-retriable failure is dead-lettered."
    )
    dead_letter_min_age: Annotated[Duration, Within("0s", "24h")] = Field(
        default=timedelta(seconds=30),
        description="...and at least this long after the first failure (a connection added a "
        "moment ago may not be in this replica's view yet).",
    )
    retry_delay_max: Annotated[Duration, Within("100ms", "1h")] = Field(
        default=timedelta(seconds=30)
    )
    max_in_flight: int = Field(
        default=5000, ge=1, description="Callouts in flight before partitions are paused."
    )
    concurrent_units: int = Field(default=8, ge=1, description="Fetch units processed at once.")

    # Rebalances: the order matters, each is checked against the ones before it.
    consumer_session_timeout: Annotated[Duration, Within("1s", "30m")] = Field(
        default=timedelta(seconds=10),
        description="A worker that sends no heartbeat for this long is removed from the "
        "consumer group (within the broker's group.min/max.session.timeout.ms).",
    )
    consumer_heartbeat_interval: Annotated[Duration, Within("100ms", "10m")] = Field(
        default=timedelta(seconds=3),
        description="Time between heartbeats; also how long a worker may take to notice that "
        "a rebalance began. At most a third of CONSUMER_SESSION_TIMEOUT.",
    )
    revoke_wait: Annotated[Duration, Within("0s", "5m")] = Field(
        default=timedelta(seconds=5),
        description="How long a rebalance waits for the in-flight callouts of the partitions "
        "a worker loses (their buckets are fetched at once) before it commits what finished "
        "and leaves the rest to the next owner.",
    )
    consumer_rebalance_timeout: Annotated[Duration, Within("1s", "30m")] = Field(
        default=timedelta(seconds=30),
        description="How long the group waits for every worker to rejoin in a rebalance; a "
        "worker still revoking then is evicted. At least 1.5 times (CONSUMER_HEARTBEAT_INTERVAL "
        "+ REVOKE_WAIT + the revoke's commit wait).",
    )

    @field_validator("consumer_heartbeat_interval")
    @classmethod
    def _heartbeat_within_session(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        session = info.data.get("consumer_session_timeout")
        if session is not None and value * 3 > session:
            raise ValueError(
                "must be at most a third of AUTOTASK_SYNC_CONSUMER_SESSION_TIMEOUT "
                f"({session.total_seconds():g} s), or one late heartbeat removes the worker "
                "from the group"
            )
        return value

    @field_validator("consumer_rebalance_timeout")
    @classmethod
    def _revoke_within_rebalance(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        heartbeat = info.data.get("consumer_heartbeat_interval")
        revoke = info.data.get("revoke_wait")
        if heartbeat is None or revoke is None:
            return value  # reported on their own
        needed = (heartbeat + revoke + REVOKE_COMMIT_WAIT) * REBALANCE_MARGIN
        if value < needed:
            raise ValueError(
                f"must be at least {needed.total_seconds():g} s, {REBALANCE_MARGIN:g} x ("
                f"AUTOTASK_SYNC_CONSUMER_HEARTBEAT_INTERVAL {heartbeat.total_seconds():g} s "
                f"+ AUTOTASK_SYNC_REVOKE_WAIT {revoke.total_seconds():g} s "
                f"+ {REVOKE_COMMIT_WAIT.total_seconds():g} s to commit): a worker still "
                "revoking its partitions when it ends is evicted from the group; raise it or "
                "lower the other two"
            )
        return value

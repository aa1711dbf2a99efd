"""Settings of the sync worker (read once at start; docs/configuration.md lists them)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from shared.reconcile.settings import SweepSettings
from shared.settings import Duration


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
    window_low: Duration = Field(
        default=timedelta(milliseconds=250),
        description="Coalescing window while the tenant's API usage is below WINDOW_MEDIUM_AT.",
    )
    window_medium: Duration = Field(default=timedelta(seconds=2))
    window_high: Duration = Field(default=timedelta(seconds=10))
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
    missing_retry_delay: Duration = Field(
        default=timedelta(milliseconds=500), description="First back-off; it doubles."
    )
    dead_letter_after: int = Field(
        default=3, ge=1, description="Attempts before a non-retriable failure is dead-lettered."
    )
    dead_letter_min_age: Duration = Field(
        default=timedelta(seconds=30),
        description="...and at least this long after the first failure (a connection added a "
        "moment ago may not be in this replica's view yet).",
    )
    retry_delay_max: Duration = Field(default=timedelta(seconds=30))
    max_in_flight: int = Field(
        default=5000, ge=1, description="Callouts in flight before partitions are paused."
    )
    concurrent_units: int = Field(default=8, ge=1, description="Fetch units processed at once.")

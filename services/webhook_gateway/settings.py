"""Settings of the webhook gateway (read once at start; docs/configuration.md lists them)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from shared.settings import BaseServiceSettings, Duration

MIB = 1024 * 1024


class GatewaySettings(BaseServiceSettings):
    """The gateway's settings: the shared ones plus what verifying and spooling need."""

    max_body_size: int = Field(
        default=MIB,
        ge=1024,
        le=64 * MIB,
        description="Largest callout body read, in bytes; a larger one is answered 413.",
    )
    max_concurrent_callouts: int = Field(
        default=1000,
        ge=1,
        description="Callouts handled at once; beyond it a new one is answered 503 at once "
        "(Autotask retries it), so an overload bounds memory and latency instead of queueing.",
    )
    produce_deadline: Duration = Field(
        default=timedelta(seconds=2),
        gt=timedelta(0),
        description="How long a callout waits for Kafka's acknowledgement before it is written "
        "to the spool instead (Autotask gives up on an answer after 10 s).",
    )
    spool_deadline: Duration = Field(
        default=timedelta(seconds=3),
        gt=timedelta(0),
        description="How long a spool write may take before the callout is answered 503.",
    )
    dedup_window: Duration = Field(
        default=timedelta(minutes=5),
        ge=timedelta(0),
        description="An identical body for the same registration within this window is "
        "acknowledged without being stored again (0 turns it off).",
    )
    dedup_size: int = Field(
        default=50_000, ge=0, description="Fingerprints remembered for de-duplication."
    )
    deactivation_interval: Duration = Field(
        default=timedelta(minutes=1),
        gt=timedelta(0),
        description="At most one webhook_deactivated control event per registration per interval, "
        "across replicas.",
    )
    spool_drain_interval: Duration = Field(
        default=timedelta(seconds=1),
        gt=timedelta(0),
        description="Pause of the drainer when the spool is empty or Kafka refused a batch.",
    )
    spool_drain_batch: int = Field(
        default=500, ge=1, le=10_000, description="Spooled rows moved to Kafka per round."
    )
    spool_check_interval: Duration = Field(
        default=timedelta(seconds=1),
        gt=timedelta(0),
        description="How often each replica counts the spool's rows (its depth metrics, and "
        "whether another replica spooled, in which case new callouts are spooled too).",
    )
    registrations_reload_interval: Duration = Field(
        default=timedelta(seconds=60),
        gt=timedelta(0),
        description="Full reload of the webhook registrations besides their change notifications.",
    )
    last_callout_flush_interval: Duration = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="How often the time of each registration's last accepted callout is written.",
    )
    kafka_retry_interval: Duration = Field(
        default=timedelta(seconds=2),
        gt=timedelta(0),
        description="Pause between attempts to connect the Kafka producer while Kafka is "
        "unreachable (the gateway serves through the spool meanwhile).",
    )

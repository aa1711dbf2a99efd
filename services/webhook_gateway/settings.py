"""Settings of the webhook gateway (read once at start; docs/configuration.md lists them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator

from shared.settings import DEFAULT_KAFKA_MAX_REQUEST_SIZE, BaseServiceSettings, Duration, Within

MIB = 1024 * 1024

RECORD_ALLOWANCE = 8 * 1024
"""Bytes of a Kafka message that are not the callout body, with room to spare: the record
batch and record overhead aiokafka counts (82), the body's length (3), the key (at most about
130: a 63-character connection, the entity type and its id), the gateway's headers (at most
about 300) and the dead-letter headers a callout may gain later (at most about 4,400: the error
message is cut at 1,000 characters, up to 4 bytes each, plus the original topic's name). A body
of ``kafka_max_request_size - RECORD_ALLOWANCE`` bytes therefore fits on the callouts topic and,
dead-lettered, on the dead-letter topic (tests/services/webhook_gateway/test_body_cap.py)."""


def body_cap_for(max_request_size: int) -> int:
    """The largest callout body a producer limited to ``max_request_size`` bytes can send."""
    return max_request_size - RECORD_ALLOWANCE


class GatewaySettings(BaseServiceSettings):
    """The gateway's settings: the shared ones plus what verifying and spooling need."""

    max_body_size: int = Field(
        default=None,  # derived from kafka_max_request_size (_body_cap_default)
        validate_default=True,
        ge=1024,
        le=64 * MIB,
        description="Largest callout body read, in bytes; a larger one is answered 413. "
        "Default: AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE minus 8 KiB for the key, headers and "
        "record overhead (1,040,384); never more, or Kafka could refuse a callout answered 200.",
    )

    @field_validator("max_body_size", mode="before")
    @classmethod
    def _body_cap_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            limit = info.data.get("kafka_max_request_size", DEFAULT_KAFKA_MAX_REQUEST_SIZE)
            return body_cap_for(limit)
        return value

    @field_validator("max_body_size")
    @classmethod
    def _body_fits_the_producer(cls, value: int, info: ValidationInfo) -> int:
        limit = info.data.get("kafka_max_request_size")
        if limit is not None and value > body_cap_for(limit):
            raise ValueError(
                f"{value} bytes is too large for AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE={limit}: "
                f"a callout that large could be answered 200 and then refused by Kafka. Lower "
                f"AUTOTASK_SYNC_MAX_BODY_SIZE to at most {body_cap_for(limit)} (the producer "
                f"limit minus {RECORD_ALLOWANCE} bytes for key, headers and record overhead) or "
                f"raise AUTOTASK_SYNC_KAFKA_MAX_REQUEST_SIZE (and the topics' max.message.bytes)"
            )
        return value

    max_concurrent_callouts: int = Field(
        default=1000,
        ge=1,
        description="Callouts handled at once; beyond it a new one is answered 503 at once "
        "(Autotask retries it), so an overload bounds memory and latency instead of queueing. "
        "A callout takes its place once its body has been read.",
    )
    header_deadline: Annotated[Duration, Within("100ms", "5m")] = Field(
        default=timedelta(seconds=10),
        description="A connection whose request headers are not complete this long after it "
        "connected (or after its previous answer) is closed; idle keep-alive connections too.",
    )
    body_deadline: Annotated[Duration, Within("100ms", "5m")] = Field(
        default=timedelta(seconds=5),
        description="Time a callout's body may take to arrive once its headers have; a slower "
        "one is answered 408 and its connection closed.",
    )
    max_unfinished_bodies: int = Field(
        default=4000,
        ge=1,
        description="Requests whose body is still arriving, across all clients; beyond it a new "
        "one is answered 503 before its body is read.",
    )
    max_unfinished_bodies_per_client: int = Field(
        default=64,
        ge=1,
        description="Requests whose body is still arriving, per client address; beyond it a new "
        "one from that address is answered 429 before its body is read.",
    )
    bad_signatures_per_client: int = Field(
        default=30,
        ge=1,
        description="Failed signatures per client address per minute; beyond it that address is "
        "answered 429 before its bodies are read, until the minute is over.",
    )
    bad_signatures_per_registration: int = Field(
        default=30,
        ge=1,
        description="Failed signatures per callout URL per minute after which the costly "
        "re-escaped comparison (autotask-api.md §8.5) is skipped for that URL until the minute is "
        "over (the raw-bytes comparison always runs, so Autotask's callouts still verify).",
    )
    client_ip_header: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9-]*$",
        description="Behind a reverse proxy: the header holding the client's address (e.g. "
        "X-Forwarded-For, whose last entry is used, or X-Real-IP). Empty: the TCP peer. Set it "
        "only when every request passes the proxy, or clients could choose their own address.",
    )
    produce_deadline: Annotated[Duration, Within("10ms", "1m")] = Field(
        default=timedelta(seconds=2),
        description="How long a callout waits for Kafka's acknowledgement before it is written "
        "to the spool instead (Autotask gives up on an answer after 10 s).",
    )
    spool_deadline: Annotated[Duration, Within("10ms", "5m")] = Field(
        default=timedelta(seconds=3),
        description="How long a spool write may take before the callout is answered 503.",
    )
    dedup_window: Annotated[Duration, Within("0s", "24h")] = Field(
        default=timedelta(minutes=15),
        description="The same callout event for the same registration (a re-send, however "
        "re-serialised, or a concurrent copy) within this window is acknowledged without being "
        "stored again (0 turns it off).",
    )
    dedup_size: int = Field(
        default=200_000,
        ge=0,
        description="Callout keys remembered for de-duplication (about 200 bytes each).",
    )
    deactivation_interval: Annotated[Duration, Within("10ms", "24h")] = Field(
        default=timedelta(minutes=15),
        description="At most one webhook_deactivated control event per registration per interval, "
        "across replicas.",
    )
    spool_drain_interval: Annotated[Duration, Within("10ms", "1m")] = Field(
        default=timedelta(seconds=1),
        description="Pause of the drainer when the spool is empty or Kafka refused a batch.",
    )
    spool_drain_batch: int = Field(
        default=500, ge=1, le=10_000, description="Spooled rows moved to Kafka per round."
    )
    spool_check_interval: Annotated[Duration, Within("10ms", "1m")] = Field(
        default=timedelta(seconds=1),
        description="How often each replica counts the spool's rows (its depth metrics, and "
        "whether another replica spooled, in which case new callouts are spooled too).",
    )
    registrations_reload_interval: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(seconds=60),
        description="Full reload of the webhook registrations besides their change notifications.",
    )
    last_callout_flush_interval: Annotated[Duration, Within("100ms", "1h")] = Field(
        default=timedelta(seconds=10),
        description="How often the time of each registration's last accepted callout is written.",
    )
    kafka_retry_interval: Annotated[Duration, Within("10ms", "5m")] = Field(
        default=timedelta(seconds=2),
        description="Pause between attempts to connect the Kafka producer while Kafka is "
        "unreachable (the gateway serves through the spool meanwhile).",
    )

"""``autotask.control.v1``: events that ask a component to look at something.

Keyed by connection, value JSON (schema in ``schemas/``). The gateway publishes
``webhook_deactivated`` when Autotask calls a DeactivationUrl (unsigned, so it only asks the
provisioner to check); the provisioner publishes ``sweep_requested`` after it created or
reactivated a webhook (events were lost while it was down); the reconciler publishes
``backfill_finished``. Each event has an ``event_id`` so consumers can deduplicate.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.errors import MessageError


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    connection: str
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class WebhookDeactivated(_Event):
    """Autotask said (unsigned) that a webhook was deactivated: the provisioner should check."""

    type: Literal["webhook_deactivated"] = "webhook_deactivated"
    registration_id: str
    entity: str


class ReprovisionRequested(_Event):
    """A person or component asks for the connection's webhooks to be planned and applied."""

    type: Literal["reprovision_requested"] = "reprovision_requested"
    reason: str = ""


class SweepRequested(_Event):
    """Sweep ``entity`` of ``connection`` for changes since ``since`` (a catch-up)."""

    type: Literal["sweep_requested"] = "sweep_requested"
    entity: str
    since: datetime | None = None
    """Start of the gap; None sweeps from the stored watermark."""
    reason: str = ""
    full: bool = False


class BackfillFinished(_Event):
    """A backfill of ``entity`` completed."""

    type: Literal["backfill_finished"] = "backfill_finished"
    entity: str
    rows: int = 0


ControlEvent = Annotated[
    WebhookDeactivated | ReprovisionRequested | SweepRequested | BackfillFinished,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ControlEvent] = TypeAdapter(ControlEvent)


def encode_control(event: ControlEvent) -> tuple[bytes, bytes]:
    """(key, value) of a control event."""
    return event.connection.encode(), event.model_dump_json().encode()


def decode_control(value: bytes) -> ControlEvent:
    """A control event from its value; MessageError for anything unreadable or unknown."""
    try:
        return _ADAPTER.validate_json(value)
    except ValidationError as exc:
        raise MessageError(
            f"unreadable control event ({exc.error_count()} problems, first: "
            f"{exc.errors()[0]['msg']})"
        ) from None


__all__ = [
    "BackfillFinished",
    "ControlEvent",
    "ReprovisionRequested",
    "SweepRequested",
    "WebhookDeactivated",
    "decode_control",
    "encode_control",
]

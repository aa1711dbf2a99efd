"""What ``provision status`` shows per connection: one row per entity with a webhook, pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.provisioner import naming
from services.provisioner.plan import keeper_of
from services.provisioner.provision import Observation
from shared.entities import webhook_entities


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One entity of one connection."""

    connection: str
    entity: str
    wanted: bool
    webhook_id: int | None = None
    active: bool | None = None
    ready: bool | None = None
    fields: int = 0
    udf_fields: int = 0
    exclusions: tuple[int, ...] = ()
    registration: str | None = None
    """The registration's state (pending, active, deactivated)."""
    last_callout_at: datetime | None = None
    last_deactivated_at: datetime | None = None
    duplicates: int = 0
    note: str = ""


def status_rows(observation: Observation) -> list[StatusRow]:
    """A row for every entity that is wanted, has a webhook of ours, or a registration."""
    name = observation.connection
    desired = observation.desired
    registrations = {r.entity: r for r in observation.actual.registrations}
    rows = []
    for spec in webhook_entities():
        entity = spec.rest_name
        ours = [
            w
            for w in observation.actual.webhooks
            if w.entity == entity and naming.is_ours(w.name, connection=name, entity=entity)
        ]
        registration = registrations.get(entity)
        wanted = entity in desired.webhooks
        if not (wanted or ours or registration or entity in desired.blocked):
            continue
        keeper = keeper_of(ours, registration)
        note = desired.blocked.get(entity, "")
        if not note and keeper is None and wanted:
            note = "missing: the next apply creates it"
        elif not note and not wanted:
            note = "not wanted: the next apply removes it"
        rows.append(
            StatusRow(
                connection=name,
                entity=entity,
                wanted=wanted,
                webhook_id=keeper.webhook_id if keeper else None,
                active=keeper.active if keeper else None,
                ready=keeper.ready if keeper else None,
                fields=len(keeper.fields) if keeper else 0,
                udf_fields=len(keeper.udf_fields) if keeper else 0,
                exclusions=tuple(c.target for c in keeper.excluded) if keeper else (),
                registration=registration.state.value if registration else None,
                last_callout_at=registration.last_callout_at if registration else None,
                last_deactivated_at=registration.last_deactivated_at if registration else None,
                duplicates=len(ours) - (1 if keeper else 0),
                note=note,
            )
        )
    return rows


__all__ = ["StatusRow", "status_rows"]

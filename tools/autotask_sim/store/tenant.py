"""The tenant's business data and the rules Autotask applies when it changes.

Creates, updates and deletes of business entities go through :class:`Tenant`, which validates
bodies, moves the last-modified fields (and a ticket's ``lastActivityDate`` when one of its notes
changes), numbers tickets, writes ``DeletedTicketLogs`` / ``DeletedTicketActivityLogs`` rows, and
publishes a :class:`ChangeEvent` that the callout machinery turns into webhooks. The HTTP layer,
the admin API and the change generator all call the same methods, so every path behaves alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.entities import by_callout_type, find_rest_name
from shared.integers import parse_int
from tools.autotask_sim.apierror import business_error
from tools.autotask_sim.callouts.events import Action, ChangeEvent, EventBus
from tools.autotask_sim.catalog import DATA_SCHEMAS, LOG_SCHEMAS
from tools.autotask_sim.catalog.data_entities import DELETED_ACTIVITY_NOTE_TYPE
from tools.autotask_sim.catalog.picklists import TICKET_STATUS_COMPLETE
from tools.autotask_sim.clock import CANONICAL_LENGTH, SimClock
from tools.autotask_sim.datagen import TenantData
from tools.autotask_sim.jsontypes import JsonValue, Record
from tools.autotask_sim.store.table import Table
from tools.autotask_sim.store.validation import BodyReader, BodyValues

NO_MATCH_DELETE = (
    "No matching records found. The logged in Resource may not have the required permissions "
    "to delete the data."
)
NO_MATCH_UPDATE = (
    "No matching records found. The logged in Resource may not have the required permissions "
    "to update the data."
)


def _stamp_fields(entity: str, table: Table) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fields set on create, fields moved on every change) for an entity."""
    spec = find_rest_name(entity)
    on_change: list[str] = []
    on_create: list[str] = []
    if spec is not None:
        if spec.create_field:
            on_create.append(spec.create_field)
        if spec.last_modified_field:
            on_change.append(spec.last_modified_field)
    if table.schema.field("lastActivityDate") and "lastActivityDate" not in on_change:
        on_change.append("lastActivityDate")
    return tuple(on_create + on_change), tuple(on_change)


def body_id(body: Mapping[str, Any]) -> int:
    """The ``id`` of an update body (any key case); raises ApiError (500) if absent or bad."""
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == "id":
            number = parse_int(value) if isinstance(value, int | str) else None
            if number is not None:
                return number
            break
    raise business_error("id is required to update an entity.")


class Tenant:
    """All business records of the simulated database."""

    def __init__(self, clock: SimClock, bus: EventBus, data: TenantData) -> None:
        self.clock = clock
        self.bus = bus
        self.tables: dict[str, Table] = {}
        for schema in (*DATA_SCHEMAS, *LOG_SCHEMAS):
            table = Table(schema)
            table.load(data.records.get(schema.name, ()))
            self.tables[schema.name] = table
        self._by_lower = {name.lower(): table for name, table in self.tables.items()}
        self._readers = {
            name: BodyReader(t.schema, clock, self.exists) for name, t in self.tables.items()
        }
        self._stamps = {name: _stamp_fields(name, t) for name, t in self.tables.items()}
        self._ticket_seq: dict[str, int] = {}
        self._created_at: dict[tuple[str, int], float] = {}

    # ----------------------------------------------------------------- reads

    def table(self, entity: str) -> Table | None:
        """The table of ``entity`` (REST name, any case), or None."""
        return self._by_lower.get(entity.lower())

    def require(self, entity: str) -> Table:
        table = self.table(entity)
        if table is None:
            raise KeyError(entity)
        return table

    def exists(self, reference_type: str, record_id: int) -> bool:
        """Whether a referenced record exists (``reference_type`` is singular, e.g. Company)."""
        try:
            rest_name = by_callout_type(reference_type).rest_name
        except KeyError:
            return True  # references to entities we do not simulate are accepted as-is
        return record_id in self.tables[rest_name]

    def created_within(self, entity: str, record_id: int, age: timedelta) -> bool:
        """True when the record was created less than ``age`` ago (read-after-write lag)."""
        created = self._created_at.get((entity, record_id))
        return created is not None and time.monotonic() - created < age.total_seconds()

    # ---------------------------------------------------------------- writes

    def create(
        self, entity: str, body: Mapping[str, Any], person_id: int, *, via_api: bool = False
    ) -> Record:
        """Create a record from a request body; returns the stored record.

        ``person_id`` made the change; ``via_api`` says it came through the REST API.
        """
        table = self.require(entity)
        name = table.schema.name
        values = self._readers[name].read(body, creating=True)
        now = self.clock.now()
        record: Record = {f.name: None for f in table.schema.fields}
        for spec in table.schema.fields:
            if spec.data_type == "boolean":
                record[spec.name] = spec.name == "isActive"
        record.update(values.fields)
        if table.schema.has_udfs:
            record["userDefinedFields"] = tuple(
                {"name": u.name, "value": values.udfs.get(u.name)} for u in table.schema.udfs
            )
        record_id = table.allocate_id()
        record["id"] = record_id
        for field in self._stamps[name][0]:
            record[field] = self.clock.stamp(name, field, now)
        self._on_create(name, record, now, person_id)
        table.put(record)
        self._remember_create(name, record_id)
        changed = frozenset(k for k, v in record.items() if v is not None and k != "id")
        udfs = frozenset(values.udfs)
        self._publish(name, "Create", record, changed, udfs, person_id, now, via_api)
        return record

    def update(
        self,
        entity: str,
        body: Mapping[str, Any],
        person_id: int,
        *,
        replace: bool = False,
        record_id: int | None = None,
        via_api: bool = False,
    ) -> Record:
        """PATCH (or PUT with ``replace``) a record; the id comes from the body unless given."""
        table = self.require(entity)
        name = table.schema.name
        target = record_id if record_id is not None else body_id(body)
        current = table.get(target)
        if current is None:
            raise business_error(NO_MATCH_UPDATE)
        values = self._readers[name].read(body, creating=False, replace=replace)
        changed, changed_udfs = self._diff(table, current, values)
        if not changed and not changed_udfs:
            return current
        now = self.clock.now()
        record = dict(current)
        record.update({k: values.fields[k] for k in changed})
        if changed_udfs:
            udfs = current.get("userDefinedFields") or ()
            assert isinstance(udfs, tuple | list)
            record["userDefinedFields"] = tuple(
                {"name": u["name"], "value": values.udfs[u["name"]]}
                if isinstance(u, Mapping) and u.get("name") in changed_udfs
                else u
                for u in udfs
            )
        for field in self._stamps[name][1]:
            record[field] = self.clock.stamp(name, field, now)
        self._on_update(name, current, record, now)
        table.put(record)
        self._publish(
            name, "Update", record, frozenset(changed), changed_udfs, person_id, now, via_api
        )
        return record

    def delete(
        self, entity: str, record_id: int, person_id: int, *, via_api: bool = False
    ) -> Record:
        """Delete a record; tickets leave a DeletedTicketLogs row and take their notes along."""
        table = self.require(entity)
        name = table.schema.name
        record = table.remove(record_id)
        if record is None:
            raise business_error(NO_MATCH_DELETE)
        now = self.clock.now()
        if name == "Tickets":
            self._log_ticket_delete(record, person_id, now)
        elif name == "TicketNotes":
            self._log_note_delete(record, person_id, now)
        self._publish(name, "Delete", record, frozenset(), frozenset(), person_id, now, via_api)
        return record

    # -------------------------------------------------------------- helpers

    def _diff(
        self, table: Table, current: Record, values: BodyValues
    ) -> tuple[set[str], frozenset[str]]:
        changed: set[str] = set()
        for key, value in values.fields.items():
            old = current.get(key)
            spec = table.schema.field(key)
            same_instant = (
                spec is not None
                and spec.data_type == "datetime"
                and old
                and value
                and str(old)[:CANONICAL_LENGTH] == str(value)[:CANONICAL_LENGTH]
            )
            if same_instant:
                continue  # only the trailing "Z" differs
            if old != value:
                changed.add(key)
        old_udfs = {
            u.get("name"): u.get("value")
            for u in (current.get("userDefinedFields") or ())
            if isinstance(u, Mapping)
        }
        changed_udfs = frozenset(k for k, v in values.udfs.items() if old_udfs.get(k) != v)
        return changed, changed_udfs

    def _on_create(self, name: str, record: Record, now: datetime, person_id: int) -> None:
        if name == "Tickets":
            record["ticketNumber"] = self._next_ticket_number(now)
            record["creatorResourceID"] = person_id
            if record.get("status") == TICKET_STATUS_COMPLETE:
                record["completedDate"] = self.clock.stamp(name, "completedDate", now)
        elif name == "TicketNotes":
            record["creatorResourceID"] = person_id
            self._touch_ticket(record.get("ticketID"), now)

    def _on_update(self, name: str, before: Record, after: Record, now: datetime) -> None:
        if name == "Tickets" and before.get("status") != after.get("status"):
            completed = after.get("status") == TICKET_STATUS_COMPLETE
            after["completedDate"] = (
                self.clock.stamp(name, "completedDate", now) if completed else None
            )
        elif name == "TicketNotes":
            self._touch_ticket(after.get("ticketID"), now)

    def _touch_ticket(self, ticket_id: JsonValue, now: datetime) -> None:
        """A note change is ticket activity: move the parent's ``lastActivityDate``."""
        tickets = self.tables["Tickets"]
        if not isinstance(ticket_id, int) or (ticket := tickets.get(ticket_id)) is None:
            return
        updated = dict(ticket)
        updated["lastActivityDate"] = self.clock.stamp("Tickets", "lastActivityDate", now)
        tickets.put(updated)

    def _next_ticket_number(self, now: datetime) -> str:
        prefix = f"T{now:%Y%m%d}."
        seq = self._ticket_seq.get(prefix)
        if seq is None:
            seq = 0
            for ticket in self.tables["Tickets"].rows():
                number = str(ticket.get("ticketNumber") or "")
                if not number.startswith(prefix):
                    continue
                counter = parse_int(number[len(prefix) :], minimum=0)
                if counter is not None:
                    seq = max(seq, counter)
        seq += 1
        self._ticket_seq[prefix] = seq
        return f"{prefix}{seq:04d}"

    def _log_ticket_delete(self, ticket: Record, person_id: int, now: datetime) -> None:
        log = self.tables["DeletedTicketLogs"]
        log.put(
            {
                "id": log.allocate_id(),
                "ticketID": ticket["id"],
                "ticketNumber": ticket.get("ticketNumber"),
                "ticketTitle": ticket.get("title"),
                "deletedByResourceID": person_id,
                "deletedDateTime": self.clock.stamp("DeletedTicketLogs", "deletedDateTime", now),
            }
        )
        notes = self.tables["TicketNotes"]
        doomed = [n["id"] for n in notes.rows() if n.get("ticketID") == ticket["id"]]
        for note_id in doomed:
            assert isinstance(note_id, int)
            notes.remove(note_id)

    def _log_note_delete(self, note: Record, person_id: int, now: datetime) -> None:
        log = self.tables["DeletedTicketActivityLogs"]
        ticket_id = note.get("ticketID")
        ticket = self.tables["Tickets"].get(ticket_id) if isinstance(ticket_id, int) else None
        stamp = self.clock.stamp("DeletedTicketActivityLogs", "deletedDateTime", now)
        log.put(
            {
                "id": log.allocate_id(),
                "ticketID": ticket_id,
                "ticketNumber": ticket.get("ticketNumber") if ticket else None,
                "typeID": DELETED_ACTIVITY_NOTE_TYPE,
                "noteOrAttachmentTitle": note.get("title"),
                "activityDateTime": note.get("createDateTime"),
                "startDateTime": None,
                "endDateTime": None,
                "hoursWorked": None,
                "createdByResourceID": note.get("creatorResourceID"),
                "deletedByResourceID": person_id,
                "deletedDateTime": stamp,
            }
        )
        self._touch_ticket(ticket_id, now)

    def _remember_create(self, name: str, record_id: int) -> None:
        if len(self._created_at) > 10_000:
            cutoff = time.monotonic() - 60
            self._created_at = {k: v for k, v in self._created_at.items() if v > cutoff}
        self._created_at[(name, record_id)] = time.monotonic()

    def _publish(
        self,
        entity: str,
        action: Action,
        record: Record,
        changed: frozenset[str],
        changed_udfs: frozenset[str],
        person_id: int,
        at: datetime,
        via_api: bool,
    ) -> None:
        record_id = record["id"]
        assert isinstance(record_id, int)
        self.bus.publish(
            ChangeEvent(
                entity, action, record_id, record, changed, changed_udfs, person_id, at, via_api
            )
        )


__all__ = ["NO_MATCH_DELETE", "NO_MATCH_UPDATE", "Tenant", "body_id"]

"""Change events: what happened to an entity, as the callout machinery needs to know it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tools.autotask_sim.jsontypes import Record

Action = Literal["Create", "Update", "Delete"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One create, update or delete of a business entity."""

    entity: str
    """REST name, e.g. ``Tickets``."""
    action: Action
    entity_id: int
    record: Record
    """The record after the change (before it, for a delete)."""
    changed: frozenset[str]
    """Standard fields whose value changed (all set fields, for a create)."""
    changed_udfs: frozenset[str]
    person_id: int
    """Resource that made the change (the API user, an impersonated or a UI user)."""
    at: datetime
    via_api: bool = False
    """Made through the REST API (as the API user or impersonating someone), not in the UI."""


Listener = Callable[[ChangeEvent], None]


class EventBus:
    """Synchronous fan-out; listeners must not block (the dispatcher only enqueues)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, event: ChangeEvent) -> None:
        for listener in self._listeners:
            listener(event)


__all__ = ["Action", "ChangeEvent", "EventBus", "Listener"]

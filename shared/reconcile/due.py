"""What is due, per connection and entity: the pure half of the scheduler.

Given when each mode last ran (``sweep_last_runs``) and where each entity's complete read
stands, :meth:`Schedule.due` names the runs to start now, at most one per connection and entity,
in this order of precedence:

1. a complete read (backfill, resync, full, scope) that did not finish: resume it;
2. the first load of an entity (no complete read ever finished): backfill it, once the parent
   it follows in the sync scope (a ticket note's ticket, a contact's company) is loaded, so the
   children are judged against their parents;
3. a scope change: the connection's scope draws another boundary for the entity than the one
   its mirror follows (:mod:`shared.reconcile.rescope`), once its parent's is done;
4. the incremental sweep, every ``interval(entity)``;
5. the id sweep (delete detection) of entities without a delete log, every ``id_interval``;

plus a metadata refresh per connection every ``metadata_interval``. The loop around it
(:mod:`shared.reconcile.scheduler`) does the I/O; any replica may compute the same answer,
because the run itself re-checks under the sweep's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.entities import EntitySpec, FollowsParent, find_rest_name
from shared.reconcile.runs import Trigger
from shared.scope.boundary import boundary
from shared.scope.rules import SyncScope

Mode = Literal["incremental", "catchup", "full", "ids", "backfill", "resync", "metadata", "scope"]
MODES: tuple[Mode, ...] = (
    "incremental",
    "catchup",
    "full",
    "ids",
    "backfill",
    "resync",
    "metadata",
    "scope",
)
COMPLETE_READS: tuple[Mode, ...] = ("backfill", "resync", "full", "scope")
"""Modes that read every row by id cursor (resumable)."""
METADATA_ENTITY = "*"
"""The entity of connection-wide runs (metadata) in ``sync_runs``."""


@dataclass(frozen=True, slots=True)
class Job:
    """One run to start."""

    connection: str
    entity: str
    """REST name, or ``*`` for the connection's metadata."""
    mode: Mode
    trigger: Trigger = "schedule"
    since: datetime | None = None
    """Catch-up: the start of the gap."""
    requested_at: datetime | None = None
    last_seen: datetime | None = None
    """The last run of this mode the scheduler saw: a run found newer under the lock means
    another replica did it meanwhile."""

    @property
    def key(self) -> tuple[str, str]:
        return self.connection, self.entity


@dataclass(frozen=True, slots=True)
class LoadState:
    """Where an entity's complete reads stand."""

    loaded: bool = False
    """A complete read finished once (the first load is done)."""
    walking: Mode | None = None
    """A complete read of this mode started and did not finish."""


@dataclass(frozen=True, slots=True)
class View:
    """What the scheduler knows now."""

    synced: Mapping[str, Sequence[EntitySpec]]
    """Entities each served connection syncs, in registry order."""
    loads: Mapping[tuple[str, str], LoadState] = field(default_factory=dict)
    last: Mapping[tuple[str, str, str], datetime] = field(default_factory=dict)
    """When each (connection, entity, mode) last started."""
    scopes: Mapping[str, SyncScope] = field(default_factory=dict)
    """Each served connection's scope now."""
    applied: Mapping[tuple[str, str], SyncScope] = field(default_factory=dict)
    """The scope each (connection, entity)'s mirror follows (:mod:`shared.scope.applied`)."""

    def scope_pending(self, connection: str, spec: EntitySpec) -> bool:
        """Whether the mirror of ``spec`` does not follow the connection's scope yet."""
        current = self.scopes.get(connection)
        applied = self.applied.get((connection, spec.rest_name))
        if current is None or applied is None:
            return False
        return not boundary(spec, current).same_rows(boundary(spec, applied))

    def settled(self, connection: str, spec: EntitySpec) -> bool:
        """Whether the parent ``spec`` follows in the scope (if any, synced, and deciding: the
        boundary is restricted) is loaded and follows the current scope: what a child's load
        and scope change wait for."""
        rule = spec.scope
        current = self.scopes.get(connection)
        if not isinstance(rule, FollowsParent) or current is None:
            return True
        if not boundary(spec, current).restricted:
            return True  # every child is in scope whatever its parent: nothing to wait for
        parent = find_rest_name(rule.parent)
        synced = self.synced.get(connection, ())
        if parent is None or all(s.rest_name != parent.rest_name for s in synced):
            return True
        load = self.loads.get((connection, parent.rest_name), LoadState())
        return load.loaded and load.walking is None and not self.scope_pending(connection, parent)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Intervals and switches."""

    interval: Callable[[EntitySpec], timedelta]
    id_interval: timedelta = timedelta(hours=6)
    metadata_interval: timedelta = timedelta(hours=6)
    backfill_on_first_load: bool = True

    def due(self, now: datetime, view: View) -> list[Job]:
        """The runs to start now (see the module docstring)."""
        jobs: list[Job] = []
        recorded: dict[str, list[str]] = {}
        for connection, name in view.applied:
            recorded.setdefault(connection, []).append(name)
        for connection, entities in sorted(view.synced.items()):
            for spec in entities:
                job = self._entity_job(now, view, connection, spec)
                if job is not None:
                    jobs.append(job)
            synced = {spec.rest_name for spec in entities}
            for name in sorted(recorded.get(connection, ())):
                # An entity the scope no longer syncs: its rows leave the mirror's live set.
                unsynced = find_rest_name(name) if name not in synced else None
                if unsynced is not None and view.scope_pending(connection, unsynced):
                    last_scope = view.last.get((connection, name, "scope"))
                    jobs.append(Job(connection, name, "scope", last_seen=last_scope))
            last = view.last.get((connection, METADATA_ENTITY, "metadata"))
            if entities and _elapsed(now, last, self.metadata_interval):
                jobs.append(Job(connection, METADATA_ENTITY, "metadata", last_seen=last))
        return jobs

    def _entity_job(
        self, now: datetime, view: View, connection: str, spec: EntitySpec
    ) -> Job | None:
        name = spec.rest_name
        load = view.loads.get((connection, name), LoadState())

        def last(mode: Mode) -> datetime | None:
            return view.last.get((connection, name, mode))

        if load.walking is not None:
            return Job(connection, name, load.walking, "resume", last_seen=last(load.walking))
        if not load.loaded and self.backfill_on_first_load:
            if not view.settled(connection, spec):
                return None
            return Job(connection, name, "backfill", last_seen=last("backfill"))
        if view.scope_pending(connection, spec) and view.settled(connection, spec):
            return Job(connection, name, "scope", last_seen=last("scope"))
        incremental = last("incremental")
        if _elapsed(now, incremental, self.interval(spec)):
            return Job(connection, name, "incremental", last_seen=incremental)
        if spec.delete_log is None and spec.child_of is None:
            # The newest complete read also proved which ids exist.
            previous = _latest(last("ids"), *(last(m) for m in COMPLETE_READS))
            if _elapsed(now, previous, self.id_interval):
                return Job(connection, name, "ids", last_seen=last("ids"))
        return None


def _elapsed(now: datetime, last: datetime | None, interval: timedelta) -> bool:
    return last is None or now - last >= interval


def _latest(*stamps: datetime | None) -> datetime | None:
    known = [s for s in stamps if s is not None]
    return max(known) if known else None


__all__ = [
    "COMPLETE_READS",
    "METADATA_ENTITY",
    "MODES",
    "Job",
    "LoadState",
    "Mode",
    "Schedule",
    "View",
]

"""What is due, per connection and entity: the pure half of the scheduler.

Given when each mode last ran (``sweep_last_runs``) and where each entity's complete read
stands, :meth:`Schedule.due` names the runs to start now, at most one per connection and entity,
in this order of precedence:

1. a complete read (backfill, resync, full) that did not finish: resume it;
2. the first load of an entity (no complete read ever finished): backfill it;
3. the incremental sweep, every ``interval(entity)``;
4. the id sweep (delete detection) of entities without a delete log, every ``id_interval``;

plus a metadata refresh per connection every ``metadata_interval``. The loop around it
(:mod:`shared.reconcile.scheduler`) does the I/O; any replica may compute the same answer,
because the run itself re-checks under the sweep's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.entities import EntitySpec
from shared.reconcile.runs import Trigger

Mode = Literal["incremental", "catchup", "full", "ids", "backfill", "resync", "metadata"]
MODES: tuple[Mode, ...] = (
    "incremental",
    "catchup",
    "full",
    "ids",
    "backfill",
    "resync",
    "metadata",
)
COMPLETE_READS: tuple[Mode, ...] = ("backfill", "resync", "full")
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
        for connection, entities in sorted(view.synced.items()):
            for spec in entities:
                job = self._entity_job(now, view, connection, spec)
                if job is not None:
                    jobs.append(job)
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
            return Job(connection, name, "backfill", last_seen=last("backfill"))
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

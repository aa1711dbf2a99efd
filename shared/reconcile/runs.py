"""``sync_runs``: one row per reconciliation run, and ``sweep_last_runs``, what the schedule reads.

A run is written when it starts (status ``running``), its counts are updated as its pages become
durable (so a run that died shows how far it got), and it is closed with ``succeeded``,
``failed`` (an error), ``aborted`` (a guard refused, e.g. the mass-delete guard) or ``skipped``
(a duplicate request, recorded so people see why nothing happened). A ``running`` row whose
process died is closed as ``failed`` by the next holder of the sweep's lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.db.pool import DbSession, guarded

Status = Literal["running", "succeeded", "failed", "aborted", "skipped"]
Trigger = Literal["schedule", "cli", "control", "resume"]
REQUESTS: tuple[Trigger, ...] = ("cli", "control")
"""Triggers that are a person's or a component's request (deduplicated)."""


@dataclass(slots=True)
class Counts:
    """What a run did so far."""

    pages: int = 0
    api_calls: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    repaired: int = 0
    out_of_scope: int = 0
    """Rows outside the connection's sync scope: read and kept out, or leaving it now."""

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True, slots=True)
class Run:
    """One row of ``sync_runs``."""

    id: int
    connection: str
    entity: str
    mode: str
    status: Status
    trigger: Trigger
    started_at: datetime
    requested_at: datetime
    finished_at: datetime | None = None
    since: datetime | None = None
    counts: Counts = field(default_factory=Counts)
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


_COLUMNS = (
    "id, connection, entity, mode, status, trigger, started_at, requested_at, finished_at, "
    "since, pages, api_calls, fetched, created, updated, unchanged, deleted, repaired, "
    "out_of_scope, error, detail"
)
_COUNTS = tuple(Counts.__dataclass_fields__)


def _run(record: Any) -> Run:
    values = dict(record)
    counts = Counts(**{name: values.pop(name) for name in _COUNTS})
    detail = values.pop("detail")
    return Run(counts=counts, detail=detail if isinstance(detail, dict) else {}, **values)


async def start(
    db: DbSession,
    *,
    connection: str,
    entity: str,
    mode: str,
    trigger: Trigger,
    requested_at: datetime,
    since: datetime | None = None,
    status: Status = "running",
    detail: dict[str, Any] | None = None,
) -> Run:
    """Insert a run (``running``, or ``skipped`` for a duplicate) and note it as the last run
    of its mode."""
    async with db.transaction():
        record = await guarded(
            db.fetchrow(
                "INSERT INTO sync_runs (connection, entity, mode, status, trigger, requested_at, "  # noqa: S608 - constant columns
                "since, detail, finished_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                "        CASE WHEN $4 = 'running' THEN NULL ELSE now() END) "
                f"RETURNING {_COLUMNS}",
                connection,
                entity,
                mode,
                status,
                trigger,
                requested_at,
                since,
                detail or {},
            ),
            f"record a {mode} run of {entity}",
        )
        assert record is not None
        run = _run(record)
        if status == "running":
            await _note_last(db, run)
    return run


async def progress(db: DbSession, run_id: int, counts: Counts) -> None:
    """Store the counts so far."""
    await guarded(
        db.execute(
            "UPDATE sync_runs SET pages = $2, api_calls = $3, fetched = $4, created = $5, "
            "updated = $6, unchanged = $7, deleted = $8, repaired = $9, out_of_scope = $10 "
            "WHERE id = $1",
            run_id,
            *(getattr(counts, name) for name in _COUNTS),
        ),
        f"record the progress of run {run_id}",
    )


async def finish(
    db: DbSession,
    run: Run,
    *,
    status: Status,
    counts: Counts,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Run:
    """Close ``run`` with its final counts."""
    async with db.transaction():
        record = await guarded(
            db.fetchrow(
                "UPDATE sync_runs SET status = $2, finished_at = now(), error = $3, "  # noqa: S608 - constant columns
                "detail = detail || $4::jsonb, pages = $5, api_calls = $6, fetched = $7, "
                "created = $8, updated = $9, unchanged = $10, deleted = $11, repaired = $12, "
                f"out_of_scope = $13 WHERE id = $1 RETURNING {_COLUMNS}",
                run.id,
                status,
                error,
                detail or {},
                *(getattr(counts, name) for name in _COUNTS),
            ),
            f"close run {run.id}",
        )
        assert record is not None
        closed = _run(record)
        await _note_last(db, closed)
    return closed


async def _note_last(db: DbSession, run: Run) -> None:
    await guarded(
        db.execute(
            "INSERT INTO sweep_last_runs (connection, entity, mode, run_id, started_at, "
            "finished_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (connection, entity, mode) DO UPDATE SET run_id = excluded.run_id, "
            "started_at = excluded.started_at, finished_at = excluded.finished_at, "
            "status = excluded.status "
            "WHERE sweep_last_runs.run_id <= excluded.run_id",
            run.connection,
            run.entity,
            run.mode,
            run.id,
            run.started_at,
            run.finished_at,
            run.status,
        ),
        "record the last run",
    )


async def abandon_running(db: DbSession, connection: str, entity: str) -> int:
    """Close the ``running`` runs of ``connection`` and ``entity`` as failed: called by the
    holder of the sweep lock, so none of them can still be running."""
    rows = await guarded(
        db.fetch(
            "UPDATE sync_runs SET status = 'failed', finished_at = now(), "  # noqa: S608 - constant columns
            "error = 'the process running it stopped before it finished (it resumes where it "
            "can)' WHERE connection = $1 AND entity = $2 AND status = 'running' "
            f"RETURNING {_COLUMNS}",
            connection,
            entity,
        ),
        f"close abandoned runs of {entity}",
    )
    for record in rows:
        await _note_last(db, _run(record))
    return len(rows)


async def recent_request(
    db: DbSession,
    *,
    connection: str,
    entity: str,
    mode: str,
    since: datetime,
    window: timedelta,
) -> Run | None:
    """A request of the same connection, entity and mode made within ``window`` of ``since``
    (before it, or at the same moment from another replica) that ran or is running; a failed or
    aborted one does not count: asking again retries it."""
    record = await guarded(
        db.fetchrow(
            f"SELECT {_COLUMNS} FROM sync_runs WHERE connection = $1 AND entity = $2 "  # noqa: S608 - constant columns
            "AND mode = $3 AND trigger IN ('cli', 'control') "
            "AND status IN ('running', 'succeeded') "
            "AND requested_at > $4::timestamptz - $5::interval "
            "AND requested_at < $4::timestamptz + $5::interval "
            "ORDER BY requested_at DESC LIMIT 1",
            connection,
            entity,
            mode,
            since,
            window,
        ),
        f"look for a recent {mode} request of {entity}",
    )
    return _run(record) if record is not None else None


async def last_runs(db: DbSession) -> dict[tuple[str, str, str], tuple[datetime, str]]:
    """``(connection, entity, mode) -> (started_at, status)`` of the last run of each."""
    records = await guarded(
        db.fetch("SELECT connection, entity, mode, started_at, status FROM sweep_last_runs"),
        "read the last runs",
    )
    return {
        (r["connection"], r["entity"], r["mode"]): (r["started_at"], r["status"]) for r in records
    }


async def recent(db: DbSession, *, connection: str | None = None, limit: int = 20) -> list[Run]:
    """The latest runs, newest first."""
    records = await guarded(
        db.fetch(
            f"SELECT {_COLUMNS} FROM sync_runs WHERE $1::text IS NULL OR connection = $1 "  # noqa: S608 - constant columns
            "ORDER BY id DESC LIMIT $2",
            connection,
            limit,
        ),
        "read the recent runs",
    )
    return [_run(record) for record in records]


async def latest_per_entity(db: DbSession, connection: str) -> list[Run]:
    """The connection's newest run of each entity, by entity."""
    rows = await guarded(
        db.fetch(
            f"SELECT DISTINCT ON (entity) {_COLUMNS} FROM sync_runs "  # noqa: S608 - constant columns
            "WHERE connection = $1 ORDER BY entity, started_at DESC",
            connection,
        ),
        f"read the latest sweeps of {connection!r}",
    )
    return [_run(row) for row in rows]


async def repaired_since(db: DbSession, connection: str, since: datetime) -> int:
    """Rows the connection's runs started after ``since`` repaired."""
    repaired = await guarded(
        db.fetchval(
            "SELECT coalesce(sum(repaired), 0) FROM sync_runs "
            "WHERE connection = $1 AND started_at > $2",
            connection,
            since,
        ),
        f"count what the sweeps of {connection!r} repaired",
    )
    return int(repaired)


async def get(db: DbSession, run_id: int) -> Run | None:
    record = await guarded(
        db.fetchrow(f"SELECT {_COLUMNS} FROM sync_runs WHERE id = $1", run_id),  # noqa: S608 - constant columns
        f"read run {run_id}",
    )
    return _run(record) if record is not None else None


__all__ = [
    "REQUESTS",
    "Counts",
    "Run",
    "Status",
    "Trigger",
    "abandon_running",
    "finish",
    "get",
    "last_runs",
    "latest_per_entity",
    "progress",
    "recent",
    "recent_request",
    "repaired_since",
    "start",
]

"""Rows of the shared Autotask API budget (migration 0008): slots, calls, readings, health.

The statements every process's coordinator (``shared.apibudget``) and the CLI run, one function
each; a failed statement is a DatabaseError (``guarded``). Times the database decides
(``now()``) so that processes whose clocks disagree still agree on leases; durations cross as
``timedelta`` and come back as seconds from now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.db import DbSession, Record, guarded

SLOTS_CHANNEL = "autotask_sync_api_slots"
"""NOTIFY channel of slot releases; the payload is ``connection/endpoint``."""
HEALTH_CHANNEL = "autotask_sync_connection_health"
"""NOTIFY channel of ``connection_health`` changes (trigger of migration 0008)."""


# --- slots --------------------------------------------------------------------------------------
async def ensure_slots(db: DbSession, *, connection: str, endpoint: str, capacity: int) -> None:
    """Create the slot rows 1..capacity of an endpoint (idempotent)."""
    await guarded(
        db.execute(
            "INSERT INTO api_slots (connection, endpoint, slot) "
            "SELECT $1, $2, generate_series(1, $3::int) ON CONFLICT DO NOTHING",
            connection,
            endpoint,
            capacity,
        ),
        f"create the API slots of {connection}/{endpoint}",
    )


async def take_slot(
    db: DbSession,
    *,
    connection: str,
    endpoint: str,
    capacity: int,
    holder: str,
    ttl: timedelta,
) -> tuple[int, int] | None:
    """Lease a free slot among 1..capacity: ``(slot, token)``, or None when all are held."""
    row = await guarded(
        db.fetchrow(
            "UPDATE api_slots s SET holder = $4, token = s.token + 1, taken_at = now(), "
            "expires_at = now() + $5::interval "
            "WHERE (s.connection, s.endpoint, s.slot) = ("
            "  SELECT f.connection, f.endpoint, f.slot FROM api_slots f"
            "  WHERE f.connection = $1 AND f.endpoint = $2 AND f.slot <= $3"
            "  AND f.expires_at < now() ORDER BY f.slot LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING s.slot, s.token",
            connection,
            endpoint,
            capacity,
            holder,
            ttl,
        ),
        f"take an API slot of {connection}/{endpoint}",
    )
    return None if row is None else (int(row["slot"]), int(row["token"]))


async def release_slot(
    db: DbSession, *, connection: str, endpoint: str, slot: int, token: int, holder: str
) -> bool:
    """Free a leased slot (only the lease given by ``token``) and wake the waiters."""
    row = await guarded(
        db.fetchrow(
            "WITH released AS ("
            "  UPDATE api_slots SET holder = NULL, expires_at = '-infinity' "
            "  WHERE connection = $1 AND endpoint = $2 AND slot = $3 AND token = $4 "
            "  AND holder = $5 RETURNING 1) "
            "SELECT pg_notify($6, $1 || '/' || $2) AS notified FROM released",
            connection,
            endpoint,
            slot,
            token,
            holder,
            SLOTS_CHANNEL,
        ),
        f"release an API slot of {connection}/{endpoint}",
    )
    return row is not None


async def renew_slots(
    db: DbSession, *, holder: str, leases: Iterable[tuple[str, str, int, int]], ttl: timedelta
) -> int:
    """Extend ``holder``'s live leases ``(connection, endpoint, slot, token)`` by ``ttl`` from
    now; how many were still its own."""
    held = list(leases)
    status = await guarded(
        db.execute(
            "UPDATE api_slots s SET expires_at = now() + $2::interval "
            "FROM unnest($3::text[], $4::text[], $5::int[], $6::bigint[]) AS l(c, e, n, t) "
            "WHERE s.connection = l.c AND s.endpoint = l.e AND s.slot = l.n AND s.token = l.t "
            "AND s.holder = $1 AND s.expires_at > now()",
            holder,
            ttl,
            [lease[0] for lease in held],
            [lease[1] for lease in held],
            [lease[2] for lease in held],
            [lease[3] for lease in held],
        ),
        "renew the API slot leases",
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def release_holder(db: DbSession, *, holder: str) -> int:
    """Free every slot ``holder`` leases (at shutdown); how many."""
    status = await guarded(
        db.execute(
            "UPDATE api_slots SET holder = NULL, expires_at = '-infinity' WHERE holder = $1",
            holder,
        ),
        "release the API slots",
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def slots_in_use(db: DbSession, *, connection: str, endpoint: str | None = None) -> int:
    """Leases not yet expired (every process), for one endpoint or all."""
    count = await guarded(
        db.fetchval(
            "SELECT count(*) FROM api_slots WHERE connection = $1 "
            "AND ($2::text IS NULL OR endpoint = $2) AND expires_at > now()",
            connection,
            endpoint,
        ),
        f"count the API slots of {connection}",
    )
    return int(count or 0)


# --- hourly budget -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UsageRow:
    """A connection's budget as the database has it."""

    connection: str
    project_calls: int
    """This deployment's calls in the rolling hour (reservations included)."""
    calls_since_reading: int
    threshold: int | None = None
    tenant_calls: int | None = None
    timeframe_minutes: int | None = None
    reading_age: float | None = None
    """Seconds since the reading was taken (None: never read)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :func:`reserve_calls` granted, with the budget as it stood."""

    granted: int
    bucket: datetime
    usage: UsageRow


async def reserve_calls(
    db: DbSession, *, connection: str, want: int, allowance: int | None
) -> Reservation:
    """Count up to ``want`` calls now if the rolling hour stays within ``allowance``."""
    row = await guarded(
        db.fetchrow(
            "SELECT * FROM autotask_sync_reserve_calls($1, $2, $3)", connection, want, allowance
        ),
        f"reserve API calls of {connection}",
    )
    assert row is not None
    usage = _usage(row, connection)
    return Reservation(granted=int(row["granted"]), bucket=row["bucket"], usage=usage)


async def return_calls(db: DbSession, *, connection: str, bucket: datetime, calls: int) -> None:
    """Give back reserved calls that were never made (counted in ``bucket``)."""
    await guarded(
        db.execute(
            "WITH bucket AS (UPDATE api_calls SET calls = GREATEST(0, calls - $3) "
            "  WHERE connection = $1 AND minute = $2 RETURNING 1) "
            "UPDATE api_budget SET calls_total = GREATEST(0, calls_total - $3) "
            "WHERE connection = $1",
            connection,
            bucket,
            calls,
        ),
        f"return unused API calls of {connection}",
    )


async def add_calls(db: DbSession, *, connection: str, calls: int) -> bool:
    """Count calls made without a reservation (while the database was unreachable, or by a
    connection test); whether they were counted.

    Only for a connection that is stored or has a budget already (the environment one, once a
    process served it): the test of a connection that is then not stored (``connections add``
    failed, ``test-connection --connection`` with another name) leaves no rows behind. A
    connection's budget starts when it is stored or serves its first call."""
    status = await guarded(
        db.execute(
            "WITH known AS (SELECT WHERE EXISTS (SELECT FROM connections WHERE name = $1) "
            "  OR EXISTS (SELECT FROM api_budget WHERE connection = $1)), "
            "bucket AS (INSERT INTO api_calls AS c (connection, minute, calls) "
            "  SELECT $1, date_trunc('minute', now()), $2 FROM known "
            "  ON CONFLICT (connection, minute) DO UPDATE SET calls = c.calls + excluded.calls "
            "  RETURNING 1) "
            "INSERT INTO api_budget AS b (connection, calls_total) SELECT $1, $2 FROM known "
            "ON CONFLICT (connection) DO UPDATE SET "
            "calls_total = b.calls_total + excluded.calls_total",
            connection,
            calls,
        ),
        f"count API calls of {connection}",
    )
    return str(status).endswith(" 1")


async def read_usage(db: DbSession, connections: Iterable[str]) -> dict[str, UsageRow]:
    """The budget of each connection that has a row."""
    rows = await guarded(
        db.fetch(
            "SELECT b.connection, b.threshold, b.tenant_calls, b.timeframe_minutes, "
            "extract(epoch FROM now() - b.read_at)::double precision AS reading_age, "
            "GREATEST(0, b.calls_total - b.calls_at_reading) AS calls_since_reading, "
            "(SELECT COALESCE(sum(c.calls), 0) FROM api_calls c WHERE c.connection = b.connection "
            " AND c.minute >= date_trunc('minute', now()) - interval '60 minutes') "
            "AS project_calls "
            "FROM api_budget b WHERE b.connection = ANY($1::text[])",
            list(connections),
        ),
        "read the API budgets",
    )
    return {row["connection"]: _usage(row, row["connection"]) for row in rows}


def _usage(row: Record, connection: str) -> UsageRow:
    """A connection's usage from a row with the reservation's and the reading's columns."""
    return UsageRow(
        connection=connection,
        project_calls=int(row["project_calls"]),
        calls_since_reading=int(row["calls_since_reading"]),
        threshold=row["threshold"],
        tenant_calls=row["tenant_calls"],
        timeframe_minutes=row["timeframe_minutes"],
        reading_age=row["reading_age"],
    )


async def claim_refresh(
    db: DbSession,
    *,
    connection: str,
    holder: str,
    lease: timedelta,
    min_interval: timedelta,
) -> int | None:
    """Become the one process reading ThresholdInformation now: the call total at the claim,
    or None when another holds the lease or a reading is younger than ``min_interval``."""
    total = await guarded(
        db.fetchval(
            "INSERT INTO api_budget AS b (connection, refresh_holder, refresh_until) "
            "VALUES ($1, $2, now() + $3::interval) "
            "ON CONFLICT (connection) DO UPDATE SET refresh_holder = excluded.refresh_holder, "
            "refresh_until = excluded.refresh_until "
            "WHERE (b.refresh_until IS NULL OR b.refresh_until < now()) "
            "AND (b.read_at IS NULL OR b.read_at <= now() - $4::interval) "
            "RETURNING b.calls_total",
            connection,
            holder,
            lease,
            min_interval,
        ),
        f"claim the usage reading of {connection}",
    )
    return None if total is None else int(total)


async def publish_reading(
    db: DbSession,
    *,
    connection: str,
    threshold: int,
    tenant_calls: int,
    timeframe_minutes: int,
    calls_at_reading: int | None,
) -> None:
    """Store a ThresholdInformation reading for every process (and end the refresh lease)."""
    await guarded(
        db.execute(
            "INSERT INTO api_budget AS b (connection, threshold, tenant_calls, timeframe_minutes, "
            "read_at, calls_at_reading) VALUES ($1, $2, $3, $4, now(), COALESCE($5, 0)) "
            "ON CONFLICT (connection) DO UPDATE SET threshold = excluded.threshold, "
            "tenant_calls = excluded.tenant_calls, timeframe_minutes = excluded.timeframe_minutes, "
            "read_at = now(), calls_at_reading = COALESCE($5, b.calls_total), "
            "refresh_holder = NULL, refresh_until = NULL, updated_at = now()",
            connection,
            threshold,
            tenant_calls,
            timeframe_minutes,
            calls_at_reading,
        ),
        f"store the usage reading of {connection}",
    )


async def prune_calls(db: DbSession, *, older_than: timedelta = timedelta(hours=2)) -> int:
    """Drop minute buckets nobody counts any more."""
    status = await guarded(
        db.execute("DELETE FROM api_calls WHERE minute < now() - $1::interval", older_than),
        "prune the API call buckets",
    )
    return int(str(status).rsplit(" ", 1)[-1])


# --- credential health --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HealthRow:
    """A connection paused (or recently paused) after rejected credentials."""

    connection: str
    failures: int
    reason: str
    remaining: float
    """Seconds of cool-down left (0 or less: over)."""
    probing: bool = False
    """A process holds the lease to try the credentials again."""
    probe_holder: str | None = None
    failed_at: datetime | None = None


_HEALTH_COLUMNS = (
    "connection, failures, COALESCE(failure_reason, '') AS failure_reason, failed_at, "
    "COALESCE(extract(epoch FROM locked_until - now()), 0)::double precision AS remaining, "
    "COALESCE(probe_until > now(), false) AS probing, probe_holder"
)


def _health(row: Record) -> HealthRow:
    return HealthRow(
        connection=row["connection"],
        failures=int(row["failures"]),
        reason=row["failure_reason"],
        remaining=float(row["remaining"]),
        probing=bool(row["probing"]),
        probe_holder=row["probe_holder"],
        failed_at=row["failed_at"],
    )


async def read_health(db: DbSession, connections: Iterable[str]) -> dict[str, HealthRow]:
    """The health rows of these connections (no row: never failed, or cleared)."""
    rows = await guarded(
        db.fetch(
            f"SELECT {_HEALTH_COLUMNS} FROM connection_health "  # noqa: S608 - fixed text
            "WHERE connection = ANY($1::text[])",
            list(connections),
        ),
        "read the connections' credential health",
    )
    return {row["connection"]: _health(row) for row in rows}


async def record_auth_failure(
    db: DbSession, *, connection: str, reason: str, first: timedelta, longest: timedelta
) -> HealthRow:
    """Pause the connection after a 401: ``first`` doubling per failure in a row up to
    ``longest``. A failure while already paused (a call that was in flight) changes nothing
    but the reason."""
    row = await guarded(
        db.fetchrow(
            "INSERT INTO connection_health AS h (connection, failures, locked_until, "  # noqa: S608 - fixed text
            "failure_reason, failed_at) VALUES ($1, 1, now() + $3::interval, $2, now()) "
            "ON CONFLICT (connection) DO UPDATE SET "
            "failures = CASE WHEN h.locked_until > now() THEN h.failures ELSE h.failures + 1 END, "
            "locked_until = CASE WHEN h.locked_until > now() THEN h.locked_until "
            "  ELSE now() + LEAST($4::interval, $3::interval * power(2, LEAST(h.failures, 20))) "
            "  END, "
            "failure_reason = excluded.failure_reason, failed_at = now(), probe_holder = NULL, "
            f"probe_until = NULL, updated_at = now() RETURNING {_HEALTH_COLUMNS}",
            connection,
            reason,
            first,
            longest,
        ),
        f"pause connection {connection!r} after rejected credentials",
    )
    assert row is not None
    return _health(row)


async def claim_probe(db: DbSession, *, connection: str, holder: str, lease: timedelta) -> bool:
    """After the cool-down, become the one process that tries the credentials again."""
    got = await guarded(
        db.fetchval(
            "UPDATE connection_health SET probe_holder = $2, probe_until = now() + $3::interval, "
            "updated_at = now() WHERE connection = $1 AND locked_until <= now() "
            "AND (probe_until IS NULL OR probe_until < now() OR probe_holder = $2) RETURNING true",
            connection,
            holder,
            lease,
        ),
        f"claim the credential check of {connection!r}",
    )
    return bool(got)


async def record_auth_success(db: DbSession, *, connection: str) -> bool:
    """Autotask accepted the credentials: forget past failures (unless a newer pause began)."""
    status = await guarded(
        db.execute(
            "DELETE FROM connection_health WHERE connection = $1 "
            "AND (locked_until IS NULL OR locked_until <= now())",
            connection,
        ),
        f"record that connection {connection!r} authenticates",
    )
    return str(status).endswith(" 1")


async def clear_health(db: DbSession, *, connection: str) -> HealthRow | None:
    """Lift any pause of the connection now; the row it had, if any."""
    row = await guarded(
        db.fetchrow(
            f"DELETE FROM connection_health WHERE connection = $1 RETURNING {_HEALTH_COLUMNS}",  # noqa: S608 - fixed text
            connection,
        ),
        f"clear the pause of connection {connection!r}",
    )
    return None if row is None else _health(row)


__all__ = [
    "HEALTH_CHANNEL",
    "SLOTS_CHANNEL",
    "HealthRow",
    "Reservation",
    "UsageRow",
    "add_calls",
    "claim_probe",
    "claim_refresh",
    "clear_health",
    "ensure_slots",
    "prune_calls",
    "publish_reading",
    "read_health",
    "read_usage",
    "record_auth_failure",
    "record_auth_success",
    "release_holder",
    "release_slot",
    "renew_slots",
    "reserve_calls",
    "return_calls",
    "slots_in_use",
    "take_slot",
]

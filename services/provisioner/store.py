"""The provisioner's own state (migration 0006) and its view of the webhook registrations.

- :class:`RegistrationSummary`: what planning needs of a live registration, without decrypting a
  secret (``provision plan`` and ``status`` need no secret key).
- holds and pass records (``webhook_provisioning``): a teardown holds a connection so no pass
  re-creates its webhooks until someone applies it again; every pass records its outcome.
- owed sweeps (``provisioner_owed_sweeps``): the outbox of catch-up sweep requests.
- unconfirmed secrets: a rotation marks the registration before Autotask has the new secret.
- :func:`apply_lock`: one apply per connection at a time, across processes (advisory lock).

A failed statement is a :class:`~shared.errors.DatabaseError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.db import DbSession, Pool, guarded, session
from shared.registrations import RegistrationState

PassOutcome = Literal["in_sync", "applied", "failed"]
_LOCK_CLASS = 0x41545350  # "ATSP": the provisioner's advisory-lock namespace
_LOCK_POLL = timedelta(milliseconds=200)


@dataclass(frozen=True, slots=True)
class RegistrationSummary:
    """A live registration as the planner sees it (no secrets)."""

    registration_id: str
    connection: str
    entity: str
    state: RegistrationState
    webhook_id: int | None = None
    webhook_guid: str | None = None
    desired_hash: str | None = None
    secret_unconfirmed: bool = False
    has_previous_secret: bool = False
    previous_valid_until: datetime | None = None
    created_at: datetime | None = None
    last_verified_at: datetime | None = None
    last_callout_at: datetime | None = None
    last_deactivated_at: datetime | None = None
    secret_rotated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProvisioningRecord:
    """``webhook_provisioning`` for one connection."""

    connection: str
    held_at: datetime | None = None
    held_reason: str | None = None
    last_pass_at: datetime | None = None
    last_trigger: str | None = None
    last_outcome: str | None = None
    last_steps: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class OwedSweep:
    connection: str
    entity: str
    since: datetime | None
    reason: str


# --- registrations --------------------------------------------------------------------------
async def live_registrations(db: DbSession, *, of_connection: str) -> list[RegistrationSummary]:
    """The connection's registrations that are not retired, oldest first."""
    rows = await guarded(
        db.fetch(
            "SELECT registration_id, connection, entity, state, autotask_webhook_id, "
            "webhook_guid, desired_hash, secret_unconfirmed_since IS NOT NULL AS unconfirmed, "
            "secret_previous IS NOT NULL AS has_previous, previous_valid_until, created_at, "
            "last_verified_at, last_callout_at, last_deactivated_at, secret_rotated_at "
            "FROM webhook_registrations WHERE connection = $1 AND state <> 'retired' "
            "ORDER BY created_at, registration_id",
            of_connection,
        ),
        f"read the webhook registrations of {of_connection!r}",
    )
    return [
        RegistrationSummary(
            registration_id=row["registration_id"],
            connection=row["connection"],
            entity=row["entity"],
            state=RegistrationState(row["state"]),
            webhook_id=row["autotask_webhook_id"],
            webhook_guid=row["webhook_guid"],
            desired_hash=row["desired_hash"],
            secret_unconfirmed=row["unconfirmed"],
            has_previous_secret=row["has_previous"],
            previous_valid_until=row["previous_valid_until"],
            created_at=row["created_at"],
            last_verified_at=row["last_verified_at"],
            last_callout_at=row["last_callout_at"],
            last_deactivated_at=row["last_deactivated_at"],
            secret_rotated_at=row["secret_rotated_at"],
        )
        for row in rows
    ]


async def mark_secret_unconfirmed(db: DbSession, registration_id: str) -> None:
    """The current secret may not be in Autotask yet (set before rotating it there)."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET secret_unconfirmed_since = "
            "COALESCE(secret_unconfirmed_since, now()) WHERE registration_id = $1",
            registration_id,
        ),
        "mark a webhook secret as unconfirmed",
    )


async def confirm_secret(db: DbSession, registration_id: str) -> None:
    """Autotask accepted the current secret."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET secret_unconfirmed_since = NULL, updated_at = now() "
            "WHERE registration_id = $1",
            registration_id,
        ),
        "confirm a webhook secret",
    )


async def extend_overlap(db: DbSession, registration_id: str, overlap: timedelta) -> None:
    """Keep the previous secret verifying for ``overlap`` from now (a resumed rotation: Autotask
    may have signed with the previous secret all along)."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET previous_valid_until = now() + $2::interval, "
            "updated_at = now() WHERE registration_id = $1 AND secret_previous IS NOT NULL",
            registration_id,
            overlap,
        ),
        "extend a webhook secret's overlap",
    )


# --- holds and pass records -----------------------------------------------------------------
async def fetch_record(db: DbSession, of_connection: str) -> ProvisioningRecord | None:
    row = await guarded(
        db.fetchrow(
            "SELECT connection, held_at, held_reason, last_pass_at, last_trigger, last_outcome, "
            "last_steps, last_error FROM webhook_provisioning WHERE connection = $1",
            of_connection,
        ),
        f"read the provisioning record of {of_connection!r}",
    )
    return None if row is None else ProvisioningRecord(**dict(row))


async def hold(db: DbSession, of_connection: str, reason: str) -> None:
    """Stop passes from (re-)creating the connection's webhooks (after a teardown)."""
    await guarded(
        db.execute(
            "INSERT INTO webhook_provisioning (connection, held_at, held_reason) "
            "VALUES ($1, now(), $2) ON CONFLICT (connection) DO UPDATE SET held_at = now(), "
            "held_reason = EXCLUDED.held_reason, updated_at = now()",
            of_connection,
            reason,
        ),
        f"hold the webhooks of {of_connection!r}",
    )


async def release(db: DbSession, of_connection: str) -> bool:
    """Lift a hold; True when there was one."""
    status = await guarded(
        db.execute(
            "UPDATE webhook_provisioning SET held_at = NULL, held_reason = NULL, "
            "updated_at = now() WHERE connection = $1 AND held_at IS NOT NULL",
            of_connection,
        ),
        f"release the hold on {of_connection!r}",
    )
    return str(status).endswith(" 1")


async def record_pass(
    db: DbSession,
    of_connection: str,
    *,
    trigger: str,
    outcome: PassOutcome,
    steps: int,
    error: str | None = None,
) -> None:
    await guarded(
        db.execute(
            "INSERT INTO webhook_provisioning (connection, last_pass_at, last_trigger, "
            "last_outcome, last_steps, last_error) VALUES ($1, now(), $2, $3, $4, $5) "
            "ON CONFLICT (connection) DO UPDATE SET last_pass_at = now(), "
            "last_trigger = EXCLUDED.last_trigger, last_outcome = EXCLUDED.last_outcome, "
            "last_steps = EXCLUDED.last_steps, last_error = EXCLUDED.last_error, "
            "updated_at = now()",
            of_connection,
            trigger,
            outcome,
            steps,
            error,
        ),
        f"record the provisioning pass of {of_connection!r}",
    )


# --- owed sweeps ----------------------------------------------------------------------------
async def owe_sweep(
    db: DbSession,
    *,
    of_connection: str,
    entity: str,
    since: datetime | None,
    reason: str,
) -> None:
    """Remember a catch-up sweep to request; an earlier ``since`` wins over a later one."""
    await guarded(
        db.execute(
            "INSERT INTO provisioner_owed_sweeps (connection, entity, since, reason) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (connection, entity) DO UPDATE SET "
            "since = LEAST(provisioner_owed_sweeps.since, EXCLUDED.since), "
            "reason = EXCLUDED.reason",
            of_connection,
            entity,
            since,
            reason,
        ),
        "record an owed catch-up sweep",
    )


async def owed_sweeps(db: DbSession, *, of_connection: str) -> list[OwedSweep]:
    rows = await guarded(
        db.fetch(
            "SELECT connection, entity, since, reason FROM provisioner_owed_sweeps "
            "WHERE connection = $1 ORDER BY owed_at, entity",
            of_connection,
        ),
        "read the owed catch-up sweeps",
    )
    return [OwedSweep(**dict(row)) for row in rows]


async def settle_sweep(db: DbSession, sweep: OwedSweep) -> None:
    """The request is on Kafka: forget it (unless a newer gap was owed meanwhile)."""
    await guarded(
        db.execute(
            "DELETE FROM provisioner_owed_sweeps WHERE connection = $1 AND entity = $2 "
            "AND since IS NOT DISTINCT FROM $3",
            sweep.connection,
            sweep.entity,
            sweep.since,
        ),
        "settle an owed catch-up sweep",
    )


# --- one apply per connection ---------------------------------------------------------------
@asynccontextmanager
async def apply_lock(pool: Pool, of_connection: str, *, wait: timedelta) -> AsyncIterator[bool]:
    """Hold the connection's apply lock for the block; yields False if another process held it
    for longer than ``wait`` (``wait`` zero: try once)."""
    async with session(pool, f"hold the provisioning lock of {of_connection!r}") as db:
        deadline = time.monotonic() + wait.total_seconds()
        while True:
            taken = await guarded(
                db.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_CLASS, of_connection
                ),
                f"take the provisioning lock of {of_connection!r}",
            )
            if taken or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_LOCK_POLL.total_seconds())
        try:
            yield bool(taken)
        finally:
            if taken:
                await guarded(
                    db.fetchval(
                        "SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, of_connection
                    ),
                    f"release the provisioning lock of {of_connection!r}",
                )


__all__ = [
    "OwedSweep",
    "PassOutcome",
    "ProvisioningRecord",
    "RegistrationSummary",
    "apply_lock",
    "confirm_secret",
    "extend_overlap",
    "fetch_record",
    "hold",
    "live_registrations",
    "mark_secret_unconfirmed",
    "owe_sweep",
    "owed_sweeps",
    "record_pass",
    "release",
    "settle_sweep",
]

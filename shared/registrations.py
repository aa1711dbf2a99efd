"""Webhook registrations: one row per webhook the provisioner manages, read by the gateway.

A registration exists before its Autotask webhook does (state ``pending``), so the very first
callout already finds its secret. Its ``registration_id`` is the unguessable last segment of the
callout URL (``/v1/callouts/{registration_id}``): the gateway knows which secret verifies a
request before it parses anything (architecture.md, "Signature verification").

States: ``pending`` (row written, webhook not created or not confirmed yet) → ``active`` →
``deactivated`` (Autotask switched it off; the provisioner reactivates it) → ``retired``
(torn down; its path answers 410). Secrets are stored encrypted by the
:class:`~shared.secrets.SecretBox`; during a rotation the previous secret keeps verifying until
``previous_valid_until``.

Writers (the provisioner, the gateway's bookkeeping) use the functions here; readers that need
every registration on every request use :class:`RegistrationStore`, a live in-memory view.
"""

from __future__ import annotations

import secrets as random_tokens
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from shared.db.live import LiveTable
from shared.db.pool import DbSession, Record, guarded
from shared.errors import SyncError
from shared.logging import get_logger
from shared.secrets import SecretBox

log = get_logger(__name__)

CHANNEL = "autotask_sync_registrations"
"""NOTIFY channel of the table's trigger (migration 0003)."""

SECRET_LENGTH = 48
"""Characters of a generated webhook secret (Autotask accepts up to 64)."""
_ID_BYTES = 24  # registration ids: 32 url-safe characters, 192 random bits

_COLUMNS = (
    "registration_id, connection, entity, autotask_webhook_id, webhook_guid, secret_current, "
    "secret_previous, secret_rotated_at, previous_valid_until, state, desired_hash, "
    "last_deactivated_at, last_verified_at, last_callout_at, retired_at, created_at, updated_at"
)


class RegistrationState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    RETIRED = "retired"


def new_registration_id() -> str:
    """An unguessable callout path segment."""
    return random_tokens.token_urlsafe(_ID_BYTES)


def new_webhook_secret() -> SecretStr:
    """A cryptographically random webhook secret within Autotask's 64-character limit."""
    return SecretStr(random_tokens.token_urlsafe(SECRET_LENGTH)[:SECRET_LENGTH])


@dataclass(frozen=True, slots=True)
class Registration:
    """One registration with its secrets decrypted; its repr shows no secret."""

    registration_id: str
    connection: str
    entity: str
    """REST name of the entity (``Tickets``)."""
    state: RegistrationState
    secret_current: SecretStr = field(repr=False)
    secret_previous: SecretStr | None = field(default=None, repr=False)
    previous_valid_until: datetime | None = None
    autotask_webhook_id: int | None = None
    webhook_guid: str | None = None
    secret_rotated_at: datetime | None = None
    desired_hash: str | None = None
    last_deactivated_at: datetime | None = None
    last_verified_at: datetime | None = None
    last_callout_at: datetime | None = None
    retired_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def retired(self) -> bool:
        return self.state is RegistrationState.RETIRED

    def verifying_secrets(self, now: datetime | None = None) -> tuple[SecretStr, ...]:
        """The secrets a callout may be signed with now: the current one, and the previous
        one while the rotation overlap lasts."""
        if self.secret_previous is None:
            return (self.secret_current,)
        moment = now or datetime.now(UTC)
        if self.previous_valid_until is not None and moment >= self.previous_valid_until:
            return (self.secret_current,)
        return (self.secret_current, self.secret_previous)

    @classmethod
    def from_record(cls, record: Record | Mapping[str, Any], box: SecretBox) -> Registration:
        what = f"the {record['entity']} webhook secret of connection {record['connection']!r}"
        previous = record["secret_previous"]
        return cls(
            registration_id=record["registration_id"],
            connection=record["connection"],
            entity=record["entity"],
            state=RegistrationState(record["state"]),
            secret_current=box.decrypt(record["secret_current"], what=what),
            secret_previous=None if previous is None else box.decrypt(previous, what=what),
            previous_valid_until=record["previous_valid_until"],
            autotask_webhook_id=record["autotask_webhook_id"],
            webhook_guid=record["webhook_guid"],
            secret_rotated_at=record["secret_rotated_at"],
            desired_hash=record["desired_hash"],
            last_deactivated_at=record["last_deactivated_at"],
            last_verified_at=record["last_verified_at"],
            last_callout_at=record["last_callout_at"],
            retired_at=record["retired_at"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
        )


# --- reads ------------------------------------------------------------------------------------
async def fetch_all(
    db: DbSession, box: SecretBox, *, of_connection: str | None = None
) -> list[Registration]:
    """Every registration (of one connection, if given), oldest first.

    A row whose secret no configured key opens is skipped with an error in the log: one broken
    row must not take every other registration down with it.
    """
    where, args = ("WHERE connection = $1", [of_connection]) if of_connection else ("", [])
    records = await guarded(
        db.fetch(
            f"SELECT {_COLUMNS} FROM webhook_registrations {where} ORDER BY created_at, "  # noqa: S608 - fixed text
            "registration_id",
            *args,
        ),
        "read the webhook registrations",
    )
    found = []
    for record in records:
        try:
            found.append(Registration.from_record(record, box))
        except SyncError as exc:
            log.error(
                "webhook registration skipped",
                registration=record["registration_id"],
                connection=record["connection"],
                error=str(exc),
            )
    return found


async def fetch_one(db: DbSession, registration_id: str, box: SecretBox) -> Registration | None:
    record = await guarded(
        db.fetchrow(
            f"SELECT {_COLUMNS} FROM webhook_registrations WHERE registration_id = $1",  # noqa: S608 - fixed text
            registration_id,
        ),
        "read a webhook registration",
    )
    return None if record is None else Registration.from_record(record, box)


# --- writes (the provisioner's) ---------------------------------------------------------------
async def create_pending(
    db: DbSession,
    box: SecretBox,
    *,
    of_connection: str,
    entity: str,
    secret: SecretStr | None = None,
) -> Registration:
    """A new ``pending`` registration with a fresh id and secret, before its webhook exists."""
    registration_id = new_registration_id()
    secret = secret or new_webhook_secret()
    await guarded(
        db.execute(
            "INSERT INTO webhook_registrations (registration_id, connection, entity, "
            "secret_current, state) VALUES ($1, $2, $3, $4, 'pending')",
            registration_id,
            of_connection,
            entity,
            box.encrypt(secret),
        ),
        f"create a {entity} webhook registration for {of_connection!r}",
    )
    found = await fetch_one(db, registration_id, box)
    assert found is not None
    return found


async def set_state(
    db: DbSession,
    registration_id: str,
    state: RegistrationState,
    *,
    autotask_webhook_id: int | None = None,
    webhook_guid: str | None = None,
    desired_hash: str | None = None,
    verified: bool = False,
) -> None:
    """Move a registration to ``state``, recording what the provisioner learnt on the way."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET state = $2, "
            "autotask_webhook_id = COALESCE($3, autotask_webhook_id), "
            "webhook_guid = COALESCE($4, webhook_guid), "
            "desired_hash = COALESCE($5, desired_hash), "
            "last_verified_at = CASE WHEN $6 THEN now() ELSE last_verified_at END, "
            "retired_at = CASE WHEN $2 = 'retired' THEN now() ELSE retired_at END, "
            "updated_at = now() WHERE registration_id = $1",
            registration_id,
            state.value,
            autotask_webhook_id,
            webhook_guid,
            desired_hash,
            verified,
        ),
        "update a webhook registration",
    )


async def begin_rotation(
    db: DbSession,
    registration_id: str,
    box: SecretBox,
    *,
    new_secret: SecretStr,
    overlap: timedelta,
) -> None:
    """Make ``new_secret`` current and keep the old one verifying for ``overlap``.

    Call this *before* the new secret is set in Autotask: both verify from this moment on, so no
    callout in flight fails whichever secret Autotask signed it with.
    """
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET secret_previous = secret_current, "
            "secret_current = $2, secret_rotated_at = now(), "
            "previous_valid_until = now() + $3::interval, updated_at = now() "
            "WHERE registration_id = $1",
            registration_id,
            box.encrypt(new_secret),
            overlap,
        ),
        "rotate a webhook secret",
    )


async def end_rotation(db: DbSession, registration_id: str) -> None:
    """Forget the previous secret (the overlap is over)."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET secret_previous = NULL, "
            "previous_valid_until = NULL, updated_at = now() WHERE registration_id = $1",
            registration_id,
        ),
        "finish a webhook secret rotation",
    )


# --- writes (the gateway's bookkeeping, off the request path) ---------------------------------
async def record_deactivation(db: DbSession, registration_id: str, at: datetime) -> None:
    """Autotask called the registration's DeactivationUrl at ``at`` (nothing else changes)."""
    await guarded(
        db.execute(
            "UPDATE webhook_registrations SET last_deactivated_at = GREATEST("
            "last_deactivated_at, $2) WHERE registration_id = $1",
            registration_id,
            at,
        ),
        "record a webhook deactivation",
    )


async def claim_deactivation(db: DbSession, registration_id: str, *, interval: timedelta) -> bool:
    """Record a deactivation notice now, unless one was recorded less than ``interval`` ago.

    True for the one caller (across replicas) that recorded it: that caller acts on the notice
    (asks the provisioner to check), every other one within the interval does not.
    """
    claimed = await guarded(
        db.fetchval(
            "UPDATE webhook_registrations SET last_deactivated_at = now() "
            "WHERE registration_id = $1 AND (last_deactivated_at IS NULL "
            "OR last_deactivated_at <= now() - $2::interval) RETURNING true",
            registration_id,
            interval,
        ),
        "record a webhook deactivation",
    )
    return bool(claimed)


async def record_callouts(db: DbSession, last_seen: Mapping[str, datetime]) -> None:
    """When each registration last had a callout accepted (batched by the gateway)."""
    if not last_seen:
        return
    await guarded(
        db.executemany(
            "UPDATE webhook_registrations SET last_callout_at = GREATEST(last_callout_at, $2) "
            "WHERE registration_id = $1",
            list(last_seen.items()),
        ),
        "record when callouts were last seen",
    )


# --- the live view ----------------------------------------------------------------------------
class RegistrationStore:
    """Every registration, by id, kept current in memory (see :mod:`shared.db.live`)."""

    def __init__(
        self,
        *,
        database_url: str,
        box: SecretBox,
        reload_interval: timedelta = timedelta(seconds=60),
    ) -> None:
        self._box = box
        self._by_id: dict[str, Registration] = {}
        self._table: LiveTable[list[Registration]] = LiveTable(
            name="webhook_registrations",
            dsn=database_url,
            channel=CHANNEL,
            load=self._load,
            reload_interval=reload_interval,
            debounce=timedelta(milliseconds=20),
        )
        self._table.subscribe(self._apply)

    async def _load(self, db: DbSession) -> list[Registration]:
        return await fetch_all(db, self._box)

    def _apply(self, registrations: list[Registration]) -> None:
        self._by_id = {r.registration_id: r for r in registrations}

    @property
    def loaded(self) -> bool:
        return self._table.loaded

    @property
    def age(self) -> float | None:
        """Seconds since the last successful load."""
        return self._table.age

    def get(self, registration_id: str) -> Registration | None:
        return self._by_id.get(registration_id)

    def all(self) -> list[Registration]:
        return list(self._by_id.values())

    async def start(self) -> None:
        await self._table.start()

    async def stop(self) -> None:
        await self._table.stop()

    async def refresh(self) -> None:
        await self._table.reload()

    async def __aenter__(self) -> RegistrationStore:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


__all__ = [
    "CHANNEL",
    "SECRET_LENGTH",
    "Registration",
    "RegistrationState",
    "RegistrationStore",
    "begin_rotation",
    "claim_deactivation",
    "create_pending",
    "end_rotation",
    "fetch_all",
    "fetch_one",
    "new_registration_id",
    "new_webhook_secret",
    "record_callouts",
    "record_deactivation",
    "set_state",
]

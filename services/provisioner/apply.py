"""Executes a plan through the Autotask client and the registration store, step by step.

Each entity's steps are a chain run in order; chains run side by side, one per webhook root, so
the provisioner has at most one call in flight per Autotask endpoint (the limiter's 3 slots are
never all taken by it, and adding fields in parallel, a known way to trip the thread limit, never
happens). A child row is one POST, as Autotask requires. The first failure stops its chain (later
steps depend on earlier ones); the other chains go on.

Every step leaves a durable trace before or as it acts, so a crash anywhere resumes cleanly on the
next pass, which simply plans again from what Autotask and PostgreSQL show:

- a registration is written (``pending``) before its webhook is created, and the webhook's id is
  recorded the moment Autotask returns it; a webhook created but not recorded is found again by
  the registration id in its URL;
- fields and exclusions added so far are visible in Autotask, so only the rest are added;
- a rotation marks the registration before Autotask gets the new secret (see rotate.py);
- a catch-up sweep is owed in PostgreSQL before the repair that calls for it, and settled once
  the request is on Kafka.

Autotask's refusals are translated here into messages a person can act on (which security-level
setting to change, and to what).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from services.provisioner import rotate
from services.provisioner import store as provisioning
from services.provisioner.desired import DesiredWebhook
from services.provisioner.plan import (
    AddExclusion,
    AddField,
    CreateWebhook,
    DeleteWebhook,
    EndRotation,
    Plan,
    Reactivate,
    RecordRegistration,
    RemoveExclusion,
    RemoveField,
    RequestSweep,
    RetireRegistration,
    RotateSecret,
    Step,
    UpdateField,
    UpdateWebhook,
)
from shared import registrations
from shared.autotask import AutotaskClient, Child, Priority
from shared.db import Pool, session
from shared.entities import by_rest_name
from shared.errors import KafkaError, NotFoundError, PermissionDeniedError, SyncError
from shared.logging import get_logger
from shared.messages.control import SweepRequested
from shared.metrics import (
    PROVISIONER_HEAL_ACTIONS,
    PROVISIONER_ROTATIONS,
    PROVISIONER_STEPS,
)
from shared.registrations import RegistrationState
from shared.secrets import SecretBox

log = get_logger(__name__)

NOW = Priority.INTERACTIVE
Outcome = Literal["done", "gone", "failed", "skipped", "owed"]
SECURITY_LEVELS = "Admin > Account Settings & Users > Security Levels"


class SweepPublisher(Protocol):
    """Where catch-up sweep requests go (the control topic)."""

    async def publish(self, event: SweepRequested) -> None: ...


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    secret_overlap: timedelta = timedelta(minutes=10)
    propagation: timedelta = timedelta(seconds=1)
    """Pause after a registration or secret changes, before Autotask may use it, so every
    gateway has reloaded (NOTIFY arrives in milliseconds; this is the margin)."""
    webhooks_needed: int = 0
    """How many webhooks the API user will own once the plan is applied (for the message when
    the security level's maximum is reached)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    outcome: Outcome
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What happened to each step of a plan."""

    connection: str
    results: tuple[StepResult, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.outcome not in ("failed", "skipped") for r in self.results)

    @property
    def failures(self) -> list[StepResult]:
        return [r for r in self.results if r.outcome == "failed"]

    def failed_entities(self) -> set[str]:
        return {r.step.entity for r in self.results if r.outcome in ("failed", "skipped")}


@dataclass
class _Chain:
    """What one entity's chain learnt on the way (the ids a plan could not know)."""

    entity: str
    webhook_id: int | None = None
    registration_id: str | None = None
    wrote: bool = False
    results: list[StepResult] = field(default_factory=list)


class Executor:
    """Runs plans for one connection."""

    def __init__(
        self,
        *,
        connection: str,
        client: AutotaskClient,
        pool: Pool,
        box: SecretBox | None,
        publisher: SweepPublisher | None,
        config: ExecutorConfig,
    ) -> None:
        self.connection = connection
        self.client = client
        self.pool = pool
        self.box = box
        self.publisher = publisher
        self.config = config

    async def apply(self, plan: Plan) -> ApplyReport:
        """Run every chain of ``plan``; never raises for a failed step (see the report)."""
        chains = plan.chains()
        done = await asyncio.gather(*(self._run(e, steps) for e, steps in chains.items()))
        results = tuple(result for chain in done for result in chain.results)
        return ApplyReport(self.connection, results)

    async def _run(self, entity: str, steps: Sequence[Step]) -> _Chain:
        chain = _Chain(entity)
        failed = False
        sweep = next((s for s in steps if isinstance(s, RequestSweep)), None)
        if sweep is not None:
            try:
                await self._owe(sweep)  # before the repair that calls for it
            except SyncError as exc:
                failed = True
                log.warning(
                    "catch-up sweep not recorded", connection=self.connection, error=str(exc)
                )
        for step in steps:
            if failed:
                chain.results.append(StepResult(step, "skipped"))
                PROVISIONER_STEPS.labels(self.connection, entity, step.kind, "skipped").inc()
                continue
            started = time.perf_counter()
            error = None
            try:
                outcome = await self._step(step, chain)
            except SyncError as exc:
                outcome, error, failed = "failed", str(exc), True
            seconds = time.perf_counter() - started
            chain.results.append(StepResult(step, outcome, error, seconds))
            PROVISIONER_STEPS.labels(self.connection, entity, step.kind, outcome).inc()
            fields = {"connection": self.connection, "entity": entity, "kind": step.kind}
            if error is not None:
                log.warning("provisioner step failed", **fields, error=error)
            else:
                log.info("provisioner step", **fields, outcome=outcome, step=step.describe())
        return chain

    # --- one step of each kind --------------------------------------------------------------
    async def _step(self, step: Step, chain: _Chain) -> Outcome:
        handler = _HANDLERS.get(type(step))
        if handler is None:
            raise AssertionError(f"no handler for {step!r}")
        return await handler(self, step, chain)

    async def _create_webhook(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, CreateWebhook)
        await self._create(step.webhook, step.registration_id, chain)
        return "done"

    async def _update_webhook(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, UpdateWebhook)
        body = {"id": step.webhook_id, **dict(step.changes)}
        await self.client.update(_root(step.entity), body, priority=NOW)
        chain.wrote = True
        return "done"

    async def _reactivate(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, Reactivate)
        if step.registration_id:  # id-truthiness: ok our token (16+ chars); "" means none
            async with session(self.pool, "record a deactivated webhook") as db:  # it was down
                await registrations.set_state(
                    db, step.registration_id, RegistrationState.DEACTIVATED
                )
        body = {"id": step.webhook_id, "isActive": True}
        await self.client.update(_root(step.entity), body, priority=NOW)
        chain.wrote = True
        PROVISIONER_HEAL_ACTIONS.labels(self.connection, step.entity, "reactivated").inc()
        return "done"

    async def _add_field(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, AddField)
        webhook_id = self._webhook(step.webhook_id, chain)
        body = {
            "webhookID": webhook_id,
            "udfFieldID" if step.udf else "fieldID": step.field_id,
            "isSubscribedField": step.subscribed,
            "isDisplayAlwaysField": step.display_always,
        }
        target = Child(_root(step.entity), webhook_id, _fields(step.udf))
        await self._child_create(chain, target, body)
        return "done"

    async def _update_field(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, UpdateField)
        body = {
            "id": step.child_id,
            "isSubscribedField": step.subscribed,
            "isDisplayAlwaysField": step.display_always,
        }
        target = Child(_root(step.entity), step.webhook_id, _fields(step.udf))
        await self.client.update(target, body, priority=NOW)
        chain.wrote = True
        return "done"

    async def _remove_field(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RemoveField)
        target = Child(_root(step.entity), step.webhook_id, _fields(step.udf))
        return await self._delete(chain, target, step.child_id)

    async def _add_exclusion(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, AddExclusion)
        webhook_id = self._webhook(step.webhook_id, chain)
        body = {"webhookID": webhook_id, "resourceID": step.resource_id}
        target = Child(_root(step.entity), webhook_id, "ExcludedResources")
        await self._child_create(chain, target, body)
        return "done"

    async def _remove_exclusion(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RemoveExclusion)
        target = Child(_root(step.entity), step.webhook_id, "ExcludedResources")
        return await self._delete(chain, target, step.child_id)

    async def _delete_webhook(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, DeleteWebhook)
        outcome = await self._delete(chain, _root(step.entity), step.webhook_id)
        action = f"{step.reason}_deleted"
        PROVISIONER_HEAL_ACTIONS.labels(self.connection, step.entity, action).inc()
        return outcome

    async def _rotate_secret(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RotateSecret)
        try:
            await rotate.rotate(
                pool=self.pool,
                client=self.client,
                box=self._box(),
                root=_root(step.entity),
                webhook_id=step.webhook_id,
                registration_id=step.registration_id,
                overlap=self.config.secret_overlap,
                propagation=self.config.propagation,
                resume=step.resume,
            )
        except SyncError:
            PROVISIONER_ROTATIONS.labels(self.connection, step.entity, "failed").inc()
            raise
        chain.wrote = True
        outcome = "resumed" if step.resume else "rotated"
        PROVISIONER_ROTATIONS.labels(self.connection, step.entity, outcome).inc()
        return "done"

    async def _end_rotation(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, EndRotation)
        async with session(self.pool, "end a secret rotation") as db:
            await registrations.end_rotation(db, step.registration_id)
        return "done"

    async def _record(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RecordRegistration)
        registration_id = (
            step.registration_id or chain.registration_id  # id-truthiness: ok our token, never ""
        )
        webhook_id = step.webhook_id if step.webhook_id is not None else chain.webhook_id
        if registration_id is None or webhook_id is None:
            raise SyncError("nothing to record: the webhook was not created", retriable=True)
        guid = step.guid
        if chain.wrote or guid is None:
            # Confirm what Autotask now shows (and learn the GUID of a new webhook).
            row = await self.client.get(_root(step.entity), webhook_id, priority=NOW)
            guid = _text(row, "webhookGuid") or guid
            if not _flag(row, "isActive"):
                raise SyncError(
                    f"{step.entity} webhook {webhook_id} is still inactive after the apply; "
                    "the next pass tries again",
                    retriable=True,
                )
        async with session(self.pool, "record an active webhook") as db:
            await registrations.set_state(
                db,
                registration_id,
                RegistrationState.ACTIVE,
                autotask_webhook_id=webhook_id,
                webhook_guid=guid,
                desired_hash=step.webhook.digest(registration_id),
                verified=True,
            )
        return "done"

    async def _retire(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RetireRegistration)
        async with session(self.pool, "retire a webhook registration") as db:
            await registrations.set_state(db, step.registration_id, RegistrationState.RETIRED)
        return "done"

    async def _sweep(self, step: Step, chain: _Chain) -> Outcome:
        assert isinstance(step, RequestSweep)
        PROVISIONER_HEAL_ACTIONS.labels(self.connection, step.entity, step.reason).inc()
        if self.publisher is None:
            return "owed"  # published by the next pass that has Kafka
        sweep = provisioning.OwedSweep(self.connection, step.entity, step.since, step.reason)
        try:
            await publish_owed(self.pool, self.publisher, [sweep])
        except KafkaError as exc:
            log.warning(
                "catch-up sweep request stays owed",
                connection=self.connection,
                entity=step.entity,
                error=str(exc),
            )
            return "owed"  # the row stays; a later pass publishes it
        return "done"

    # --- the parts --------------------------------------------------------------------------
    async def _create(
        self, webhook: DesiredWebhook, registration_id: str | None, chain: _Chain
    ) -> None:
        box = self._box()
        async with session(self.pool, "prepare a webhook registration") as db:
            if registration_id is None:
                registration = await registrations.create_pending(
                    db, box, of_connection=self.connection, entity=webhook.entity
                )
                fresh = True
            else:
                found = await registrations.fetch_one(db, registration_id, box)
                if found is None:
                    raise SyncError(
                        f"webhook registration {registration_id[:6]}… disappeared while "
                        "planning; the next pass plans again",
                        retriable=True,
                    )
                registration, fresh = found, False
        chain.registration_id = registration.registration_id
        if fresh:
            await asyncio.sleep(self.config.propagation.total_seconds())
        body = {
            **webhook.properties(registration.registration_id),
            "secretKey": registration.secret_current.get_secret_value(),
            "isActive": True,
        }
        try:
            webhook_id = await self.client.create(webhook.root, body, priority=NOW)
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(
                self._cannot_create(f"create the {webhook.entity} webhook", exc),
                status=exc.status,
                errors=exc.errors,
            ) from exc
        chain.wrote = True
        chain.webhook_id = webhook_id
        async with session(self.pool, "record a created webhook") as db:
            await registrations.set_state(
                db,
                registration.registration_id,
                RegistrationState.PENDING,
                autotask_webhook_id=webhook_id,
            )
            await provisioning.confirm_secret(db, registration.registration_id)  # it has it

    async def _owe(self, sweep: RequestSweep) -> None:
        async with session(self.pool, "owe a catch-up sweep") as db:
            await provisioning.owe_sweep(
                db,
                of_connection=self.connection,
                entity=sweep.entity,
                since=sweep.since,
                reason=sweep.reason,
            )

    # --- helpers ----------------------------------------------------------------------------
    async def _child_create(self, chain: _Chain, target: Child, body: dict[str, Any]) -> None:
        try:
            await self.client.create(target, body, priority=NOW)
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(
                self._cannot_create(f"add to the {chain.entity} webhook", exc),
                status=exc.status,
                errors=exc.errors,
            ) from exc
        chain.wrote = True

    async def _delete(self, chain: _Chain, target: str | Child, item_id: int) -> Outcome:
        try:
            await self.client.delete(target, item_id, priority=NOW)
        except NotFoundError:
            return "gone"  # already deleted: the goal is reached
        chain.wrote = True
        return "done"

    def _webhook(self, webhook_id: int | None, chain: _Chain) -> int:
        found = webhook_id if webhook_id is not None else chain.webhook_id
        if found is None:
            raise SyncError("the webhook this step belongs to was not created", retriable=True)
        return found

    def _box(self) -> SecretBox:
        if self.box is None:
            raise SyncError(
                "AUTOTASK_SYNC_SECRET_KEYS is not set: webhook secrets are stored encrypted; "
                "generate a key with `autotask-sync connections generate-key` and set it "
                "(the gateway needs the same keys)"
            )
        return self.box

    def _cannot_create(self, what: str, exc: PermissionDeniedError) -> str:
        """What to change when Autotask refuses a webhook write for the security level."""
        needed = max(1, self.config.webhooks_needed)
        said = "; ".join(exc.errors) or str(exc)
        if "maximum" in said.lower() and "webhook" in said.lower():
            return (
                f"Autotask refused to {what} of connection {self.connection!r}: the API "
                "user's security level has reached its maximum "
                f"number of webhooks. Raise that maximum to at least {needed} ({SECURITY_LEVELS} "
                "> the API user's level > 'Can create WebHooks' / maximum webhooks), or delete "
                f"webhooks the API user no longer needs. Autotask said: {said}"
            )
        return (
            f"Autotask refused to {what} of connection {self.connection!r}: the API user's "
            "security level lacks 'Can create WebHooks'. "
            f"Enable it ({SECURITY_LEVELS} > the API user's level) and set its maximum number "
            f"of webhooks to at least {needed}. Autotask said: {said}"
        )


async def publish_owed(
    pool: Pool, publisher: SweepPublisher, sweeps: Sequence[provisioning.OwedSweep]
) -> int:
    """Publish owed sweep requests and settle each once Kafka has it; returns how many."""
    published = 0
    for sweep in sweeps:
        await publisher.publish(
            SweepRequested(
                connection=sweep.connection,
                entity=sweep.entity,
                since=sweep.since,
                reason=f"webhook {sweep.reason}",
                at=datetime.now(UTC),
            )
        )
        async with session(pool, "settle an owed catch-up sweep") as db:
            await provisioning.settle_sweep(db, sweep)
        published += 1
    return published


_Handler = Callable[[Executor, Step, _Chain], Awaitable[Outcome]]
_HANDLERS: dict[type[Step], _Handler] = {
    CreateWebhook: Executor._create_webhook,
    UpdateWebhook: Executor._update_webhook,
    Reactivate: Executor._reactivate,
    AddField: Executor._add_field,
    UpdateField: Executor._update_field,
    RemoveField: Executor._remove_field,
    AddExclusion: Executor._add_exclusion,
    RemoveExclusion: Executor._remove_exclusion,
    DeleteWebhook: Executor._delete_webhook,
    RotateSecret: Executor._rotate_secret,
    EndRotation: Executor._end_rotation,
    RecordRegistration: Executor._record,
    RetireRegistration: Executor._retire,
    RequestSweep: Executor._sweep,
}


def _root(entity: str) -> str:
    root = by_rest_name(entity).webhook_root
    assert root is not None
    return root


def _fields(udf: bool) -> str:
    return "UdfFields" if udf else "Fields"


def _text(row: dict[str, Any], key: str) -> str | None:
    lowered = key.lower()
    value = next((v for k, v in row.items() if k.lower() == lowered), None)
    return str(value) if value not in (None, "") else None


def _flag(row: dict[str, Any], key: str) -> bool:
    lowered = key.lower()
    return next((v for k, v in row.items() if k.lower() == lowered), None) is True


__all__ = [
    "ApplyReport",
    "Executor",
    "ExecutorConfig",
    "StepResult",
    "SweepPublisher",
    "publish_owed",
]

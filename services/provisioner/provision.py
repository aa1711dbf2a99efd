"""One provisioning pass of one connection: observe, plan, apply, request sweeps, record.

The long-running service and the ``autotask-sync provision`` command both run passes through
:class:`Provisioner`, so they share every rule. A pass that applies holds the connection's
advisory lock, so a command and the service never apply the same connection at once, and it
skips a connection a teardown put on hold (unless told to release it). :meth:`Provisioner.plan`
only reads: neither Autotask nor PostgreSQL is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.provisioner import actual as observed
from services.provisioner import store as provisioning
from services.provisioner.actual import ActualState
from services.provisioner.apply import (
    ApplyReport,
    Executor,
    ExecutorConfig,
    SweepPublisher,
    publish_owed,
)
from services.provisioner.desired import (
    DesiredState,
    EntityMetadata,
    WebhookPolicy,
    desired_state,
)
from services.provisioner.plan import CreateWebhook, DeleteWebhook, Plan, plan
from services.provisioner.settings import ProvisionerSettings
from shared.autotask import AutotaskClient, BudgetConfig, ClientConfig, LimiterConfig, Priority
from shared.connections.catalogue import ServedConnection
from shared.db import Pool, session
from shared.entities import webhook_entities
from shared.errors import KafkaError, SyncError
from shared.logging import get_logger
from shared.metrics import PROVISIONER_APPLY_SECONDS, PROVISIONER_PASSES, PROVISIONER_WEBHOOKS
from shared.secrets import SecretBox

log = get_logger(__name__)

Mode = Literal["apply", "teardown"]
Outcome = Literal["in_sync", "applied", "failed", "held", "locked"]
WEBHOOK_STATES = ("active", "inactive", "not_ready", "missing", "blocked")

CLIENT_CONFIG = ClientConfig(
    default_priority=Priority.INTERACTIVE,
    # A pass makes a few dozen calls at interactive priority, which never waits for budget:
    # reading ThresholdInformation would only cost one more call.
    limiter=LimiterConfig(budget=BudgetConfig(enabled=False)),
)
"""How the provisioner's Autotask clients are configured."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What one pass saw: the connection's desired webhooks and the tenant's actual ones."""

    connection: str
    desired: DesiredState
    actual: ActualState
    api_user_resource_id: int | None


@dataclass(frozen=True, slots=True)
class PassResult:
    """The outcome of one pass."""

    connection: str
    trigger: str
    outcome: Outcome
    plan: Plan | None = None
    report: ApplyReport | None = None
    error: str | None = None
    observation: Observation | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("in_sync", "applied", "held")


@dataclass
class _Cached:
    expires: float
    metadata: dict[str, EntityMetadata]
    refused: dict[str, str]
    api_user: int | None


class Provisioner:
    """Plans and applies the webhooks of the connections it is given."""

    def __init__(
        self,
        *,
        settings: ProvisionerSettings,
        pool: Pool,
        box: SecretBox | None,
        publisher: SweepPublisher | None,
        metadata_ttl: timedelta = timedelta(0),
        propagation: timedelta = timedelta(seconds=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.box = box
        self.publisher = publisher
        self.metadata_ttl = metadata_ttl
        self.propagation = propagation
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    # --- reading ----------------------------------------------------------------------------
    async def observe(
        self, served: ServedConnection, client: AutotaskClient, *, teardown: bool = False
    ) -> Observation:
        """Read the desired and actual state of ``served`` (Autotask and PostgreSQL reads).

        For a teardown nothing is desired, so no metadata is read and no gateway URL needed.
        """
        name = served.name
        desired = DesiredState(name)
        api_user = None
        if not teardown:
            policy = WebhookPolicy.resolve(self.settings, served.scope)
            cached = await self._metadata(name, client, policy.entities)
            api_user = cached.api_user
            desired = desired_state(
                connection=name,
                policy=policy,
                metadata=cached.metadata,
                api_user_resource_id=api_user,
                unreadable=cached.refused,
            )
        webhooks, unread = await observed.read_webhooks(client, connection=name)
        async with session(self.pool, "read the webhook registrations") as db:
            live = await provisioning.live_registrations(db, of_connection=name)
        actual = ActualState(name, tuple(webhooks), tuple(live), unread)
        return Observation(name, desired, actual, api_user)

    async def plan(
        self,
        served: ServedConnection,
        client: AutotaskClient,
        *,
        rotate: Iterable[str] = (),
        teardown: bool = False,
    ) -> tuple[Plan, Observation]:
        """The plan for ``served`` as things are now; nothing is written anywhere."""
        observation = await self.observe(served, client, teardown=teardown)
        return self._plan(observation, rotate=rotate), observation

    def _plan(self, observation: Observation, *, rotate: Iterable[str]) -> Plan:
        return plan(
            desired=observation.desired, actual=observation.actual, now=self._clock(), rotate=rotate
        )

    # --- applying ---------------------------------------------------------------------------
    async def run(
        self,
        served: ServedConnection,
        client: AutotaskClient,
        *,
        trigger: str,
        mode: Mode = "apply",
        rotate: Iterable[str] = (),
        release_hold: bool = False,
        lock_wait: timedelta = timedelta(0),
    ) -> PassResult:
        """One pass: plan and apply under the connection's lock. Never raises a SyncError: a
        failure is the result's ``error``."""
        name = served.name
        result = PassResult(name, trigger, "failed")
        try:
            async with provisioning.apply_lock(self.pool, name, wait=lock_wait) as locked:
                if not locked:
                    result = PassResult(
                        name,
                        trigger,
                        "locked",
                        error=f"another provisioner is applying connection {name!r}; "
                        "try again when it has finished",
                    )
                else:
                    result = await self._locked_pass(
                        served,
                        client,
                        trigger=trigger,
                        mode=mode,
                        rotate=rotate,
                        release_hold=release_hold,
                    )
        except SyncError as exc:
            self._cache.pop(name, None)  # stale metadata may be the cause: read it again
            result = PassResult(name, trigger, "failed", error=str(exc))
            log.warning("provisioning pass failed", connection=name, error=str(exc))
        PROVISIONER_PASSES.labels(name, trigger, result.outcome).inc()
        return result

    async def _locked_pass(
        self,
        served: ServedConnection,
        client: AutotaskClient,
        *,
        trigger: str,
        mode: Mode,
        rotate: Iterable[str],
        release_hold: bool,
    ) -> PassResult:
        name = served.name
        async with session(self.pool, "read the provisioning record") as db:
            record = await provisioning.fetch_record(db, name)
            held = record is not None and record.held_at is not None
            if held and release_hold and mode == "apply":
                await provisioning.release(db, name)
                held = False
        if held and mode == "apply":
            log.info("connection held after a teardown: not provisioned", connection=name)
            return PassResult(
                name,
                trigger,
                "held",
                error=f"connection {name!r} was torn down; run `autotask-sync provision apply "
                f"--connection {name}` to provision it again",
            )
        observation = await self.observe(served, client, teardown=mode == "teardown")
        the_plan = self._plan(observation, rotate=rotate)
        report = ApplyReport(name)
        started = time.perf_counter()
        if not the_plan.empty:
            executor = Executor(
                connection=name,
                client=client,
                pool=self.pool,
                box=self.box,
                publisher=self.publisher,
                config=ExecutorConfig(
                    secret_overlap=self.settings.webhook_secret_overlap,
                    propagation=self.propagation,
                    webhooks_needed=_webhooks_needed(observation, the_plan),
                ),
            )
            report = await executor.apply(the_plan)
            PROVISIONER_APPLY_SECONDS.labels(name).observe(time.perf_counter() - started)
        await self._drain_sweeps(name, report)
        if mode == "teardown":
            async with session(self.pool, "hold a torn-down connection") as db:
                await provisioning.hold(db, name, f"teardown ({trigger})")
        outcome: provisioning.PassOutcome = "in_sync" if the_plan.empty else "applied"
        error = None
        if not report.ok:
            outcome = "failed"
            error = "; ".join(f"{r.step.entity}: {r.error}" for r in report.failures)
            self._cache.pop(name, None)
        async with session(self.pool, "record the provisioning pass") as db:
            await provisioning.record_pass(
                db,
                name,
                trigger=trigger,
                outcome=outcome,
                steps=len(the_plan.steps),
                error=error,
            )
        _publish_states(observation, report, teardown=mode == "teardown")
        if not the_plan.empty:
            log.info(
                "provisioning pass applied",
                connection=name,
                trigger=trigger,
                steps=len(the_plan.steps),
                failed=len(report.failures),
            )
        return PassResult(name, trigger, outcome, the_plan, report, error, observation)

    async def _drain_sweeps(self, name: str, report: ApplyReport) -> None:
        """Publish sweeps owed by earlier passes (a crash or a Kafka outage in between); not
        those of entities whose repair just failed: a later pass owes them again."""
        if self.publisher is None:
            return
        failed = report.failed_entities()
        async with session(self.pool, "read the owed catch-up sweeps") as db:
            owed = [
                s
                for s in await provisioning.owed_sweeps(db, of_connection=name)
                if s.entity not in failed
            ]
        if not owed:
            return
        try:
            await publish_owed(self.pool, self.publisher, owed)
        except KafkaError as exc:
            log.warning("catch-up sweep requests stay owed", connection=name, error=str(exc))

    async def _metadata(
        self, name: str, client: AutotaskClient, entities: Iterable[str]
    ) -> _Cached:
        wanted = tuple(entities)
        cached = self._cache.get(name)
        now = time.monotonic()
        if (
            cached is not None
            and cached.expires > now
            and set(wanted) <= set(cached.metadata) | set(cached.refused)
        ):
            return cached
        metadata, refused = await observed.read_metadata(client, wanted)
        api_user = await observed.find_api_user(client)
        fresh = _Cached(now + self.metadata_ttl.total_seconds(), metadata, refused, api_user)
        if self.metadata_ttl > timedelta(0):
            self._cache[name] = fresh
        return fresh

    def forget(self, connection: str) -> None:
        """Drop what is cached about ``connection`` (its credentials or scope changed)."""
        self._cache.pop(connection, None)


def _webhooks_needed(observation: Observation, the_plan: Plan) -> int:
    """Webhooks the API user will own after the plan: for the 'maximum reached' message."""
    owner = observation.api_user_resource_id
    owned = sum(
        1
        for w in observation.actual.webhooks
        if owner is None or w.owner_resource_id in (owner, None)
    )
    creates = sum(1 for s in the_plan.steps if isinstance(s, CreateWebhook))
    deletes = sum(1 for s in the_plan.steps if isinstance(s, DeleteWebhook))
    return max(owned - deletes + creates, creates)


def _publish_states(observation: Observation, report: ApplyReport, *, teardown: bool) -> None:
    """``provisioner_webhooks``: each entity's state now (the chain's success included)."""
    name = observation.connection
    desired = observation.desired
    failed = report.failed_entities()
    for spec in webhook_entities():
        entity = spec.rest_name
        keeper = next(
            (
                w
                for w in observation.actual.webhooks
                if w.entity == entity and _is_keeper(observation, w.webhook_id, entity)
            ),
            None,
        )
        if teardown or (entity not in desired.webhooks and entity not in desired.blocked):
            state = None
        elif entity in desired.blocked:
            state = "blocked"
        elif entity not in failed:
            state = "active"
        elif keeper is None:
            state = "missing"
        else:
            state = (
                "inactive" if not keeper.active else ("not_ready" if not keeper.ready else "active")
            )
        for candidate in WEBHOOK_STATES:
            PROVISIONER_WEBHOOKS.labels(name, entity, candidate).set(1 if candidate == state else 0)


def _is_keeper(observation: Observation, webhook_id: int, entity: str) -> bool:
    return any(
        r.entity == entity and r.webhook_id == webhook_id for r in observation.actual.registrations
    )


__all__ = ["CLIENT_CONFIG", "Observation", "PassResult", "Provisioner"]

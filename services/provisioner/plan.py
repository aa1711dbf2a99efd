"""Desired + actual → the ordered steps that make a connection's webhooks match: pure.

Per entity the planner keeps at most one webhook of this connection (the *keeper*):

1. the webhook whose id the live registration recorded; else
2. the webhook whose callout URL ends in the registration's id (it was created, then the
   process died before recording the id: adopt it); else
3. none: create one, reusing a pending registration if there is one (its id and secret are
   what a webhook created and lost in a crash would already carry).

Every other webhook with this connection's name for the entity is a duplicate (a retried set-up,
a copy made by hand, one whose registration is gone so nobody knows its secret) and is deleted
once the keeper is healthy. Webhooks named otherwise are never touched, whoever made them.

Steps of one entity form a chain executed in order, each chain on its own webhook root: add
exclusions first (so the API user's writes never echo, even for a moment), then add and fix
fields (so the webhook stays ready throughout), then remove what is no longer wanted, fix the
webhook's URL, events and e-mail, reactivate it, rotate or finish rotating its secret, record the
registration as active, request a catch-up sweep when events may have been lost, and delete
duplicates. A plan for a connection already as desired is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from services.provisioner import naming
from services.provisioner.actual import ActualChild, ActualState, ActualWebhook
from services.provisioner.desired import DesiredState, DesiredWebhook, FieldChoice
from services.provisioner.store import RegistrationSummary
from shared.entities import by_webhook_root, webhook_entities
from shared.registrations import RegistrationState

_EVENT_KEYS = (
    "isSubscribedToCreateEvents",
    "isSubscribedToUpdateEvents",
    "isSubscribedToDeleteEvents",
)


# --- steps ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """One change. ``webhook_id`` None means "the webhook this plan creates for the entity";
    ``registration_id`` None means "the registration this plan creates"."""

    entity: str
    kind: ClassVar[str] = "step"
    writes_autotask: ClassVar[bool] = True

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CreateWebhook(Step):
    webhook: DesiredWebhook
    registration_id: str | None = None
    kind: ClassVar[str] = "create_webhook"

    def describe(self) -> str:
        events = ", ".join(sorted(self.webhook.events))
        return f"create webhook {self.webhook.name!r} ({events} events, active)"


@dataclass(frozen=True, slots=True)
class UpdateWebhook(Step):
    webhook_id: int = 0
    changes: tuple[tuple[str, Any], ...] = ()
    kind: ClassVar[str] = "update_webhook"

    def describe(self) -> str:
        shown = ", ".join(f"{name}={_shown(name, value)}" for name, value in self.changes)
        return f"update webhook {self.webhook_id}: {shown}"


@dataclass(frozen=True, slots=True)
class Reactivate(Step):
    webhook_id: int = 0
    registration_id: str = ""
    kind: ClassVar[str] = "reactivate"

    def describe(self) -> str:
        return f"reactivate webhook {self.webhook_id}"


@dataclass(frozen=True, slots=True)
class AddField(Step):
    webhook_id: int | None = None
    udf: bool = False
    field_id: int = 0
    name: str = ""
    subscribed: bool = False
    display_always: bool = False
    kind: ClassVar[str] = "add_field"

    def describe(self) -> str:
        return f"add {_field_text(self.udf, self.name, self.subscribed, self.display_always)}"


@dataclass(frozen=True, slots=True)
class UpdateField(Step):
    webhook_id: int = 0
    udf: bool = False
    child_id: int = 0
    field_id: int = 0
    name: str = ""
    subscribed: bool = False
    display_always: bool = False
    kind: ClassVar[str] = "update_field"

    def describe(self) -> str:
        return f"set {_field_text(self.udf, self.name, self.subscribed, self.display_always)}"


@dataclass(frozen=True, slots=True)
class RemoveField(Step):
    webhook_id: int = 0
    udf: bool = False
    child_id: int = 0
    field_id: int = 0
    name: str = ""
    kind: ClassVar[str] = "remove_field"

    def describe(self) -> str:
        what = "UDF field" if self.udf else "field"
        return f"remove {what} {self.name or self.field_id}"


@dataclass(frozen=True, slots=True)
class AddExclusion(Step):
    webhook_id: int | None = None
    resource_id: int = 0
    kind: ClassVar[str] = "add_exclusion"

    def describe(self) -> str:
        return f"exclude resource {self.resource_id} (its changes do not call back)"


@dataclass(frozen=True, slots=True)
class RemoveExclusion(Step):
    webhook_id: int = 0
    child_id: int = 0
    resource_id: int = 0
    kind: ClassVar[str] = "remove_exclusion"

    def describe(self) -> str:
        return f"stop excluding resource {self.resource_id}"


@dataclass(frozen=True, slots=True)
class DeleteWebhook(Step):
    webhook_id: int = 0
    name: str = ""
    reason: str = "duplicate"
    """``duplicate``, ``orphan`` (its entity is no longer wanted) or ``teardown``."""
    kind: ClassVar[str] = "delete_webhook"

    def describe(self) -> str:
        return f"delete webhook {self.webhook_id} {self.name!r} ({self.reason})"


@dataclass(frozen=True, slots=True)
class RotateSecret(Step):
    webhook_id: int = 0
    registration_id: str = ""
    resume: bool = False
    """Send the registration's current secret again (a rotation was interrupted)."""
    kind: ClassVar[str] = "rotate_secret"

    def describe(self) -> str:
        if self.resume:
            return f"finish the interrupted secret rotation of webhook {self.webhook_id}"
        return f"rotate the secret of webhook {self.webhook_id} (the old one verifies a while)"


@dataclass(frozen=True, slots=True)
class EndRotation(Step):
    registration_id: str = ""
    kind: ClassVar[str] = "end_rotation"
    writes_autotask: ClassVar[bool] = False

    def describe(self) -> str:
        return "forget the previous secret (its overlap is over)"


@dataclass(frozen=True, slots=True)
class RecordRegistration(Step):
    webhook: DesiredWebhook
    registration_id: str | None = None
    webhook_id: int | None = None
    guid: str | None = None
    kind: ClassVar[str] = "record"
    writes_autotask: ClassVar[bool] = False

    def describe(self) -> str:
        which = "the new webhook" if self.webhook_id is None else f"webhook {self.webhook_id}"
        return f"record the registration as active for {which}"


@dataclass(frozen=True, slots=True)
class RetireRegistration(Step):
    registration_id: str = ""
    kind: ClassVar[str] = "retire"
    writes_autotask: ClassVar[bool] = False

    def describe(self) -> str:
        return "retire the registration (its callout path stops answering)"


@dataclass(frozen=True, slots=True)
class RequestSweep(Step):
    since: datetime | None = None
    reason: str = ""
    """``created``, ``recreated``, ``reactivated``, ``readied`` or ``repaired``."""
    kind: ClassVar[str] = "request_sweep"
    writes_autotask: ClassVar[bool] = False

    def describe(self) -> str:
        start = self.since.isoformat(timespec="seconds") if self.since else "its watermark"
        return f"request a catch-up sweep from {start} ({self.reason})"


STEP_KINDS: tuple[type[Step], ...] = (
    CreateWebhook,
    UpdateWebhook,
    Reactivate,
    AddField,
    UpdateField,
    RemoveField,
    AddExclusion,
    RemoveExclusion,
    DeleteWebhook,
    RotateSecret,
    EndRotation,
    RecordRegistration,
    RetireRegistration,
    RequestSweep,
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps for one connection, in order, and what could not be planned."""

    connection: str
    steps: tuple[Step, ...] = ()
    blocked: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def autotask_writes(self) -> int:
        return sum(1 for step in self.steps if step.writes_autotask)

    def chains(self) -> dict[str, list[Step]]:
        """Steps grouped by entity, each group in order (one chain per webhook root)."""
        grouped: dict[str, list[Step]] = {}
        for step in self.steps:
            grouped.setdefault(step.entity, []).append(step)
        return grouped


# --- planning -------------------------------------------------------------------------------
def plan(
    *,
    desired: DesiredState,
    actual: ActualState,
    now: datetime,
    rotate: Iterable[str] = (),
) -> Plan:
    """The plan that makes ``actual`` match ``desired``; ``rotate`` names entities whose secret
    should be rotated. An empty ``desired`` tears everything of the connection down."""
    connection = desired.connection
    rotating = frozenset(rotate)
    registrations = {r.entity: r for r in actual.registrations}
    unread = {by_webhook_root(root).rest_name for root in actual.unread_roots}
    steps: list[Step] = []
    notes: list[str] = []
    for spec in webhook_entities():
        entity = spec.rest_name
        if entity in desired.blocked or entity in unread:
            continue
        ours = [
            w
            for w in actual.webhooks
            if w.entity == entity and naming.is_ours(w.name, connection=connection, entity=entity)
        ]
        registration = registrations.get(entity)
        wanted = desired.webhooks.get(entity)
        if wanted is None:
            steps += _removal(entity, ours, registration, desired)
        else:
            steps += _entity(
                wanted, ours, registration, now, rotate=entity in rotating, notes=notes
            )
    blocked = dict(desired.blocked)
    for entity in unread:
        blocked.setdefault(entity, "its webhooks could not be read")
    return Plan(connection, tuple(steps), blocked, (*desired.notes, *notes))


def _removal(
    entity: str,
    ours: Sequence[ActualWebhook],
    registration: RegistrationSummary | None,
    desired: DesiredState,
) -> list[Step]:
    reason = "orphan" if desired.webhooks or desired.blocked else "teardown"
    steps: list[Step] = [
        DeleteWebhook(entity, webhook_id=w.webhook_id, name=w.name, reason=reason)
        for w in sorted(ours, key=lambda w: w.webhook_id)
    ]
    if registration is not None:
        steps.append(RetireRegistration(entity, registration_id=registration.registration_id))
    return steps


def _entity(
    wanted: DesiredWebhook,
    ours: Sequence[ActualWebhook],
    registration: RegistrationSummary | None,
    now: datetime,
    *,
    rotate: bool,
    notes: list[str],
) -> list[Step]:
    entity = wanted.entity
    keeper = keeper_of(ours, registration)
    duplicates = sorted((w for w in ours if w is not keeper), key=lambda w: w.webhook_id)
    steps: list[Step] = []
    if keeper is None or registration is None:
        steps += _create(wanted, registration, now)
    else:
        steps += _repair(wanted, keeper, registration, now, rotate=rotate, notes=notes)
    steps += [
        DeleteWebhook(entity, webhook_id=w.webhook_id, name=w.name, reason="duplicate")
        for w in duplicates
    ]
    return steps


def keeper_of(
    ours: Sequence[ActualWebhook], registration: RegistrationSummary | None
) -> ActualWebhook | None:
    """Which of the connection's webhooks for an entity the registration belongs to."""
    if registration is None:
        return None
    by_id = [w for w in ours if w.webhook_id == registration.webhook_id]
    if by_id:  # id-truthiness: ok a list of webhooks: empty means none matched
        return by_id[0]
    by_url = sorted(
        (w for w in ours if naming.registration_in(w.webhook_url) == registration.registration_id),
        key=lambda w: w.webhook_id,
    )
    return by_url[0] if by_url else None


def _create(
    wanted: DesiredWebhook, registration: RegistrationSummary | None, now: datetime
) -> list[Step]:
    entity = wanted.entity
    reg_id = registration.registration_id if registration is not None else None
    steps: list[Step] = [CreateWebhook(entity, webhook=wanted, registration_id=reg_id)]
    if registration is not None and _overlap_over(registration, now):
        steps.append(EndRotation(entity, registration_id=registration.registration_id))
    steps += [AddExclusion(entity, resource_id=r) for r in sorted(wanted.excluded_resources)]
    steps += [_add(entity, None, choice, udf=False) for choice in wanted.fields]
    steps += [_add(entity, None, choice, udf=True) for choice in wanted.udf_fields]
    steps.append(RecordRegistration(entity, webhook=wanted, registration_id=reg_id))
    had_webhook = registration is not None and (
        registration.webhook_id is not None or registration.last_callout_at is not None
    )
    if had_webhook:
        assert registration is not None
        steps.append(RequestSweep(entity, since=_gap_start(registration), reason="recreated"))
    else:
        steps.append(RequestSweep(entity, since=None, reason="created"))
    return steps


def _repair(
    wanted: DesiredWebhook,
    keeper: ActualWebhook,
    registration: RegistrationSummary,
    now: datetime,
    *,
    rotate: bool,
    notes: list[str],
) -> list[Step]:
    entity = wanted.entity
    webhook_id = keeper.webhook_id
    reg_id = registration.registration_id
    steps: list[Step] = []
    lost: list[str] = []  # why events may have been missed

    have_excluded = _by_target(keeper.excluded)
    steps += [
        AddExclusion(entity, webhook_id=webhook_id, resource_id=r)
        for r in sorted(wanted.excluded_resources - have_excluded.keys())
    ]
    removals: list[Step] = []
    for udf, choices, have in (
        (False, wanted.fields, keeper.fields),
        (True, wanted.udf_fields, keeper.udf_fields),
    ):
        field_steps, field_removals, newly_subscribed = _field_diff(
            entity, webhook_id, choices, have, udf=udf
        )
        steps += field_steps
        removals += field_removals
        if newly_subscribed:
            lost.append("repaired")
    steps += removals
    steps += [
        RemoveExclusion(entity, webhook_id=webhook_id, child_id=child.child_id, resource_id=r)
        for r, child in sorted(have_excluded.items())
        if r not in wanted.excluded_resources
    ]
    steps += [
        RemoveExclusion(entity, webhook_id=webhook_id, child_id=c.child_id, resource_id=c.target)
        for c in _extra_rows(keeper.excluded)
    ]

    changes = _property_changes(wanted.properties(reg_id), keeper)
    if changes:
        steps.append(UpdateWebhook(entity, webhook_id=webhook_id, changes=changes))
        changed = dict(changes)
        if "webhookUrl" in changed or any(changed.get(k) is True for k in _EVENT_KEYS):
            lost.append("repaired")
    if not keeper.active:
        steps.append(Reactivate(entity, webhook_id=webhook_id, registration_id=reg_id))
        lost.insert(0, "reactivated")
    elif not keeper.ready:
        if any(
            isinstance(s, AddField | UpdateField) and s.subscribed for s in steps
        ):  # restoring a subscription is what makes it ready again
            lost.insert(0, "readied")
        else:
            notes.append(
                f"{entity} webhook {webhook_id} is active but Autotask says it is not ready "
                "although it has its subscribed fields; no callouts arrive until it is: check "
                "it in Autotask, or delete it and let the next pass create it again"
            )

    if registration.secret_unconfirmed:
        steps.append(
            RotateSecret(entity, webhook_id=webhook_id, registration_id=reg_id, resume=True)
        )
    elif rotate:
        steps.append(RotateSecret(entity, webhook_id=webhook_id, registration_id=reg_id))
    elif _overlap_over(registration, now):
        steps.append(EndRotation(entity, registration_id=reg_id))

    changed_autotask = any(step.writes_autotask for step in steps)
    if (
        changed_autotask
        or registration.state is not RegistrationState.ACTIVE
        or registration.webhook_id != webhook_id
        or registration.desired_hash != wanted.digest(reg_id)
        or (keeper.guid is not None and registration.webhook_guid != keeper.guid)
    ):
        steps.append(
            RecordRegistration(
                entity,
                webhook=wanted,
                registration_id=reg_id,
                webhook_id=webhook_id,
                guid=keeper.guid,
            )
        )
    if lost:
        steps.append(RequestSweep(entity, since=_gap_start(registration), reason=lost[0]))
    return steps


def _property_changes(
    properties: Mapping[str, Any], keeper: ActualWebhook
) -> tuple[tuple[str, Any], ...]:
    current: dict[str, Any] = {
        "webhookUrl": keeper.webhook_url,
        "deactivationUrl": keeper.deactivation_url,
        "isSubscribedToCreateEvents": "create" in keeper.events,
        "isSubscribedToUpdateEvents": "update" in keeper.events,
        "isSubscribedToDeleteEvents": "delete" in keeper.events,
        "sendThresholdExceededNotification": keeper.threshold_notifications,
        "notificationEmailAddress": keeper.notification_email,
    }
    return tuple(
        (name, properties[name])
        for name, value in current.items()
        if _normal(properties[name]) != _normal(value)
    )


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _field_diff(
    entity: str,
    webhook_id: int,
    choices: Sequence[FieldChoice],
    have: Sequence[ActualChild],
    *,
    udf: bool,
) -> tuple[list[Step], list[Step], bool]:
    """(adds and updates, removals, whether a subscription had to be restored)."""
    current = _by_target(have)
    wanted = {choice.field_id: choice for choice in choices}
    changes: list[Step] = []
    removals: list[Step] = []
    restored = False
    for field_id, choice in sorted(wanted.items()):
        row = current.get(field_id)
        if row is None:
            changes.append(_add(entity, webhook_id, choice, udf=udf))
            restored = restored or choice.subscribed
        elif (row.subscribed, row.display_always) != (choice.subscribed, choice.display_always):
            changes.append(
                UpdateField(
                    entity,
                    webhook_id=webhook_id,
                    udf=udf,
                    child_id=row.child_id,
                    field_id=field_id,
                    name=choice.name,
                    subscribed=choice.subscribed,
                    display_always=choice.display_always,
                )
            )
            restored = restored or (choice.subscribed and not row.subscribed)
    for field_id, row in sorted(current.items()):
        if field_id not in wanted:
            removals.append(_remove(entity, webhook_id, row, udf=udf))
    removals += [_remove(entity, webhook_id, row, udf=udf) for row in _extra_rows(have)]
    return changes, removals, restored


def _add(entity: str, webhook_id: int | None, choice: FieldChoice, *, udf: bool) -> AddField:
    return AddField(
        entity,
        webhook_id=webhook_id,
        udf=udf,
        field_id=choice.field_id,
        name=choice.name,
        subscribed=choice.subscribed,
        display_always=choice.display_always,
    )


def _remove(entity: str, webhook_id: int, row: ActualChild, *, udf: bool) -> RemoveField:
    return RemoveField(
        entity, webhook_id=webhook_id, udf=udf, child_id=row.child_id, field_id=row.target
    )


def _by_target(rows: Iterable[ActualChild]) -> dict[int, ActualChild]:
    """The first row (lowest child id) per target; :func:`_extra_rows` are the rest."""
    found: dict[int, ActualChild] = {}
    for row in sorted(rows, key=lambda r: r.child_id):
        found.setdefault(row.target, row)
    return found


def _extra_rows(rows: Iterable[ActualChild]) -> list[ActualChild]:
    first = {row.child_id for row in _by_target(rows).values()}
    return [row for row in sorted(rows, key=lambda r: r.child_id) if row.child_id not in first]


def _overlap_over(registration: RegistrationSummary, now: datetime) -> bool:
    """The previous secret stopped verifying: the registration may forget it."""
    until = registration.previous_valid_until
    return registration.has_previous_secret and until is not None and until <= now


def _gap_start(registration: RegistrationSummary) -> datetime | None:
    """Since when events may have been lost: the last callout the gateway accepted, else the
    registration's creation (a gap is never narrowed on a guess)."""
    return registration.last_callout_at or registration.created_at


def _field_text(udf: bool, name: str, subscribed: bool, display: bool) -> str:
    roles = [r for r, on in (("subscribed", subscribed), ("display-always", display)) if on]
    what = "UDF field" if udf else "field"
    return f"{what} {name} ({', '.join(roles) or 'neither subscribed nor displayed'})"


def _shown(name: str, value: Any) -> str:
    if name in ("webhookUrl", "deactivationUrl") and isinstance(value, str):
        # The registration id in the path is unguessable on purpose: show only its start.
        head, _, tail = value.rpartition("/")
        return f"{head}/{tail[:6]}…" if tail else value
    return repr(value)


__all__ = [
    "STEP_KINDS",
    "AddExclusion",
    "AddField",
    "CreateWebhook",
    "DeleteWebhook",
    "EndRotation",
    "Plan",
    "Reactivate",
    "RecordRegistration",
    "RemoveExclusion",
    "RemoveField",
    "RequestSweep",
    "RetireRegistration",
    "RotateSecret",
    "Step",
    "UpdateField",
    "UpdateWebhook",
    "keeper_of",
    "plan",
]

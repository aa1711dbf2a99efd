"""A model of a tenant's webhooks and the registrations, for testing the pure planner.

``apply_plan`` plays a plan's steps against an :class:`ActualState` the way Autotask and the
executor would (new ids, ``isReady`` once a subscribed field exists, a registration created on
demand), and fails loudly when a step names something that does not exist, which the real
executor would trip on too. ``builders`` make desired webhooks without a tenant.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from services.provisioner import naming
from services.provisioner.actual import ActualChild, ActualState, ActualWebhook
from services.provisioner.desired import DesiredState, DesiredWebhook, FieldChoice
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
    UpdateField,
    UpdateWebhook,
)
from services.provisioner.store import RegistrationSummary
from shared.entities import by_rest_name, by_webhook_root
from shared.registrations import RegistrationState

GATEWAY = "https://hooks.example.com"
OVERLAP = timedelta(minutes=10)
_EVENT_KEYS = {
    "isSubscribedToCreateEvents": "create",
    "isSubscribedToUpdateEvents": "update",
    "isSubscribedToDeleteEvents": "delete",
}


def desired_webhook(
    connection: str,
    entity: str,
    *,
    fields: Iterable[FieldChoice] = (FieldChoice(1, "title", True, False),),
    udf_fields: Iterable[FieldChoice] = (),
    excluded: Iterable[int] = (),
    events: Iterable[str] = ("create", "update", "delete"),
    email: str | None = None,
    gateway: str = GATEWAY,
) -> DesiredWebhook:
    root = by_rest_name(entity).webhook_root
    assert root is not None
    return DesiredWebhook(
        entity=entity,
        root=root,
        name=naming.webhook_name(connection, entity),
        gateway_url=gateway,
        events=frozenset(events),  # type: ignore[arg-type]
        notification_email=email,
        threshold_notifications=email is not None,
        fields=tuple(sorted(fields)),
        udf_fields=tuple(sorted(udf_fields)) if root != "TicketNoteWebhooks" else (),
        excluded_resources=frozenset(excluded),
        has_udf_child=by_webhook_root(root).webhook_udf_child,
    )


def rendered(webhook: DesiredWebhook, *, webhook_id: int, registration_id: str) -> ActualWebhook:
    """The webhook exactly as desired, as Autotask would show it."""
    ids = itertools.count(1)
    properties = webhook.properties(registration_id)
    return ActualWebhook(
        entity=webhook.entity,
        root=webhook.root,
        webhook_id=webhook_id,
        name=webhook.name,
        webhook_url=properties["webhookUrl"],
        deactivation_url=properties["deactivationUrl"],
        active=True,
        ready=any(f.subscribed for f in (*webhook.fields, *webhook.udf_fields)),
        events=webhook.events,
        notification_email=webhook.notification_email,
        threshold_notifications=webhook.threshold_notifications,
        guid=f"guid-{webhook.root}-{webhook_id}",
        fields=tuple(
            ActualChild(f.field_id, next(ids), f.subscribed, f.display_always)
            for f in webhook.fields
        ),
        udf_fields=tuple(
            ActualChild(f.field_id, next(ids), f.subscribed, f.display_always)
            for f in webhook.udf_fields
        ),
        excluded=tuple(ActualChild(r, next(ids)) for r in sorted(webhook.excluded_resources)),
    )


def in_sync(desired: DesiredState) -> ActualState:
    """An actual state that already is ``desired`` (webhooks and registrations)."""
    webhooks = []
    registrations = []
    for number, webhook in enumerate(desired.webhooks.values(), start=1):
        registration_id = f"registration-{number:04d}-padding"
        actual = rendered(webhook, webhook_id=number, registration_id=registration_id)
        webhooks.append(actual)
        registrations.append(
            RegistrationSummary(
                registration_id=registration_id,
                connection=desired.connection,
                entity=webhook.entity,
                state=RegistrationState.ACTIVE,
                webhook_id=number,
                webhook_guid=actual.guid,
                desired_hash=webhook.digest(registration_id),
            )
        )
    return ActualState(desired.connection, tuple(webhooks), tuple(registrations))


class ModelError(AssertionError):
    """A step named something that is not there: the executor would fail on it too."""


def apply_plan(actual: ActualState, plan: Plan, *, now: datetime) -> ActualState:
    """``actual`` after every step of ``plan`` succeeded."""
    webhooks = {(w.root, w.webhook_id): w for w in actual.webhooks}
    registrations = {r.entity: r for r in actual.registrations}
    child_ids = itertools.count(10_000)
    numbers = itertools.count(1)
    created: dict[str, int] = {}
    created_registration: dict[str, str] = {}

    def next_webhook_id(root: str) -> int:
        return max((i for r, i in webhooks if r == root), default=0) + 1

    def target(entity: str, webhook_id: int | None) -> tuple[str, int]:
        root = by_rest_name(entity).webhook_root
        assert root is not None
        found = webhook_id if webhook_id is not None else created.get(entity)
        if found is None or (root, found) not in webhooks:
            raise ModelError(f"{entity} webhook {webhook_id} does not exist")
        return root, found

    def with_ready(webhook: ActualWebhook) -> ActualWebhook:
        ready = any(c.subscribed for c in (*webhook.fields, *webhook.udf_fields))
        return replace(webhook, ready=ready)

    for step in plan.steps:
        entity = step.entity
        if isinstance(step, CreateWebhook):
            registration = registrations.get(entity)
            if step.registration_id is None:
                if registration is not None:
                    raise ModelError("a second live registration for one entity")
                registration_id = f"created-{next(numbers):04d}-registration"
                registrations[entity] = RegistrationSummary(
                    registration_id, actual.connection, entity, RegistrationState.PENDING
                )
            else:
                if registration is None or registration.registration_id != step.registration_id:
                    raise ModelError("create names a registration that is not live")
                registration_id = step.registration_id
            created_registration[entity] = registration_id
            root = step.webhook.root
            webhook_id = next_webhook_id(root)
            properties = step.webhook.properties(registration_id)
            webhooks[(root, webhook_id)] = ActualWebhook(
                entity=entity,
                root=root,
                webhook_id=webhook_id,
                name=properties["name"],
                webhook_url=properties["webhookUrl"],
                deactivation_url=properties["deactivationUrl"],
                active=True,
                ready=False,
                events=frozenset(v for k, v in _EVENT_KEYS.items() if properties[k]),  # type: ignore[misc]
                notification_email=properties["notificationEmailAddress"],
                threshold_notifications=properties["sendThresholdExceededNotification"],
                guid=f"guid-{root}-{webhook_id}",
            )
            created[entity] = webhook_id
            # Autotask now holds the registration's current secret.
            registrations[entity] = replace(
                registrations[entity], webhook_id=webhook_id, secret_unconfirmed=False
            )
        elif isinstance(step, AddField):
            key = target(entity, step.webhook_id)
            webhook = webhooks[key]
            child = ActualChild(
                step.field_id, next(child_ids), step.subscribed, step.display_always
            )
            attribute = "udf_fields" if step.udf else "fields"
            rows = getattr(webhook, attribute)
            if any(r.target == step.field_id for r in rows):
                raise ModelError(f"field {step.field_id} is already on the webhook")
            webhooks[key] = with_ready(replace(webhook, **{attribute: (*rows, child)}))
        elif isinstance(step, UpdateField | RemoveField):
            key = target(entity, step.webhook_id)
            webhook = webhooks[key]
            attribute = "udf_fields" if step.udf else "fields"
            rows = list(getattr(webhook, attribute))
            if not any(r.child_id == step.child_id for r in rows):
                raise ModelError(f"child {step.child_id} is not on the webhook")
            if isinstance(step, UpdateField):
                rows = [
                    replace(r, subscribed=step.subscribed, display_always=step.display_always)
                    if r.child_id == step.child_id
                    else r
                    for r in rows
                ]
            else:
                rows = [r for r in rows if r.child_id != step.child_id]
            webhooks[key] = with_ready(replace(webhook, **{attribute: tuple(rows)}))
        elif isinstance(step, AddExclusion):
            key = target(entity, step.webhook_id)
            webhook = webhooks[key]
            if any(r.target == step.resource_id for r in webhook.excluded):
                raise ModelError(f"resource {step.resource_id} is already excluded")
            child = ActualChild(step.resource_id, next(child_ids))
            webhooks[key] = replace(webhook, excluded=(*webhook.excluded, child))
        elif isinstance(step, RemoveExclusion):
            key = target(entity, step.webhook_id)
            webhook = webhooks[key]
            if not any(r.child_id == step.child_id for r in webhook.excluded):
                raise ModelError(f"exclusion {step.child_id} is not on the webhook")
            rows = tuple(r for r in webhook.excluded if r.child_id != step.child_id)
            webhooks[key] = replace(webhook, excluded=rows)
        elif isinstance(step, UpdateWebhook):
            key = target(entity, step.webhook_id)
            changes = dict(step.changes)
            webhook = webhooks[key]
            events = set(webhook.events)
            for flag, event in _EVENT_KEYS.items():
                if flag in changes:
                    (events.add if changes[flag] else events.discard)(event)
            webhooks[key] = replace(
                webhook,
                webhook_url=changes.get("webhookUrl", webhook.webhook_url),
                deactivation_url=changes.get("deactivationUrl", webhook.deactivation_url),
                events=frozenset(events),  # type: ignore[arg-type]
                notification_email=changes.get(
                    "notificationEmailAddress", webhook.notification_email
                ),
                threshold_notifications=changes.get(
                    "sendThresholdExceededNotification", webhook.threshold_notifications
                ),
            )
        elif isinstance(step, Reactivate):
            key = target(entity, step.webhook_id)
            webhooks[key] = replace(webhooks[key], active=True)
        elif isinstance(step, DeleteWebhook):
            key = target(entity, step.webhook_id)
            del webhooks[key]
        elif isinstance(step, RotateSecret):
            target(entity, step.webhook_id)
            registration = _registration(registrations, entity, step.registration_id)
            registrations[entity] = replace(
                registration,
                secret_unconfirmed=False,
                has_previous_secret=True,
                previous_valid_until=now + OVERLAP,
            )
        elif isinstance(step, EndRotation):
            registration = _registration(registrations, entity, step.registration_id)
            registrations[entity] = replace(
                registration, has_previous_secret=False, previous_valid_until=None
            )
        elif isinstance(step, RecordRegistration):
            registration_id = step.registration_id or created_registration.get(entity)
            registration = _registration(registrations, entity, registration_id)
            webhook_id = step.webhook_id if step.webhook_id is not None else created.get(entity)
            root, found = target(entity, webhook_id)
            registrations[entity] = replace(
                registration,
                state=RegistrationState.ACTIVE,
                webhook_id=found,
                webhook_guid=webhooks[(root, found)].guid,
                desired_hash=step.webhook.digest(registration.registration_id),
            )
        elif isinstance(step, RetireRegistration):
            _registration(registrations, entity, step.registration_id)
            del registrations[entity]
        elif isinstance(step, RequestSweep):
            pass
        else:  # pragma: no cover - a new step kind must be modelled
            raise ModelError(f"unmodelled step {step!r}")
    return ActualState(
        actual.connection,
        tuple(sorted(webhooks.values(), key=lambda w: (w.root, w.webhook_id))),
        tuple(registrations.values()),
        actual.unread_roots,
    )


def _registration(
    registrations: dict[str, RegistrationSummary], entity: str, registration_id: str | None
) -> RegistrationSummary:
    found = registrations.get(entity)
    if found is None or found.registration_id != registration_id:
        raise ModelError(f"registration {registration_id} of {entity} is not live")
    return found

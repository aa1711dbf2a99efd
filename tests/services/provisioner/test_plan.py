"""The pure planner: examples of each kind of drift, then properties over generated states.

Properties (hypothesis): a plan applied to a model of the tenant reaches the desired state in one
pass (planning again gives nothing to do); a state already as desired plans nothing; webhooks
named otherwise are never touched; blocked entities and unreadable roots get no steps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.provisioner import naming
from services.provisioner.actual import ActualChild, ActualState, ActualWebhook
from services.provisioner.desired import DesiredState, FieldChoice
from services.provisioner.plan import (
    AddExclusion,
    AddField,
    CreateWebhook,
    DeleteWebhook,
    EndRotation,
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
    plan,
)
from services.provisioner.store import RegistrationSummary
from shared.entities import webhook_entities
from shared.registrations import RegistrationState
from tests.services.provisioner.model import (
    GATEWAY,
    apply_plan,
    desired_webhook,
    in_sync,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONNECTION = "acme"
ENTITIES = [spec.rest_name for spec in webhook_entities()]
TITLE = FieldChoice(701, "title", True, False)
NUMBER = FieldChoice(700, "ticketNumber", True, True)


def kinds(steps: tuple[Step, ...] | list[Step]) -> list[str]:
    return [step.kind for step in steps]


def tickets_desired(**options: object) -> DesiredState:
    webhook = desired_webhook(
        CONNECTION,
        "Tickets",
        fields=(NUMBER, TITLE),
        udf_fields=(FieldChoice(29682800, "External Reference", True, True),),
        excluded=(42,),
        **options,  # type: ignore[arg-type]
    )
    return DesiredState(CONNECTION, {"Tickets": webhook})


def registration(entity: str = "Tickets", **fields: object) -> RegistrationSummary:
    values: dict[str, object] = {
        "registration_id": "registration-0001-padding",
        "connection": CONNECTION,
        "entity": entity,
        "state": RegistrationState.ACTIVE,
        "webhook_id": 1,
        "created_at": NOW - timedelta(days=3),
        "last_callout_at": NOW - timedelta(hours=2),
    }
    values.update(fields)
    return RegistrationSummary(**values)  # type: ignore[arg-type]


def foreign(webhook_id: int, name: str, root: str = "TicketWebhooks") -> ActualWebhook:
    entity = {s.webhook_root: s.rest_name for s in webhook_entities()}[root]
    return ActualWebhook(entity, root, webhook_id, name, webhook_url="https://other.example/x")


# --- examples -------------------------------------------------------------------------------
def test_nothing_there_creates_the_webhook_exclusions_first_then_fields_then_records():
    steps = plan(desired=tickets_desired(), actual=ActualState(CONNECTION), now=NOW).steps
    assert kinds(steps) == [
        "create_webhook",
        "add_exclusion",
        "add_field",
        "add_field",
        "add_field",
        "record",
        "request_sweep",
    ]
    assert steps[-1] == RequestSweep("Tickets", since=None, reason="created")
    assert [s.udf for s in steps if isinstance(s, AddField)] == [False, False, True]


def test_a_connection_already_as_desired_plans_nothing():
    desired = tickets_desired()
    assert plan(desired=desired, actual=in_sync(desired), now=NOW).empty


def test_a_field_removed_by_hand_is_added_back_and_a_sweep_covers_the_gap():
    desired = tickets_desired()
    actual = in_sync(desired)
    keeper = actual.webhooks[0]
    actual = replace(actual, webhooks=(replace(keeper, fields=keeper.fields[:1]),))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert kinds(steps) == ["add_field", "record", "request_sweep"]
    assert steps[0] == AddField(
        "Tickets", webhook_id=1, field_id=701, name="title", subscribed=True
    )
    last_callout = actual.registrations[0].last_callout_at
    assert steps[-1] == RequestSweep("Tickets", since=last_callout, reason="repaired")


def test_a_display_always_change_needs_no_sweep():
    desired = tickets_desired()
    actual = in_sync(desired)
    keeper = actual.webhooks[0]
    fields = tuple(replace(f, display_always=False) for f in keeper.fields)
    actual = replace(actual, webhooks=(replace(keeper, fields=fields),))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert kinds(steps) == ["update_field", "record"]
    assert isinstance(steps[0], UpdateField)
    assert steps[0].display_always


def test_a_deactivated_webhook_is_reactivated_and_the_gap_since_the_last_callout_swept():
    desired = tickets_desired()
    actual = in_sync(desired)
    last = NOW - timedelta(hours=5)
    actual = replace(
        actual,
        webhooks=(replace(actual.webhooks[0], active=False),),
        registrations=(replace(actual.registrations[0], last_callout_at=last),),
    )
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert kinds(steps) == ["reactivate", "record", "request_sweep"]
    assert steps[-1] == RequestSweep("Tickets", since=last, reason="reactivated")


def test_a_deleted_webhook_is_created_again_with_the_same_registration():
    desired = tickets_desired()
    actual = in_sync(desired)
    reg = actual.registrations[0]
    actual = replace(actual, webhooks=(), registrations=(replace(reg, last_callout_at=None),))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    create = steps[0]
    assert isinstance(create, CreateWebhook)
    assert create.registration_id == reg.registration_id  # same callout path, same secret
    assert steps[-1] == RequestSweep("Tickets", since=reg.created_at, reason="recreated")


def test_a_duplicate_with_our_name_is_deleted_and_the_keeper_left_alone():
    desired = tickets_desired()
    actual = in_sync(desired)
    copy = replace(actual.webhooks[0], webhook_id=9, webhook_url=GATEWAY + "/v1/callouts/other")
    actual = replace(actual, webhooks=(*actual.webhooks, copy))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert steps == (DeleteWebhook("Tickets", webhook_id=9, name=copy.name, reason="duplicate"),)


def test_webhooks_named_otherwise_are_never_touched():
    desired = tickets_desired()
    actual = in_sync(desired)
    others = (
        foreign(50, "n8n Autotask trigger"),
        foreign(51, "autotask-sync:other-connection:Tickets"),
        foreign(52, "autotask-sync:acme:Tickets (copy)"),
        foreign(53, "autotask-sync:acme:Tickets", root="CompanyWebhooks"),  # wrong root
    )
    actual = replace(actual, webhooks=(*actual.webhooks, *others))
    assert plan(desired=desired, actual=actual, now=NOW).empty
    teardown = plan(desired=DesiredState(CONNECTION), actual=actual, now=NOW)
    assert {getattr(s, "webhook_id", None) for s in teardown.steps} == {1, None}


def test_a_webhook_created_but_not_recorded_before_a_crash_is_adopted_not_duplicated():
    desired = tickets_desired()
    actual = in_sync(desired)
    keeper = actual.webhooks[0]
    reg = replace(actual.registrations[0], state=RegistrationState.PENDING, webhook_id=None)
    half = replace(keeper, fields=(), udf_fields=(), excluded=(), ready=False)
    actual = replace(actual, webhooks=(half,), registrations=(reg,))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert "create_webhook" not in kinds(steps)
    record = next(s for s in steps if isinstance(s, RecordRegistration))
    assert record.webhook_id == keeper.webhook_id
    assert kinds(steps).count("add_field") == 3


def test_an_entity_no_longer_wanted_has_its_webhook_deleted_and_registration_retired():
    desired = tickets_desired()
    contacts = desired_webhook(CONNECTION, "Contacts")
    actual = in_sync(DesiredState(CONNECTION, {**desired.webhooks, "Contacts": contacts}))
    steps = plan(desired=desired, actual=actual, now=NOW).steps
    assert kinds(steps) == ["delete_webhook", "retire"]
    assert isinstance(steps[0], DeleteWebhook)
    assert steps[0].reason == "orphan"


def test_rotation_resumes_when_unconfirmed_and_ends_when_the_overlap_is_over():
    desired = tickets_desired()
    actual = in_sync(desired)
    reg = actual.registrations[0]

    def steps_for(**fields: object) -> list[str]:
        changed = replace(actual, registrations=(replace(reg, **fields),))  # type: ignore[arg-type]
        return kinds(plan(desired=desired, actual=changed, now=NOW, rotate=()).steps)

    assert kinds(plan(desired=desired, actual=actual, now=NOW, rotate=["Tickets"]).steps) == [
        "rotate_secret",
        "record",
    ]
    assert steps_for(secret_unconfirmed=True) == ["rotate_secret", "record"]
    expired = {"has_previous_secret": True, "previous_valid_until": NOW - timedelta(seconds=1)}
    assert steps_for(**expired) == ["end_rotation"]
    running = {"has_previous_secret": True, "previous_valid_until": NOW + timedelta(minutes=5)}
    assert steps_for(**running) == []


def test_a_webhook_not_ready_despite_its_fields_is_reported_not_swept_forever():
    desired = tickets_desired()
    actual = in_sync(desired)
    actual = replace(actual, webhooks=(replace(actual.webhooks[0], ready=False),))
    result = plan(desired=desired, actual=actual, now=NOW)
    assert result.empty
    assert "not ready" in result.notes[0]


def test_blocked_entities_and_unreadable_roots_are_left_alone():
    desired = tickets_desired()
    actual = replace(in_sync(desired), webhooks=())
    blocked = replace(desired, webhooks={}, blocked={"Tickets": "cannot read Tickets"})
    assert plan(desired=blocked, actual=actual, now=NOW).empty
    unread = replace(actual, unread_roots={"TicketWebhooks": "permission"})
    result = plan(desired=desired, actual=unread, now=NOW)
    assert result.empty
    assert "Tickets" in result.blocked


def test_url_events_and_email_drift_is_fixed_in_one_update():
    desired = tickets_desired(email="ops@example.com")
    actual = in_sync(desired)
    keeper = replace(
        actual.webhooks[0],
        webhook_url="https://old.example.com/hook",
        events=frozenset({"update"}),
        notification_email=None,
    )
    steps = plan(desired=desired, actual=replace(actual, webhooks=(keeper,)), now=NOW).steps
    update = steps[0]
    assert isinstance(update, UpdateWebhook)
    changes = dict(update.changes)
    assert changes["webhookUrl"].startswith(GATEWAY + "/v1/callouts/")
    assert changes["isSubscribedToCreateEvents"] is True
    assert changes["notificationEmailAddress"] == "ops@example.com"
    assert kinds(steps)[-1] == "request_sweep"


# --- properties -----------------------------------------------------------------------------
FIELD_UNIVERSE = [FieldChoice(700 + i, f"field{i}", False, False) for i in range(6)]
UDF_UNIVERSE = [FieldChoice(29682800 + i, f"Udf {i}", False, False) for i in range(3)]
RESOURCES = [4, 29682854, 29682855]


@st.composite
def choices(draw: st.DrawFn, universe: list[FieldChoice], *, need_subscribed: bool) -> tuple:
    picked = draw(st.lists(st.sampled_from(universe), unique=True, max_size=len(universe)))
    chosen = []
    for base in picked:
        subscribed = draw(st.booleans())
        display = draw(st.booleans()) or not subscribed
        chosen.append(replace(base, subscribed=subscribed, display_always=display))
    if need_subscribed and not any(c.subscribed for c in chosen):
        chosen.append(replace(FIELD_UNIVERSE[0], subscribed=True, display_always=False))
        chosen = list({c.field_id: c for c in chosen}.values())  # the subscribed one wins
    return tuple(sorted(chosen))


@st.composite
def desired_states(draw: st.DrawFn) -> DesiredState:
    entities = draw(st.lists(st.sampled_from(ENTITIES), unique=True))
    webhooks = {}
    blocked = {}
    for entity in entities:
        if draw(st.integers(0, 9)) == 0:
            blocked[entity] = "blocked in this example"
            continue
        webhooks[entity] = desired_webhook(
            CONNECTION,
            entity,
            fields=draw(choices(FIELD_UNIVERSE, need_subscribed=True)),
            udf_fields=draw(choices(UDF_UNIVERSE, need_subscribed=False)),
            excluded=draw(st.lists(st.sampled_from(RESOURCES), unique=True)),
            events=draw(
                st.lists(st.sampled_from(["create", "update", "delete"]), unique=True, min_size=1)
            ),
            email=draw(st.sampled_from([None, "ops@example.com"])),
            gateway=draw(st.sampled_from([GATEWAY, "https://new-hooks.example.com"])),
        )
    return DesiredState(CONNECTION, webhooks, blocked)


FIELD_TARGETS = st.lists(st.sampled_from([*(c.field_id for c in FIELD_UNIVERSE), 999]), max_size=5)
UDF_TARGETS = st.lists(st.sampled_from([*(c.field_id for c in UDF_UNIVERSE), 999]), max_size=3)
RESOURCE_TARGETS = st.lists(st.sampled_from([*RESOURCES, 999]), max_size=3)
FLAGS = st.lists(st.booleans(), min_size=10, max_size=10)
EVENTS = st.sets(st.sampled_from(["create", "update", "delete"]))


def children(
    draw: st.DrawFn, targets: st.SearchStrategy[list[int]], *, fields: bool, first_id: int
) -> tuple[ActualChild, ...]:
    """Rows for generated targets (repeats allowed: Autotask might hold a duplicate)."""
    chosen = draw(targets)
    flags = draw(FLAGS) if fields else [False] * 10
    return tuple(
        ActualChild(target, first_id + n, flags[2 * n % 10], flags[(2 * n + 1) % 10])
        for n, target in enumerate(chosen)
    )


@st.composite
def actual_states(draw: st.DrawFn) -> ActualState:
    webhooks: list[ActualWebhook] = []
    registrations: list[RegistrationSummary] = []
    for spec in webhook_entities():
        root, entity = spec.webhook_root, spec.rest_name
        assert root is not None
        registration_id = f"registration-{entity.lower()}-0001"
        count = draw(st.integers(0, 3))
        for number in range(1, count + 1):
            ours = draw(st.integers(0, 3)) > 0
            name = (
                naming.webhook_name(CONNECTION, entity)
                if ours
                else draw(
                    st.sampled_from(
                        [
                            "foreign hook",
                            "autotask-sync:other:" + entity,
                            naming.webhook_name(CONNECTION, entity) + "!",
                        ]
                    )
                )
            )
            url_id = draw(st.sampled_from([registration_id, "someone-else", ""]))
            webhooks.append(
                _readiness(
                    ActualWebhook(
                        entity=entity,
                        root=root,
                        webhook_id=number,
                        name=name,
                        webhook_url=naming.callout_url(GATEWAY, url_id)
                        if url_id
                        else "https://x/y",
                        deactivation_url=naming.deactivation_url(GATEWAY, url_id or "x"),
                        active=draw(st.booleans()),
                        events=frozenset(draw(EVENTS)),
                        notification_email=draw(
                            st.sampled_from([None, "ops@example.com", "old@x"])
                        ),
                        threshold_notifications=draw(st.booleans()),
                        guid=f"guid-{number}",
                        fields=children(draw, FIELD_TARGETS, fields=True, first_id=number * 100),
                        udf_fields=children(
                            draw, UDF_TARGETS, fields=True, first_id=number * 100 + 30
                        )
                        if root != "TicketNoteWebhooks"
                        else (),
                        excluded=children(
                            draw, RESOURCE_TARGETS, fields=False, first_id=number * 100 + 60
                        ),
                    )
                )
            )
        if draw(st.booleans()):
            previous = draw(st.booleans())
            registrations.append(
                RegistrationSummary(
                    registration_id=registration_id,
                    connection=CONNECTION,
                    entity=entity,
                    state=draw(st.sampled_from(list(RegistrationState)[:3])),
                    webhook_id=draw(st.sampled_from([None, 1, 2, 3, 77])),
                    desired_hash=draw(st.sampled_from([None, "stale"])),
                    secret_unconfirmed=draw(st.booleans()),
                    has_previous_secret=previous,
                    previous_valid_until=(NOW + timedelta(minutes=draw(st.integers(-20, 20))))
                    if previous
                    else None,
                    created_at=NOW - timedelta(days=1),
                    last_callout_at=draw(st.sampled_from([None, NOW - timedelta(hours=1)])),
                )
            )
    unread = draw(st.sampled_from([{}, {}, {"ContactWebhooks": "permission"}]))
    return ActualState(CONNECTION, tuple(webhooks), tuple(registrations), unread)


def _readiness(webhook: ActualWebhook) -> ActualWebhook:
    """Ready exactly when a subscribed field exists (Autotask's rule)."""
    ready = any(c.subscribed for c in (*webhook.fields, *webhook.udf_fields))
    return replace(webhook, ready=ready)


def _foreign_keys(actual: ActualState) -> set[tuple[str, int]]:
    return {
        (w.root, w.webhook_id)
        for w in actual.webhooks
        if not naming.is_ours(w.name, connection=CONNECTION, entity=w.entity)
    }


def _step_targets(steps: tuple[Step, ...], entity_roots: dict[str, str]) -> set[tuple[str, int]]:
    return {
        (entity_roots[s.entity], s.webhook_id)  # type: ignore[attr-defined]
        for s in steps
        if getattr(s, "webhook_id", None) is not None
    }


ROOTS = {spec.rest_name: spec.webhook_root or "" for spec in webhook_entities()}
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(desired=desired_states(), actual=actual_states(), rotate=st.lists(st.sampled_from(ENTITIES)))
def test_one_applied_plan_reaches_the_desired_state_and_touches_only_our_webhooks(
    desired, actual, rotate
):
    first = plan(desired=desired, actual=actual, now=NOW, rotate=rotate)

    # Only our webhooks, and nothing of blocked entities or unreadable roots, is in a step.
    foreign = _foreign_keys(actual)
    assert not _step_targets(first.steps, ROOTS) & foreign
    unread = {s.rest_name for s in webhook_entities() if s.webhook_root in actual.unread_roots}
    assert not {s.entity for s in first.steps} & (set(desired.blocked) | unread)
    for chain in first.chains().values():
        creates = [s for s in chain if isinstance(s, CreateWebhook)]
        assert len(creates) <= 1
        assert not creates or chain[0] is creates[0]  # later steps may refer to it

    # Every step names something that exists (the model raises otherwise), and one pass is
    # enough: planning again finds nothing to do.
    after = apply_plan(actual, first, now=NOW)
    again = plan(desired=desired, actual=after, now=NOW)
    assert again.empty, [s.describe() for s in again.steps]
    assert {
        (w.root, w.webhook_id): w for w in after.webhooks if (w.root, w.webhook_id) in foreign
    } == {(w.root, w.webhook_id): w for w in actual.webhooks if (w.root, w.webhook_id) in foreign}

    for entity in set(ENTITIES) - set(desired.blocked) - unread:
        ours = [
            w
            for w in after.webhooks
            if w.entity == entity and naming.is_ours(w.name, connection=CONNECTION, entity=entity)
        ]
        live = [r for r in after.registrations if r.entity == entity]
        wanted = desired.webhooks.get(entity)
        if wanted is None:
            assert ours == []
            assert live == []
            continue
        [webhook], [reg] = ours, live
        assert webhook.active
        assert webhook.ready
        assert reg.state is RegistrationState.ACTIVE
        assert reg.webhook_id == webhook.webhook_id
        assert not reg.secret_unconfirmed
        assert webhook.webhook_url == wanted.webhook_url(reg.registration_id)
        assert webhook.events == wanted.events
        assert {(c.target, c.subscribed, c.display_always) for c in webhook.fields} == {
            (f.field_id, f.subscribed, f.display_always) for f in wanted.fields
        }
        assert {(c.target, c.subscribed, c.display_always) for c in webhook.udf_fields} == {
            (f.field_id, f.subscribed, f.display_always) for f in wanted.udf_fields
        }
        assert sorted(c.target for c in webhook.excluded) == sorted(wanted.excluded_resources)


@settings(PROPERTY, max_examples=40)
@given(desired=desired_states())
def test_a_state_already_as_desired_plans_nothing(desired):
    settled = in_sync(replace(desired, blocked={}))
    assert plan(desired=desired, actual=settled, now=NOW).empty


def test_step_kinds_are_all_modelled():
    from services.provisioner.plan import STEP_KINDS

    modelled = {
        AddExclusion, AddField, CreateWebhook, DeleteWebhook, EndRotation, Reactivate,
        RecordRegistration, RemoveExclusion, RemoveField, RequestSweep, RetireRegistration,
        RotateSecret, UpdateField, UpdateWebhook,
    }  # fmt: skip
    assert set(STEP_KINDS) == modelled

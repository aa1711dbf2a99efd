"""The desired webhooks of a connection, from settings, scope and the tenant's metadata.

The metadata is the simulator's catalogue rendered as Autotask's entityInformation answers, so
these pure tests see the same field lists a real pass reads.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.provisioner.desired import EntityMetadata, WebhookPolicy, desired_state
from services.provisioner.settings import ProvisionerSettings
from shared.autotask import FieldInfo, UdfDefinition
from shared.errors import ConfigError
from shared.scope.rules import SyncScope
from shared.settings import load_settings
from tools.autotask_sim.catalog.data_entities import DATA_SCHEMAS
from tools.autotask_sim.catalog.system_entities import WEBHOOK_FIELD_IDS

API_USER = 29682854
SCHEMAS = {schema.name: schema for schema in DATA_SCHEMAS}


def settings(**overrides: object) -> ProvisionerSettings:
    values: dict[str, object] = {
        "production_mode": True,
        "gateway_public_url": "https://hooks.example.com",
    }
    values.update(overrides)
    return load_settings(ProvisionerSettings, **values)


def metadata(entity: str, *, readable: bool = True) -> EntityMetadata:
    schema = SCHEMAS[entity]
    ids = WEBHOOK_FIELD_IDS[entity]
    return EntityMetadata(
        entity=entity,
        readable=readable,
        fields=[FieldInfo.model_validate(f.to_json()) for f in schema.fields],
        udfs=[UdfDefinition.model_validate(u.to_json()) for u in schema.udfs],
        field_ids={name: i for i, name in ids.fields.items()},
        udf_ids=None if entity == "TicketNotes" else {name: i for i, name in ids.udfs.items()},
    )


ALL = {name: metadata(name) for name in WEBHOOK_FIELD_IDS}


def desired(scope: SyncScope | None = None, *, api_user: int | None = API_USER, **options: object):
    policy = WebhookPolicy.resolve(settings(**options), scope or SyncScope())
    return desired_state(
        connection="acme", policy=policy, metadata=ALL, api_user_resource_id=api_user
    )


def test_defaults_are_tickets_and_companies_with_every_supported_field_subscribed():
    state = desired()
    assert sorted(state.webhooks) == ["Companies", "Tickets"]
    tickets = state.webhooks["Tickets"]
    supported = {f.name for f in metadata("Tickets").fields if f.is_supported_webhook_field}
    assert {f.name for f in tickets.fields} == supported
    assert all(f.subscribed for f in tickets.fields)
    assert {f.name for f in tickets.udf_fields} == {"External Reference", "Customer Impact"}
    assert tickets.events == {"create", "update", "delete"}
    assert tickets.name == "autotask-sync:acme:Tickets"
    assert tickets.webhook_url("r" * 32) == "https://hooks.example.com/v1/callouts/" + "r" * 32


def test_id_like_and_external_id_fields_are_display_always():
    state = desired()
    shown = {
        entity: {f.name for f in (*w.fields, *w.udf_fields) if f.display_always}
        for entity, w in state.webhooks.items()
    }
    assert shown == {
        "Tickets": {"ticketNumber", "External Reference"},
        "Companies": {"companyName", "companyNumber"},
    }


def test_the_api_user_is_excluded_so_its_own_writes_never_echo():
    assert desired().webhooks["Tickets"].excluded_resources == {API_USER}
    extra = desired(webhook_excluded_resources=(4,))
    assert extra.webhooks["Tickets"].excluded_resources == {API_USER, 4}
    off = desired(webhook_exclude_api_user=False)
    assert off.webhooks["Tickets"].excluded_resources == frozenset()


def test_an_api_user_that_cannot_be_found_is_a_note_that_says_what_to_do():
    state = desired(api_user=None)
    assert state.webhooks["Tickets"].excluded_resources == frozenset()
    [note] = state.notes
    assert "Resources" in note
    assert "AUTOTASK_SYNC_WEBHOOK_EXCLUDED_RESOURCES" in note


def test_scope_overrides_entities_events_fields_and_email():
    scope = SyncScope.parse(
        {
            "webhooks": {
                "entities": ["Tickets", "TicketNotes"],
                "events": ["update"],
                "notification_email": "ops@example.com",
                "fields": {
                    "Tickets": {"subscribed": ["title", "status", "customer impact"]},
                    "TicketNotes": {"display_always": []},
                },
            }
        }
    )
    state = desired(scope)
    assert sorted(state.webhooks) == ["TicketNotes", "Tickets"]
    tickets = state.webhooks["Tickets"]
    assert tickets.events == {"update"}
    assert tickets.notification_email == "ops@example.com"
    assert tickets.threshold_notifications
    assert {f.name for f in tickets.fields if f.subscribed} == {"title", "status"}
    # display-always fields stay on the webhook, shown but not subscribed
    assert {f.name for f in tickets.fields if not f.subscribed} == {"ticketNumber"}
    assert [(f.name, f.subscribed) for f in tickets.udf_fields] == [
        ("External Reference", False),
        ("Customer Impact", True),
    ]
    notes = state.webhooks["TicketNotes"]
    assert notes.udf_fields == ()
    assert not notes.has_udf_child
    assert not any(f.display_always for f in notes.fields)


def test_entities_the_connection_does_not_sync_get_no_default_webhook():
    state = desired(SyncScope.parse({"entities": ["Tickets", "Contacts"]}))
    assert sorted(state.webhooks) == ["Tickets"]


def test_a_field_the_entity_does_not_offer_blocks_the_entity_and_names_the_choices():
    scope = SyncScope.parse({"webhooks": {"fields": {"Tickets": {"subscribed": ["titel"]}}}})
    state = desired(scope)
    assert "Tickets" not in state.webhooks
    assert "'titel'" in state.blocked["Tickets"]
    assert "title" in state.blocked["Tickets"]  # the valid choices are listed
    assert "Companies" in state.webhooks  # the others go on


def test_no_subscribed_field_blocks_the_entity():
    scope = SyncScope.parse({"webhooks": {"fields": {"Tickets": {"subscribed": []}}}})
    assert "at least one" in desired(scope).blocked["Tickets"]


def test_an_entity_the_api_user_cannot_read_is_blocked_with_the_fix():
    policy = WebhookPolicy.resolve(settings(), SyncScope())
    state = desired_state(
        connection="acme",
        policy=policy,
        metadata={**ALL, "Tickets": metadata("Tickets", readable=False)},
        api_user_resource_id=API_USER,
    )
    assert "Tickets" not in state.webhooks
    assert "security level cannot read Tickets" in state.blocked["Tickets"]
    assert "Security Levels" in state.blocked["Tickets"]


def test_a_udf_autotask_does_not_support_for_webhooks_is_left_out():
    meta = metadata("Tickets")
    first = meta.udfs[0].model_copy(update={"isSupportedWebhookField": False})
    limited = replace(meta, udfs=[first, *meta.udfs[1:]])
    policy = WebhookPolicy.resolve(settings(), SyncScope())
    state = desired_state(
        connection="acme",
        policy=policy,
        metadata={**ALL, "Tickets": limited},
        api_user_resource_id=API_USER,
    )
    assert {f.name for f in state.webhooks["Tickets"].udf_fields} == {"Customer Impact"}


def test_the_digest_follows_every_desired_detail():
    base = desired().webhooks["Tickets"]
    assert base.digest("r1") == desired().webhooks["Tickets"].digest("r1")
    assert base.digest("r1") != base.digest("r2")
    assert base.digest("r1") != replace(base, events=frozenset({"update"})).digest("r1")
    assert base.digest("r1") != replace(base, fields=base.fields[1:]).digest("r1")
    assert base.digest("r1") != replace(base, excluded_resources=frozenset()).digest("r1")


def test_without_a_gateway_url_nothing_can_be_desired():
    with pytest.raises(ConfigError, match="AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"):
        WebhookPolicy.resolve(settings(gateway_public_url=""), SyncScope())


def test_production_mode_refuses_a_plain_http_gateway_url():
    with pytest.raises(ConfigError, match="must be https in production mode"):
        settings(gateway_public_url="http://hooks.example.com")
    assert settings(production_mode=False, gateway_public_url="http://127.0.0.1:8080/")
    with pytest.raises(ConfigError, match="AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"):
        settings(gateway_public_url="hooks.example.com")


def test_settings_read_comma_lists_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTOTASK_SYNC_WEBHOOK_ENTITIES", "tickets, contacts")
    monkeypatch.setenv("AUTOTASK_SYNC_WEBHOOK_EVENTS", "Update")
    monkeypatch.setenv("AUTOTASK_SYNC_WEBHOOK_EXCLUDED_RESOURCES", "4,5")
    monkeypatch.setenv("AUTOTASK_SYNC_WEBHOOK_SECRET_OVERLAP", "2m")
    loaded = load_settings(ProvisionerSettings)
    assert loaded.webhook_entities == ("Tickets", "Contacts")
    assert loaded.webhook_events == ("update",)
    assert loaded.webhook_excluded_resources == (4, 5)
    assert loaded.webhook_secret_overlap.total_seconds() == 120
    monkeypatch.setenv("AUTOTASK_SYNC_WEBHOOK_ENTITIES", "Resources")
    with pytest.raises(ConfigError, match=r"AUTOTASK_SYNC_WEBHOOK_ENTITIES.*not an entity with"):
        load_settings(ProvisionerSettings)

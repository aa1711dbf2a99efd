"""The entity registry agrees with what the API (here the simulator) says about each entity.

Every service iterates over the registry, so a field it names that the API does not have (or
cannot subscribe to) would break sweeps, mirror columns or webhook provisioning. Read through the
project's client, the way the provisioner will check a real tenant.
"""

from __future__ import annotations

import pytest

from services.provisioner.actual import child_entity, read_metadata
from shared.autotask import AutotaskClient
from shared.entities import REGISTRY, EntitySpec, FollowsParent, webhook_entities
from shared.errors import NotFoundError


def _named_fields(spec: EntitySpec) -> set[str]:
    named = {c.json_field for c in spec.promoted}
    named |= set(spec.subscribed_fields) | set(spec.display_always_fields)
    named |= {f for f in (spec.last_modified_field, spec.create_field) if f}
    if spec.child_of:
        named.add(spec.child_of.parent_id_field)
    if isinstance(spec.scope, FollowsParent):
        named.add(spec.scope.parent_id_field)
    return named


@pytest.mark.parametrize("spec", REGISTRY, ids=[s.rest_name for s in REGISTRY])
async def test_registry_fields_exist_and_can_be_subscribed(
    client: AutotaskClient, spec: EntitySpec
) -> None:
    fields = {f.name: f for f in await client.field_info(spec.rest_name)}
    assert _named_fields(spec) - set(fields) == set()
    for name in (spec.last_modified_field, spec.create_field):
        if name:
            assert fields[name].is_queryable, name
            assert fields[name].data_type == "datetime", name
    info = await client.entity_information(spec.rest_name)
    assert info.can_query
    assert info.can_delete == spec.can_delete
    assert info.supports_webhook_callouts == spec.has_webhooks
    if spec.has_webhooks:
        not_supported = [
            name
            for name in (*spec.subscribed_fields, *spec.display_always_fields)
            if not fields[name].is_supported_webhook_field
        ]
        assert not_supported == []


@pytest.mark.parametrize(
    "spec", [s for s in REGISTRY if s.webhook_root], ids=lambda s: str(s.webhook_root)
)
async def test_webhook_field_ids_cover_the_default_subscription(
    client: AutotaskClient, spec: EntitySpec
) -> None:
    """Webhook ``Fields`` rows take a field id, read from the ``fieldID`` picklist."""
    assert spec.webhook_root is not None
    fields_entity = spec.webhook_root.removesuffix("s") + "Fields"
    metadata = {f.name.lower(): f for f in await client.field_info(fields_entity)}
    labels = {v.label for v in metadata["fieldid"].picklist_values or []}
    assert set(spec.subscribed_fields) | set(spec.display_always_fields) <= labels


async def test_delete_logs_name_the_id_fields(client: AutotaskClient) -> None:
    for spec in REGISTRY:
        for log, id_field in (
            (spec.delete_log, spec.delete_log_id_field),
            (spec.activity_delete_log, spec.activity_delete_log_id_field),
        ):
            if log:
                fields = {f.name for f in await client.field_info(log)}
                assert id_field in fields, f"{spec.rest_name}: {log} has no {id_field}"


async def test_webhook_udf_children_are_where_the_registry_says(client: AutotaskClient) -> None:
    """The API has a ``UdfFields`` child exactly where the registry says, and the provisioner's
    metadata reading agrees."""
    specs = list(webhook_entities())
    metadata, refused = await read_metadata(client, [s.rest_name for s in specs])
    assert refused == {}
    for spec in specs:
        assert spec.webhook_root is not None
        try:
            await client.field_info(child_entity(spec.webhook_root, "UdfFields"))
            exists = True
        except NotFoundError:
            exists = False
        assert exists == spec.webhook_udf_child, spec.rest_name
        read_udfs = metadata[spec.rest_name].udf_ids is not None
        assert read_udfs == spec.webhook_udf_child, f"{spec.rest_name}: provisioner disagrees"

"""The registry's ``fields`` and the simulator's catalogue describe the same records, so neither
drifts: the topic schemas and the timestamp rule are generated from the first, the records the
tests compare against come from the second.

``id`` is the one difference: Autotask's metadata marks it ``isRequired`` (Anteris' generated
``TicketEntity`` has a non-nullable ``int $id``, autotask-api.md ANT-GEN), while the simulator
reserves ``required`` for what a create must send, which ``id`` (read-only) never is.
"""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from shared.entities import REGISTRY, EntitySpec
from shared.messages.topics import Topics
from shared.records import normalize_record
from tests.helpers.contracts import contract
from tools.autotask_sim import SimulatorConfig
from tools.autotask_sim.catalog import DATA_SCHEMAS
from tools.autotask_sim.state import SimulatorState
from tools.autotask_sim.store.schema import EntitySchema
from tools.schemas import value_schema_file

ENTITIES = pytest.mark.parametrize("entity", REGISTRY, ids=[e.rest_name for e in REGISTRY])
CATALOGUE = {schema.name: schema for schema in DATA_SCHEMAS}


def catalogued(entity: EntitySpec) -> EntitySchema:
    assert entity.rest_name in CATALOGUE, f"the simulator does not serve {entity.rest_name}"
    return CATALOGUE[entity.rest_name]


@ENTITIES
def test_the_registry_lists_the_catalogues_fields_with_their_types(entity):
    registry = [(field.name, field.type) for field in entity.fields]
    catalogue = [(field.name, field.data_type) for field in catalogued(entity).fields]
    assert registry == catalogue


@ENTITIES
def test_required_fields_agree_and_the_id_is_always_required(entity):
    catalogue = {field.name: field for field in catalogued(entity).fields}
    registry = {field.name: field.required for field in entity.fields}
    assert registry["id"] is True
    assert catalogue["id"].read_only
    assert {name: catalogue[name].required for name in registry if name != "id"} == {
        name: required for name, required in registry.items() if name != "id"
    }


@ENTITIES
def test_user_defined_fields_are_where_the_catalogue_has_them(entity):
    assert entity.udfs == catalogued(entity).has_udfs


@pytest.fixture(scope="module")
def tenant() -> SimulatorState:
    return SimulatorState(SimulatorConfig(seed=4, contracts=20))


@ENTITIES
def test_every_simulated_record_carries_every_field_and_keeps_the_topic_schema(entity, tenant):
    """What the schemas require (every standard field, in every record) is what the API
    returns; normalised, each record is what the topic promises."""
    records = tenant.entities(entity.rest_name)
    assert records
    schema = contract(value_schema_file(Topics().changes(entity))).schema
    record = Draft202012Validator({**schema["$defs"]["record"], "$defs": schema["$defs"]})
    for row in records:
        record.validate(normalize_record(entity, row))

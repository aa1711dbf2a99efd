"""Change events in Kafka Connect's JSON with schema: what JsonConverter (``schemas.enable=true``)
reads from them is every declared field with its value, typed as the registry says, for every
entity and every kind of change; what it would misread never leaves the process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from structlog.testing import capture_logs

from shared.entities import REGISTRY, TICKETS, EntitySpec, Field, FieldType
from shared.errors import ConfigError, MessageError
from shared.messages.change import ChangeEvent, Op, ValueFormat, envelope
from shared.messages.jsonconverter import (
    INT32_MAX,
    KEY_SCHEMA,
    ZONED_TIMESTAMP,
    envelope_schema,
    key_with_schema,
    with_schema,
)
from shared.settings import BaseServiceSettings, ChangeValueFormat, load_settings

SPECS = pytest.mark.parametrize("entity", REGISTRY, ids=[s.rest_name for s in REGISTRY])
OPS: tuple[Op, ...] = ("c", "u", "d", "r")
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

SAMPLES: dict[FieldType, Any] = {
    "long": 29_684_000_123,
    "integer": 7,
    "double": 4.5,
    "string": 'Jürgen\'s "printer"',
    "boolean": True,
    "datetime": "2026-11-30T08:15:00.123Z",
}
JSON_KINDS = {
    "int32": int,
    "int64": int,
    "double": (int, float),
    "string": str,
    "boolean": bool,
    "array": list,
    "struct": dict,
}


def sample(entity: EntitySpec, entity_id: int = 42, **changes: Any) -> dict[str, Any]:
    """A record with a value of its type in every declared field, as Autotask returns it."""
    row = {field.name: SAMPLES[field.type] for field in entity.fields} | {"id": entity_id}
    if entity.udfs:
        row["userDefinedFields"] = [{"name": "External Reference", "value": "EXT-42"}]
    return row | changes


def event(entity: EntitySpec, op: Op, row: dict[str, Any] | None = None) -> dict[str, Any]:
    row = row if row is not None else sample(entity)
    change = ChangeEvent(
        connection="acme",
        entity=entity,
        id=row["id"],
        op=op,
        before=None if op in ("c", "r") else row,
        after=None if op == "d" else row,
        version=AT,
        origin="webhook",
        at=AT,
        callout_sequence=3,
        reason="deleted" if op == "d" else None,
    )
    return envelope(change)


def connect_reads(schema: dict[str, Any], value: Any, path: str = "$") -> Any:
    """What JsonConverter makes of ``value`` under ``schema``, failing where it would fail or
    silently change the value (a test oracle of its rules, for pure unit tests)."""
    if value is None:
        assert schema["optional"], f"{path}: null in a required {schema['type']}"
        return None
    kind = schema["type"]
    assert isinstance(value, JSON_KINDS[kind]), f"{path}: {type(value).__name__} is no {kind}"
    assert kind == "boolean" or not isinstance(value, bool), f"{path}: bool read as {kind}"
    if kind == "int32":
        assert -(2**31) <= value <= INT32_MAX, f"{path}: {value} wraps around in an int32"
    if kind == "array":
        return [connect_reads(schema["items"], item, f"{path}[]") for item in value]
    if kind == "struct":
        undeclared = value.keys() - {field["field"] for field in schema["fields"]}
        assert not undeclared, f"{path}: JsonConverter drops {sorted(undeclared)}"
        return {
            f["field"]: connect_reads(f, value.get(f["field"]), f"{path}.{f['field']}")
            for f in schema["fields"]
        }
    return value


@SPECS
@pytest.mark.parametrize("op", OPS)
def test_every_change_of_every_entity_reads_back_as_its_record(entity: EntitySpec, op: Op):
    value = event(entity, op)

    message = json.loads(json.dumps(with_schema(entity, value)))  # as it travels

    assert list(message) == ["schema", "payload"]  # nothing else, or JsonConverter refuses it
    read = connect_reads(message["schema"], message["payload"])
    assert read["before"] == value["before"]
    assert read["after"] == value["after"]
    assert read["op"] == op
    assert read["ts_ms"] == value["ts_ms"]
    assert read["source"] == {
        "connection": "acme",
        "entity": entity.topic_suffix,
        "autotask_entity": entity.rest_name,
        "version": "2026-12-01T12:00:00.000Z",
        "origin": "webhook",
        "callout_sequence": 3,
        "reason": "deleted" if op == "d" else None,
    }


@SPECS
def test_schemas_are_named_as_debezium_tooling_expects(entity: EntitySpec):
    schema = envelope_schema(entity)
    fields = {field["field"]: field for field in schema["fields"]}

    assert schema["name"] == f"autotask.{entity.table}.Envelope"
    assert fields["before"]["name"] == fields["after"]["name"] == f"autotask.{entity.table}.Value"
    assert fields["before"]["optional"]
    assert fields["after"]["optional"]
    assert fields["source"]["name"] == "autotask.Source"
    assert (fields["op"]["type"], fields["op"]["optional"]) == ("string", False)
    assert (fields["ts_ms"]["type"], fields["ts_ms"]["optional"]) == ("int64", False)


@SPECS
def test_each_field_has_the_connect_type_of_its_registry_type(entity: EntitySpec):
    wanted = {
        "long": ("int64", None),
        "integer": ("int32", None),
        "double": ("double", None),
        "string": ("string", None),
        "boolean": ("boolean", None),
        "datetime": ("string", ZONED_TIMESTAMP),
    }
    after = next(f for f in envelope_schema(entity)["fields"] if f["field"] == "after")
    declared = {field["field"]: field for field in after["fields"]}

    for field in entity.fields:
        assert (declared[field.name]["type"], declared[field.name].get("name")) == wanted[
            field.type
        ], field
        # Only the id is required: a null in a required field would stop the sink's task.
        assert declared[field.name]["optional"] is (field.name != "id"), field
    if entity.udfs:
        udfs = declared["userDefinedFields"]
        assert udfs["type"] == "array"
        assert udfs["optional"]
        items = {f["field"]: (f["type"], f["optional"]) for f in udfs["items"]["fields"]}
        assert items == {"name": ("string", False), "value": ("string", True)}
    assert set(declared) == {f.name for f in entity.fields} | (
        {"userDefinedFields"} if entity.udfs else set()
    )


def test_fields_the_registry_does_not_declare_are_left_out():
    row = sample(TICKETS, secondaryResources=[{"id": 1}], serviceLevelAgreementID=3)

    payload = with_schema(TICKETS, event(TICKETS, "u", row))["payload"]

    assert "secondaryResources" not in payload["after"]
    assert "serviceLevelAgreementID" not in payload["before"]
    assert payload["after"]["title"] == row["title"]


def test_missing_and_null_fields_are_null():
    row = sample(TICKETS)
    del row["dueDateTime"]
    row["estimatedHours"] = None

    after = with_schema(TICKETS, event(TICKETS, "c", row))["payload"]["after"]

    assert after["dueDateTime"] is None
    assert after["estimatedHours"] is None


def test_timestamps_without_an_offset_are_utc_with_z():
    row = sample(TICKETS, createDate="2025-12-08T10:59:23.262", dueDateTime="2025-12-15T10:59Z")
    row["completedDate"] = "2025-12-09T01:02:03+02:00"

    after = with_schema(TICKETS, event(TICKETS, "c", row))["payload"]["after"]

    assert after["createDate"] == "2025-12-08T10:59:23.262Z"
    assert after["dueDateTime"] == "2025-12-15T10:59Z"
    assert after["completedDate"] == "2025-12-09T01:02:03+02:00"


def test_numbers_in_numeric_strings_and_booleans_as_numbers_are_converted():
    companies = next(e for e in REGISTRY if e.rest_name == "Companies")
    row = sample(companies, companyType="3", ownerResourceID=29682847.0, isActive=0)

    after = with_schema(companies, event(companies, "c", row))["payload"]["after"]

    assert (after["companyType"], after["ownerResourceID"], after["isActive"]) == (
        3,
        29682847,
        False,
    )


def test_udf_values_are_text():
    udfs = [
        {"name": "RAM GB", "value": 16},
        {"name": "Billing Code", "value": None},
        {"name": "Managed", "value": True},
        {"name": "Tier", "value": "Gold"},
    ]

    after = with_schema(TICKETS, event(TICKETS, "c", sample(TICKETS, userDefinedFields=udfs)))[
        "payload"
    ]["after"]

    assert after["userDefinedFields"] == [
        {"name": "RAM GB", "value": "16"},
        {"name": "Billing Code", "value": None},
        {"name": "Managed", "value": "true"},
        {"name": "Tier", "value": "Gold"},
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", INT32_MAX + 1),  # would wrap around in an int32
        ("status", "high"),
        ("status", 2.5),
        ("title", 17),  # JsonConverter would read null
        ("estimatedHours", "4.5"),
        ("estimatedHours", True),
        ("dueDateTime", "next Tuesday"),
        ("dueDateTime", "2025-12-15 10:59:00"),  # not RFC 3339: Debezium cannot parse it
        ("userDefinedFields", {"name": "Tier"}),
    ],
)
def test_a_value_its_field_cannot_carry_is_sent_as_null_and_logged_without_it(
    field: str, value: Any
):
    row = sample(TICKETS, **{field: value})

    with capture_logs() as logs:
        after = with_schema(TICKETS, event(TICKETS, "c", row))["payload"]["after"]

    assert after[field] is None
    assert after["title" if field != "title" else "status"] is not None  # the rest is sent
    assert [(e["log_level"], e["entity"], e["id"], e["field"]) for e in logs] == [
        ("warning", "Tickets", 42, field)
    ]
    assert repr(value) not in repr(logs)


def test_a_boolean_field_takes_no_numbers_but_zero_and_one():
    companies = next(e for e in REGISTRY if e.rest_name == "Companies")
    with capture_logs() as logs:
        after = with_schema(companies, event(companies, "c", sample(companies, isActive=2)))

    assert after["payload"]["after"]["isActive"] is None
    assert [e["field"] for e in logs] == ["isActive"]


def test_a_record_without_an_id_is_refused():
    with pytest.raises(MessageError, match="without an id"):
        with_schema(TICKETS, event(TICKETS, "u") | {"after": sample(TICKETS, id=None)})


def test_the_schema_is_built_once_per_entity():
    first = with_schema(TICKETS, event(TICKETS, "c"))["schema"]

    assert with_schema(TICKETS, event(TICKETS, "d"))["schema"] is first
    assert envelope_schema(TICKETS) is first


def test_an_entity_without_udfs_has_no_udf_field():
    plain = EntitySpec(
        rest_name="Widgets",
        callout_types=("Widget",),
        last_modified_field=None,
        create_field=None,
        table="widgets",
        scope=REGISTRY[0].scope,
        fields=(Field("id", "long", required=True), Field("name", "string")),
    )

    read = connect_reads(
        *_schema_and_payload(plain, {"id": 1, "name": "w", "userDefinedFields": []})
    )

    assert read["after"] == {"id": 1, "name": "w"}


def _schema_and_payload(entity: EntitySpec, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    message = with_schema(entity, event(entity, "c", row))
    return message["schema"], message["payload"]


def test_the_key_carries_connection_and_id_as_the_sinks_primary_key():
    key = json.loads(json.dumps(key_with_schema("acme", 29_684_000_123)))

    assert key["schema"] == KEY_SCHEMA
    assert key["schema"]["name"] == "autotask.Key"
    assert connect_reads(key["schema"], key["payload"]) == {
        "connection": "acme",
        "id": 29_684_000_123,
    }


def test_the_deployment_setting_offers_exactly_the_value_formats_the_encoder_knows():
    assert get_args(ChangeValueFormat) == get_args(ValueFormat)


@pytest.mark.parametrize(("given", "read"), [("json", "json"), (" Connect-JSON ", "connect-json")])
def test_the_value_format_setting_reads_either_format(
    monkeypatch: pytest.MonkeyPatch, given: str, read: str
):
    monkeypatch.setenv("AUTOTASK_SYNC_CHANGE_VALUE_FORMAT", given)

    assert load_settings(BaseServiceSettings).change_value_format == read


def test_a_misspelt_value_format_names_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("AUTOTASK_SYNC_CHANGE_VALUE_FORMAT", "connect_json")

    with pytest.raises(ConfigError) as raised:
        load_settings(BaseServiceSettings)

    assert "AUTOTASK_SYNC_CHANGE_VALUE_FORMAT" in str(raised.value)
    assert "'json' or 'connect-json'" in str(raised.value)

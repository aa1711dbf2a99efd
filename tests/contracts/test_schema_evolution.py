"""The schema evolution rule (docs/adr/0011-change-topic-contract.md): edits consumers survive
pass, the others are named, and the generator refuses to publish them without a new topic
version."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tools.schemas
from shared.entities import TICKETS
from shared.messages.topics import Topics
from tools.schema_evolution import breaking_changes, compatible
from tools.schemas import SCHEMAS_DIR, generate, key_schema_file, value_schema_file

TOPIC = Topics().changes(TICKETS)
Schema = dict[str, Any]


def published(file: str) -> Schema:
    schema: Schema = json.loads((SCHEMAS_DIR / file).read_text())
    return schema


def edited(file: str, edit: Callable[[Schema], object]) -> Schema:
    schema = copy.deepcopy(published(file))
    edit(schema)
    return schema


def record(schema: Schema) -> Schema:
    definition: Schema = schema["$defs"]["record"]
    return definition


def header(schema: Schema, name: str) -> Schema:
    return next(row for row in schema["x-kafka"]["headers"] if row["name"] == name)


def _add_optional_field(schema: Schema) -> None:
    record(schema)["properties"]["resolution"] = {"type": ["string", "null"]}


def _add_header(schema: Schema) -> None:
    schema["x-kafka"]["headers"].append({"name": "ce_dataschema", "meaning": "m", "example": "x"})


def _add_ce_type(schema: Schema) -> None:
    header(schema, "ce_type")["values"].append("autotask.tickets.merged")


def _forbid_null(schema: Schema) -> None:
    record(schema)["properties"]["queueID"]["type"] = "integer"


def _reword(schema: Schema) -> None:
    schema["properties"]["op"]["description"] = "what happened"


COMPATIBLE = {
    "an optional field added to after": _add_optional_field,
    "a header added": _add_header,
    "a ce_type value added": _add_ce_type,
    "null no longer allowed": _forbid_null,
    "a description reworded": _reword,
}


@pytest.mark.parametrize("edit", COMPATIBLE, ids=list(COMPATIBLE))
def test_consumers_survive_these_edits(edit):
    old = published(value_schema_file(TOPIC))
    assert breaking_changes(old, edited(value_schema_file(TOPIC), COMPATIBLE[edit])) == []


def _retype(schema: Schema) -> None:
    record(schema)["properties"]["status"]["type"] = "string"


def _remove(schema: Schema) -> None:
    del record(schema)["properties"]["title"]
    record(schema)["required"].remove("title")


def _rename(schema: Schema) -> None:
    properties = record(schema)["properties"]
    properties["ticketTitle"] = properties.pop("title")


def _new_op(schema: Schema) -> None:
    schema["properties"]["op"]["enum"].append("t")


def _new_source_property(schema: Schema) -> None:
    schema["properties"]["source"]["properties"]["zone"] = {"type": "string"}


def _drop_header(schema: Schema) -> None:
    schema["x-kafka"]["headers"] = [
        row for row in schema["x-kafka"]["headers"] if row["name"] != "ce_reason"
    ]


def _rename_ce_type(schema: Schema) -> None:
    header(schema, "ce_type")["values"][0] = "autotask.ticket.created"


def _open_the_envelope(schema: Schema) -> None:
    schema["additionalProperties"] = True


def _drop_the_z(schema: Schema) -> None:
    record(schema)["properties"]["createDate"]["pattern"] = "^.*$"


INCOMPATIBLE = {
    "a field retyped": (_retype, "properties.status.type"),
    "a field removed": (_remove, "properties.title: removed"),
    "a field renamed": (_rename, "properties.title: removed or renamed"),
    "an op added": (_new_op, "properties.op.enum"),
    "a source property added": (_new_source_property, "['zone'] added"),
    "a header dropped": (_drop_header, "ce_reason dropped"),
    "a ce_type value renamed": (_rename_ce_type, "autotask.tickets.created"),
    "the envelope opened": (_open_the_envelope, "additionalProperties"),
    "a timestamp pattern loosened": (_drop_the_z, "createDate.pattern"),
}


@pytest.mark.parametrize("edit", INCOMPATIBLE, ids=list(INCOMPATIBLE))
def test_these_edits_are_named_as_breaking(edit):
    change, where = INCOMPATIBLE[edit]
    old = published(value_schema_file(TOPIC))
    problems = breaking_changes(old, edited(value_schema_file(TOPIC), change))
    assert any(where in problem for problem in problems), problems
    assert not compatible(old, edited(value_schema_file(TOPIC), change))


def test_a_changed_key_is_breaking():
    def id_as_text(schema: Schema) -> None:
        schema["properties"]["id"] = {"type": "string"}

    old = published(key_schema_file(TOPIC))
    assert breaking_changes(old, edited(key_schema_file(TOPIC), id_as_text)) == [
        "properties.id.minimum: removed (it constrained what consumers receive)",
        "properties.id.type: now also ['string'] (was 'integer')",
    ]


def _write_contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]):
    """Run ``python -m tools schemas`` over a copy of ``schemas/`` with ``files`` generated."""
    published_copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, published_copy)
    monkeypatch.setattr(tools.schemas, "SCHEMAS_DIR", published_copy)
    monkeypatch.setattr(tools.schemas, "generate", lambda: files)

    def run(*flags: str) -> int:
        parser = argparse.ArgumentParser()
        tools.schemas.add_arguments(parser)
        return tools.schemas.run(parser.parse_args(flags))

    return published_copy, run


def test_the_generator_refuses_to_retype_a_field_of_a_published_topic(
    tmp_path, monkeypatch, capsys
):
    files = generate()
    retyped = edited(value_schema_file(TOPIC), _retype)
    files[value_schema_file(TOPIC)] = json.dumps(retyped)
    published_copy, run = _write_contracts(tmp_path, monkeypatch, files)

    assert run() == 1
    out = capsys.readouterr().out
    assert "autotask.tickets.v1.schema.json: $defs.record.properties.status.type" in out
    assert "new topic version" in out
    assert json.loads((published_copy / value_schema_file(TOPIC)).read_text()) == published(
        value_schema_file(TOPIC)
    ), "nothing written"

    assert run("--allow-breaking") == 0
    assert json.loads((published_copy / value_schema_file(TOPIC)).read_text()) == retyped

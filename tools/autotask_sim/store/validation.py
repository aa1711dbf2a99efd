"""Turning a create/update request body into field values, with Autotask's validation errors.

Rules (pessimistic where the fact sheet is unsure):

- field names bind case-insensitively; unknown keys are ignored, as .NET model binding does;
  read-only keys are ignored too, so a record read with GET can be PUT back unchanged;
- booleans must be JSON ``true``/``false`` (``null`` included is an error, §2);
- integers accept JSON integers or integer strings; strings are length-checked;
- picklist values must exist; reference ids must point to an existing record, with the error
  text observed in the wild ("Reference value on field: ...", §2);
- ``PUT`` is a full replace: writable fields missing from the body are cleared, and required
  ones must be present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.autotask_sim.apierror import business_error
from tools.autotask_sim.clock import SimClock, parse_timestamp
from tools.autotask_sim.jsontypes import JsonValue
from tools.autotask_sim.store.schema import INTEGER_TYPES, EntitySchema, FieldSpec, UdfSpec

ReferenceCheck = Callable[[str, int], bool]
"""``(referenceEntityType, id) -> exists``."""


@dataclass
class BodyValues:
    """What a body sets: standard fields and UDFs, with canonical names."""

    fields: dict[str, JsonValue] = field(default_factory=dict)
    udfs: dict[str, JsonValue] = field(default_factory=dict)


def reference_error(spec: FieldSpec) -> Exception:
    return business_error(
        f"Reference value on field: {spec.name} of type: {spec.reference} "
        "does not exist or is invalid."
    )


def required_error(name: str) -> Exception:
    return business_error(f"{name} is required.")


class BodyReader:
    """Reads request bodies for one entity schema."""

    def __init__(self, schema: EntitySchema, clock: SimClock, exists: ReferenceCheck) -> None:
        self.schema = schema
        self.clock = clock
        self.exists = exists

    def read(self, body: Mapping[str, Any], *, creating: bool, replace: bool = False) -> BodyValues:
        """Validated values of ``body``; raises ApiError (500) on the first problem."""
        values = BodyValues()
        writable = {f.name for f in self.schema.writable(creating=creating)}
        for key, raw in body.items():
            if not isinstance(key, str):
                continue
            if key.lower() == "userdefinedfields":
                values.udfs.update(self._udfs(raw))
                continue
            spec = self.schema.field(key)
            if spec is None or spec.name not in writable:
                continue
            values.fields[spec.name] = self.value(spec, raw)
        if creating or replace:
            for spec in self.schema.writable(creating=creating):
                if spec.name not in values.fields:
                    if spec.required:
                        raise required_error(spec.name)
                    if replace:
                        values.fields[spec.name] = False if spec.data_type == "boolean" else None
        return values

    def value(self, spec: FieldSpec, raw: Any) -> JsonValue:
        """One field's value converted to its stored form."""
        if raw is None:
            if spec.required or spec.data_type == "boolean":
                raise business_error(f"{spec.name}: null is not a valid value.")
            return None
        bad = business_error(f"{spec.name}: value {raw!r} is not valid for a {spec.data_type}.")
        if spec.data_type == "boolean":
            if not isinstance(raw, bool):
                raise bad
            return raw
        if isinstance(raw, bool | Mapping | list):
            raise bad
        if spec.data_type in INTEGER_TYPES:
            number = _to_int(raw)
            if number is None:
                raise bad
            return self._check_int(spec, number)
        if spec.data_type in ("double", "decimal"):
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise bad from None
        if spec.data_type == "datetime":
            if not isinstance(raw, str):
                raise bad
            try:
                return self.clock.stamp(self.schema.name, spec.name, parse_timestamp(raw))
            except ValueError:
                raise bad from None
        text = str(raw)
        if spec.length and len(text) > spec.length:
            raise business_error(
                f"{spec.name} must be less than or equal to {spec.length} characters"
            )
        return text

    def _check_int(self, spec: FieldSpec, number: int) -> int:
        if spec.picklist is not None and number not in spec.picklist_ids():
            raise business_error(f"{spec.name}: {number} is not a valid picklist value.")
        if spec.reference is not None and not self.exists(spec.reference, number):
            raise reference_error(spec)
        return number

    def _udfs(self, raw: Any) -> dict[str, JsonValue]:
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise business_error("userDefinedFields must be a list of {name, value} objects.")
        out: dict[str, JsonValue] = {}
        for item in raw:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise business_error("userDefinedFields must be a list of {name, value} objects.")
            udf = self.schema.udf(item["name"])
            if udf is None:
                raise business_error(
                    f"{item['name']} is not a user-defined field of {self.schema.name}."
                )
            out[udf.name] = _udf_value(udf, item.get("value"))
        return out


def _to_int(raw: Any) -> int | None:
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            return None
    return None


def _udf_value(udf: UdfSpec, raw: Any) -> JsonValue:
    if raw is None or raw == "":
        return None
    if isinstance(raw, (bool, Mapping, list)):
        raise business_error(f"{udf.name}: value {raw!r} is not valid.")
    if udf.udf_type == "double":
        try:
            float(raw)
        except (TypeError, ValueError):
            raise business_error(f"{udf.name}: value {raw!r} is not a number.") from None
    text = str(raw)
    if udf.length and len(text) > udf.length:
        raise business_error(f"{udf.name} must be less than or equal to {udf.length} characters")
    return text


__all__ = ["BodyReader", "BodyValues", "ReferenceCheck", "reference_error", "required_error"]

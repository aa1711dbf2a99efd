"""Helpers for tests that drive the project's Autotask client against the simulator."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from shared.autotask import AutotaskClient, Connection
from tools.autotask_sim import Simulator
from tools.autotask_sim.catalog import DATA_SCHEMAS

MakeClient = Callable[..., Awaitable[AutotaskClient]]


def connection_for(sim: Simulator, **overrides: Any) -> Connection:
    values: dict[str, Any] = {
        "name": "test",
        "username": sim.username,
        "secret": SecretStr(sim.secret),
        "integration_code": SecretStr(sim.integration_code),
        "zone_lookup_url": sim.zone_lookup_url,
    }
    values.update(overrides)
    return Connection(**values)


def api_rows(sim: Simulator, entity: str) -> list[dict[str, Any]]:
    """The simulator's records exactly as the REST API renders them (tuples become lists,
    timestamps with and without ``Z``): what the client returns."""
    rows: list[dict[str, Any]] = json.loads(json.dumps(sim.state.entities(entity)))
    return rows


def truth(sim: Simulator, entity: str) -> list[dict[str, Any]]:
    """The simulator's records as the mirror and the change topics must hold them: as the API
    renders them, every datetime field in UTC with milliseconds and ``Z``.

    Written apart from the product's normalisation (and typed from the simulator's catalogue,
    not the registry) so that a mistake in either shows as a difference."""
    datetimes = {
        field.name
        for schema in DATA_SCHEMAS
        if schema.name == entity
        for field in schema.fields
        if field.data_type == "datetime"
    }
    return [_with_utc_instants(row, datetimes) for row in api_rows(sim, entity)]


def _with_utc_instants(row: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    return {
        name: _utc_z(value) if name in names and isinstance(value, str) else value
        for name, value in row.items()
    }


def _utc_z(text: str) -> str:
    """``2016-03-30T13:10:35.563`` (UTC, autotask-api.md §3) -> ``...35.563Z``."""
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def requests_to(sim: Simulator, endpoint: str) -> int:
    return sim.state.requests.by_endpoint[endpoint]

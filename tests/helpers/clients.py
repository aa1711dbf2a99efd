"""Helpers for tests that drive the project's Autotask client against the simulator."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from shared.autotask import AutotaskClient, Connection
from tools.autotask_sim import Simulator

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


def truth(sim: Simulator, entity: str) -> list[dict[str, Any]]:
    """The simulator's records as the REST API renders them (tuples become lists)."""
    rows: list[dict[str, Any]] = json.loads(json.dumps(sim.state.entities(entity)))
    return rows


def requests_to(sim: Simulator, endpoint: str) -> int:
    return sim.state.requests.by_endpoint[endpoint]

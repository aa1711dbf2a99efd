"""Several simulated tenants at once, and stored connections pointing at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from pydantic import SecretStr

from shared.connections import store as rows
from shared.db import connect
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from tools.autotask_sim import Simulator, SimulatorConfig, run_simulator


def small_tenant(seed: int, *, companies: int = 12, tickets: int = 30) -> SimulatorConfig:
    """A small tenant; different seeds and sizes tell tenants apart in assertions."""
    return SimulatorConfig(
        seed=seed,
        companies=companies,
        contacts=companies,
        configuration_items=companies,
        tickets=tickets,
        ticket_notes=tickets,
    )


@asynccontextmanager
async def tenants(*configs: SimulatorConfig) -> AsyncIterator[list[Simulator]]:
    """Run one simulator per config; all stop when the context exits."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(run_simulator(config)) for config in configs]


def new_connection(
    name: str, sim: Simulator, *, scope: SyncScope | None = None, enabled: bool = True
) -> rows.NewConnection:
    """A stored connection for ``sim`` (its own zone lookup host)."""
    return rows.NewConnection(
        name=name,
        username=sim.username,
        secret=SecretStr(sim.secret),
        integration_code=SecretStr(sim.integration_code),
        zone_lookup_url=sim.zone_lookup_url,
        scope=scope or SyncScope(),
        enabled=enabled,
    )


async def store_connection(
    dsn: str, box: SecretBox, name: str, sim: Simulator, **options: object
) -> None:
    """Insert a connection row for ``sim`` directly (as ``connections add --force`` would)."""
    db = await connect(dsn)
    try:
        await rows.insert(db, new_connection(name, sim, **options), box)  # type: ignore[arg-type]
    finally:
        await db.close()

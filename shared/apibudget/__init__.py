"""Each connection's Autotask API budget as one thing across every process and replica.

The client (``shared.autotask``) enforces Autotask's limits through Protocols with in-process
defaults; this package implements them over PostgreSQL (migration 0008, statements in
``store.py``) so worker replicas, the reconciler, the provisioner and people's commands share
them (docs/adr/0008-shared-api-budget.md):

    coordinator.py  SharedCoordinator: one per process; pool, NOTIFY wake-ups, upkeep, fallback
    link.py         what the parts need from it (a Protocol) and its configuration
    slots.py        tenant-wide concurrency slots (leased rows, SKIP LOCKED, TTL)
    usage.py        the hourly budget: one reader of ThresholdInformation, reserved call counts
    lockout.py      the pause after a 401, for every process
    store.py        their rows: one function per statement

Services get it through the connection catalogue (``ConnectionCatalogue.from_settings``);
a command that builds its own client uses :func:`command_client` (or
:func:`open_coordinator` for the coordinator alone)::

    async with command_client(settings, connection, CLIENT_CONFIG) as client: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.apibudget.coordinator import SharedCoordinator
from shared.apibudget.link import CoordinatorConfig
from shared.autotask import AutotaskClient, ClientConfig, Connection, LockoutPolicy
from shared.db import database_dsn
from shared.settings import AutotaskSettings


def client_config_for(settings: AutotaskSettings, base: ClientConfig | None = None) -> ClientConfig:
    """``base`` (or the defaults) with the deployment's share (``AUTOTASK_SYNC_API_SHARE``) and
    rate-limit pause (``AUTOTASK_SYNC_API_RATE_LIMIT_PAUSE``)."""
    config = base or ClientConfig()
    budget = dataclasses.replace(config.limiter.budget, share=settings.api_share)
    limiter = dataclasses.replace(
        config.limiter,
        budget=budget,
        rate_limit_fallback=settings.api_rate_limit_pause,
        thread_limit_fallback=settings.api_rate_limit_pause,
    )
    return dataclasses.replace(config, limiter=limiter)


def coordinator_config(settings: AutotaskSettings) -> CoordinatorConfig:
    """The coordinator's tuning from ``AUTOTASK_SYNC_API_*``."""
    return CoordinatorConfig(
        shared_slots=settings.api_shared_slots,
        slot_ttl=settings.api_slot_ttl,
        lockout=LockoutPolicy(
            first=settings.api_auth_cooldown, longest=settings.api_auth_cooldown_max
        ),
    )


def coordinator_from_settings(settings: AutotaskSettings) -> SharedCoordinator | None:
    """A coordinator for the deployment's database (None without ``DATABASE_URL``); start it
    (``async with``) before its first call, stop it after the clients close."""
    dsn = database_dsn(settings)
    if not dsn:
        return None
    return SharedCoordinator(dsn, coordinator_config(settings))


@asynccontextmanager
async def open_coordinator(settings: AutotaskSettings) -> AsyncIterator[SharedCoordinator | None]:
    """A started coordinator for one command (None without a database URL)."""
    coordinator = coordinator_from_settings(settings)
    if coordinator is None:
        yield None
        return
    async with coordinator:
        yield coordinator


@asynccontextmanager
async def command_client(
    settings: AutotaskSettings, connection: Connection, base: ClientConfig
) -> AsyncIterator[AutotaskClient]:
    """A client for one command, ``base`` with the deployment's share, within the connection's
    API budget shared with every process (ADR 0008)."""
    async with (
        open_coordinator(settings) as coordinator,
        AutotaskClient(
            connection, config=client_config_for(settings, base), coordinator=coordinator
        ) as client,
    ):
        yield client


__all__ = [
    "CoordinatorConfig",
    "SharedCoordinator",
    "client_config_for",
    "command_client",
    "coordinator_config",
    "coordinator_from_settings",
    "open_coordinator",
]

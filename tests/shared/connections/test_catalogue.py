"""The connection catalogue: environment plus table, live, one client per connection."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from pydantic import SecretStr

from shared.autotask import Connection
from shared.connections import store as rows
from shared.connections.catalogue import CatalogueChange, ConnectionCatalogue, ServedConnection
from shared.db import connect
from shared.errors import AuthenticationError, ConfigError
from shared.secrets import SecretBox
from tests.helpers.tenants import small_tenant, store_connection, tenants
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

KEY = SecretBox.generate_key()


def _environment(sim, name: str = "envconn") -> ServedConnection:
    return ServedConnection(
        connection=Connection(
            name=name,
            username=sim.username,
            secret=SecretStr(sim.secret),
            integration_code=SecretStr(sim.integration_code),
            zone_lookup_url=sim.zone_lookup_url,
        ),
        source="environment",
    )


def _catalogue(dsn: str, environment: ServedConnection | None) -> ConnectionCatalogue:
    return ConnectionCatalogue(
        environment=environment,
        database_url=dsn,
        box=SecretBox([KEY]),
        default_zone_lookup_url="http://127.0.0.1:9/unused",
        reload_interval=timedelta(minutes=10),  # changes must arrive by NOTIFY
    )


async def _set(dsn: str, name: str, **changes) -> None:
    db = await connect(dsn)
    try:
        await rows.update(db, name, box=SecretBox([KEY]), **changes)
    finally:
        await db.close()


async def test_two_tenants_and_the_environment_each_get_their_own_client(migrated_database):
    box = SecretBox([KEY])
    async with tenants(small_tenant(1, companies=11), small_tenant(2, companies=17)) as sims:
        alpha, beta = sims
        await store_connection(migrated_database, box, "alpha", alpha)
        await store_connection(migrated_database, box, "beta", beta)
        async with _catalogue(migrated_database, _environment(alpha)) as catalogue:
            assert catalogue.names() == ["alpha", "beta", "envconn"]
            assert catalogue.get("envconn").source == "environment"
            assert await catalogue.client("alpha").count("Companies") == 11
            assert await catalogue.client("beta").count("Companies") == 17
            assert catalogue.client("beta") is catalogue.client("beta")  # one per connection


async def test_disable_reaches_a_running_view_within_seconds_and_enable_brings_it_back(
    migrated_database,
):
    box = SecretBox([KEY])
    async with tenants(small_tenant(3), small_tenant(4)) as (alpha, beta):
        await store_connection(migrated_database, box, "alpha", alpha)
        await store_connection(migrated_database, box, "beta", beta)
        changes: list[CatalogueChange] = []
        async with _catalogue(migrated_database, None) as catalogue:
            catalogue.subscribe(changes.append)
            client = catalogue.client("beta")
            await _set(migrated_database, "beta", enabled=False)  # the reload is 10 min away
            await eventually(lambda: catalogue.names() == ["alpha"], within=timedelta(seconds=30))
            with pytest.raises(ConfigError, match="no connection 'beta' is served here"):
                catalogue.client("beta")
            await _set(migrated_database, "beta", enabled=True)
            await eventually(
                lambda: catalogue.names() == ["alpha", "beta"], within=timedelta(seconds=30)
            )
            assert catalogue.client("beta") is not client  # a new client for the new entry
            assert await catalogue.client("beta").count("Companies") == 12
        assert changes[0].removed == frozenset({"beta"})
        assert changes[-1].added == frozenset({"beta"})


async def test_edited_credentials_rebuild_the_client(migrated_database):
    async with tenants(small_tenant(5)) as (alpha,):
        await store_connection(migrated_database, SecretBox([KEY]), "alpha", alpha)
        async with _catalogue(migrated_database, None) as catalogue:
            assert await catalogue.client("alpha").count("Companies") == 12
            await _set(migrated_database, "alpha", secret=SecretStr("wrong-secret-123"))
            await eventually(
                lambda: (
                    catalogue.get("alpha").connection.secret.get_secret_value()
                    == "wrong-secret-123"
                ),
                within=timedelta(seconds=5),
            )
            with pytest.raises(AuthenticationError):
                await catalogue.client("alpha").count("Companies")


async def test_unreadable_and_shadowed_rows_are_skipped_and_the_rest_served(migrated_database):
    async with tenants(small_tenant(6)) as (alpha,):
        await store_connection(migrated_database, SecretBox([KEY]), "alpha", alpha)
        other_key = SecretBox([SecretBox.generate_key()])
        await store_connection(migrated_database, other_key, "lost", alpha)
        await store_connection(migrated_database, other_key, "envconn", alpha)
        async with _catalogue(migrated_database, _environment(alpha)) as catalogue:
            assert catalogue.names() == ["alpha", "envconn"]
            assert catalogue.get("envconn").source == "environment"


async def test_the_view_keeps_serving_when_postgresql_goes_away(database_url, migrated_database):
    async with tenants(small_tenant(7)) as (alpha,):
        await store_connection(migrated_database, SecretBox([KEY]), "alpha", alpha)
        async with _catalogue(migrated_database, None) as catalogue:
            admin = await asyncpg.connect(database_url)
            try:
                name = migrated_database.rpartition("/")[2]
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            assert catalogue.names() == ["alpha"]
            assert await catalogue.client("alpha").count("Companies") == 12

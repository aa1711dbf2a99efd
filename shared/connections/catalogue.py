"""The connection catalogue: every Autotask tenant this process serves, kept current.

The connections a process serves are

- the one configured by ``AUTOTASK_SYNC_AUTOTASK_*`` (when its username is set), named by
  ``AUTOTASK_SYNC_CONNECTION``: the simple single-tenant set-up; and
- every enabled row of the ``connections`` table (``autotask-sync connections add``), secrets
  decrypted with ``AUTOTASK_SYNC_SECRET_KEYS``.

A database row with the environment connection's name is ignored (with an error in the log): the
environment wins, so one process never calls a tenant with two sets of credentials.

The view is live (:class:`~shared.db.live.LiveTable`): a row added, edited, disabled or removed
reaches every running process within moments through NOTIFY, with a periodic reload as the safety
net, and a process keeps serving what it has when PostgreSQL goes away. Each connection gets one
:class:`~shared.autotask.AutotaskClient`, built on first use and closed when the connection goes
or its credentials change; all of them share the process's one HTTP session and, when a
database is configured, one :class:`~shared.apibudget.SharedCoordinator`: the connection's
concurrency slots, hourly budget (``AUTOTASK_SYNC_API_SHARE``) and pause after rejected
credentials are then one thing across every process of the deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import aiohttp

from shared.apibudget import SharedCoordinator, client_config_for, coordinator_from_settings
from shared.autotask import AutotaskClient, ClientConfig, Connection
from shared.connections import store as rows
from shared.db import DbSession, database_dsn
from shared.db.live import LiveTable
from shared.errors import ConfigError, SyncError
from shared.logging import get_logger
from shared.metrics import CONNECTIONS_SERVED
from shared.scope.rules import SyncScope
from shared.secrets import SecretBox
from shared.settings import AutotaskSettings

log = get_logger(__name__)

Source = Literal["environment", "database"]


@dataclass(frozen=True, slots=True)
class ServedConnection:
    """One connection as a process serves it: credentials, scope, and where it came from."""

    connection: Connection
    scope: SyncScope = field(default_factory=SyncScope)
    source: Source = "database"

    @property
    def name(self) -> str:
        return self.connection.name


@dataclass(frozen=True, slots=True)
class CatalogueChange:
    """What one reload changed, by connection name."""

    added: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


ChangeListener = Callable[[CatalogueChange], None]


def environment_connection(settings: AutotaskSettings) -> ServedConnection | None:
    """The connection ``AUTOTASK_SYNC_AUTOTASK_*`` configures, or None when it is not set."""
    if not settings.has_environment_connection:
        return None
    return ServedConnection(
        connection=Connection.from_settings(settings),
        scope=SyncScope.parse(settings.autotask_scope or None),
        source="environment",
    )


class ConnectionCatalogue:
    """The live set of connections; see the module docstring."""

    def __init__(
        self,
        *,
        environment: ServedConnection | None,
        database_url: str | None,
        box: SecretBox | None,
        default_zone_lookup_url: str,
        reload_interval: timedelta = timedelta(seconds=60),
        client_config: ClientConfig | None = None,
        coordinator: SharedCoordinator | None = None,
    ) -> None:
        self._environment = environment
        self._box = box
        self._default_lookup = default_zone_lookup_url
        self._client_config = client_config
        self._coordinator = coordinator
        self._served: dict[str, ServedConnection] = {}
        if environment is not None:
            self._served[environment.name] = environment
        self._clients: dict[str, AutotaskClient] = {}
        self._retired: list[AutotaskClient] = []
        self._session: aiohttp.ClientSession | None = None
        self._listeners: list[ChangeListener] = []
        self._warned: set[str] = set()
        self._table: LiveTable[list[rows.StoredConnection]] | None = None
        if database_url:
            self._table = LiveTable(
                name="connections",
                dsn=database_url,
                channel=rows.CHANNEL,
                load=_load_enabled,
                reload_interval=reload_interval,
            )
            self._table.subscribe(self._apply)
        self._publish_gauge()

    @classmethod
    def from_settings(
        cls, settings: AutotaskSettings, *, client_config: ClientConfig | None = None
    ) -> ConnectionCatalogue:
        """The catalogue a service builds from its settings."""
        keys = settings.secret_keys.get_secret_value()
        return cls(
            environment=environment_connection(settings),
            database_url=database_dsn(settings),
            box=SecretBox.from_setting(keys) if keys else None,
            default_zone_lookup_url=settings.autotask_zone_lookup_url,
            reload_interval=settings.connections_reload_interval,
            client_config=client_config_for(settings, client_config),
            coordinator=coordinator_from_settings(settings),
        )

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the table (waiting a little for it) and start following changes."""
        if self._coordinator is not None:
            await self._coordinator.start()
        if self._table is not None:
            await self._table.start()

    async def stop(self) -> None:
        """Stop following changes and close every client and the shared session."""
        if self._table is not None:
            await self._table.stop()
        clients = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._retired.clear()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._coordinator is not None:
            await self._coordinator.stop()  # gives back this process's slots and reservations

    async def __aenter__(self) -> ConnectionCatalogue:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def refresh(self) -> None:
        """Reload the table now (after this process changed it)."""
        if self._table is not None:
            await self._table.reload()

    # --- the view --------------------------------------------------------------------------
    @property
    def coordinator(self) -> SharedCoordinator | None:
        """What the clients share the API budget through (None: each keeps its own)."""
        return self._coordinator

    @property
    def loaded(self) -> bool:
        """True once the table was read (always true without a database)."""
        return self._table is None or self._table.loaded

    def names(self) -> list[str]:
        return sorted(self._served)

    def served(self) -> Mapping[str, ServedConnection]:
        """Every connection served now, by name (a snapshot; do not keep it)."""
        return dict(self._served)

    def get(self, name: str) -> ServedConnection:
        """The connection called ``name``; ConfigError naming the served ones if unknown."""
        try:
            return self._served[name]
        except KeyError:
            served = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"no connection {name!r} is served here (served: {served}); add it with "
                "`autotask-sync connections add` or enable it"
            ) from None

    def client(self, name: str) -> AutotaskClient:
        """The Autotask client of ``name``, built on first use (one per connection)."""
        client = self._clients.get(name)
        if client is None:
            served = self.get(name)
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, limit_per_host=64)
                )
            client = AutotaskClient(
                served.connection,
                config=self._client_config,
                session=self._session,
                coordinator=self._coordinator,
            )
            self._clients[name] = client
        return client

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener(change)`` after every reload that changed something."""
        self._listeners.append(listener)

    # --- reloads ---------------------------------------------------------------------------
    def _apply(self, stored: list[rows.StoredConnection]) -> None:
        fresh: dict[str, ServedConnection] = {}
        if self._environment is not None:
            fresh[self._environment.name] = self._environment
        for row in stored:
            served = self._open(row)
            if served is not None:
                fresh[served.name] = served
        before = self._served
        change = CatalogueChange(
            added=frozenset(fresh.keys() - before.keys()),
            removed=frozenset(before.keys() - fresh.keys()),
            changed=frozenset(n for n in fresh.keys() & before.keys() if fresh[n] != before[n]),
        )
        self._served = fresh
        for name in change.removed | change.changed:
            client = self._clients.pop(name, None)
            if client is not None:
                self._retired.append(client)  # calls in flight finish; closed at stop
        if change:
            log.info(
                "connections changed",
                added=sorted(change.added),
                changed=sorted(change.changed),
                removed=sorted(change.removed),
            )
            self._publish_gauge()
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    log.exception("connection catalogue listener failed")

    def _open(self, row: rows.StoredConnection) -> ServedConnection | None:
        if self._environment is not None and row.name == self._environment.name:
            self._warn_once(
                row.name,
                "a stored connection has the environment connection's name; the environment "
                "one is served (rename or remove the stored row)",
            )
            return None
        if self._box is None:
            self._warn_once(
                "", "stored connections are not served: AUTOTASK_SYNC_SECRET_KEYS is not set"
            )
            return None
        try:
            connection = row.open(self._box, default_zone_lookup_url=self._default_lookup)
            return ServedConnection(connection=connection, scope=row.sync_scope())
        except SyncError as exc:
            self._warn_once(row.name, f"connection {row.name!r} is not served: {exc}")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.error(message, connection=key or None)

    def _publish_gauge(self) -> None:
        counts = {"environment": 0, "database": 0}
        for served in self._served.values():
            counts[served.source] += 1
        for source, count in counts.items():
            CONNECTIONS_SERVED.labels(source).set(count)


async def _load_enabled(db: DbSession) -> list[rows.StoredConnection]:
    return await rows.fetch_all(db, enabled_only=True)


__all__ = [
    "CatalogueChange",
    "ConnectionCatalogue",
    "ServedConnection",
    "environment_connection",
]

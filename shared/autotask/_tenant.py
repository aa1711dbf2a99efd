"""A connection (one tenant's API credentials) and where its REST API lives.

Autotask tenants live in zones; the REST root is discovered from the username with an
unauthenticated ``zoneInformation`` call, cached, and looked up again once when a call answers
401, because zone moves happen (autotask-api.md §1). A configured ``zone_url`` skips discovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared.autotask._clock import Clock
from shared.autotask._models import ZoneInfo
from shared.errors import ConfigError
from shared.settings import CONNECTION_NAME_PATTERN, DEFAULT_ZONE_LOOKUP_URL, AutotaskSettings

API_VERSION = "v1.0"
_CONFIRMED_SECONDS = 60.0


def normalize_root(url: str) -> str:
    """``https://host/atservicesrest`` whatever trailing slash or ``/v1.0`` it came with."""
    root = url.strip().rstrip("/")
    if root.lower().endswith("/" + API_VERSION):
        root = root[: -len(API_VERSION) - 1].rstrip("/")
    return root


class Connection(BaseModel):
    """One tenant's credentials and zone; its repr and errors never show the secrets."""

    # Validation errors must not echo input values: they could be the secret.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str = Field(default="default", pattern=CONNECTION_NAME_PATTERN)
    username: str = Field(min_length=1)
    secret: SecretStr
    integration_code: SecretStr
    zone_url: str | None = None
    zone_lookup_url: str = DEFAULT_ZONE_LOOKUP_URL
    impersonation_resource_id: int | None = Field(default=None, ge=1)

    @field_validator("zone_url", "zone_lookup_url")
    @classmethod
    def _normalize(cls, value: str | None) -> str | None:
        return normalize_root(value) if value else None

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @classmethod
    def from_settings(cls, settings: AutotaskSettings) -> Connection:
        """The connection configured by ``AUTOTASK_SYNC_AUTOTASK_*`` variables."""
        missing = [
            var
            for var, value in (
                ("AUTOTASK_SYNC_AUTOTASK_USERNAME", settings.autotask_username.strip()),
                ("AUTOTASK_SYNC_AUTOTASK_SECRET", settings.autotask_secret.get_secret_value()),
                (
                    "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE",
                    settings.autotask_integration_code.get_secret_value(),
                ),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"Autotask credentials are incomplete: set {', '.join(missing)} (the API-only "
                "user's username and secret, and its API tracking identifier)"
            )
        try:
            return cls(
                name=settings.connection,
                username=settings.autotask_username,
                secret=settings.autotask_secret,
                integration_code=settings.autotask_integration_code,
                zone_url=settings.autotask_zone_url or None,
                zone_lookup_url=settings.autotask_zone_lookup_url,
                impersonation_resource_id=settings.autotask_impersonation_resource_id,
            )
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
            raise ConfigError(f"invalid Autotask connection settings: {fields}") from None

    def headers(self, *, write: bool) -> dict[str, str]:
        """The auth headers; impersonation only on writes (Autotask ignores it on reads)."""
        headers = {
            "ApiIntegrationCode": self.integration_code.get_secret_value(),
            "UserName": self.username,
            "Secret": self.secret.get_secret_value(),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if write and self.impersonation_resource_id is not None:
            headers["ImpersonationResourceId"] = str(self.impersonation_resource_id)
        return headers

    def secret_values(self) -> tuple[str, ...]:
        """Values that must never appear in text we produce (see ``Redactor``)."""
        return (self.secret.get_secret_value(), self.integration_code.get_secret_value())


class ZoneResolver:
    """The REST root of one connection: configured, or discovered and cached for ``ttl``."""

    def __init__(
        self,
        connection: Connection,
        lookup: Callable[[], Awaitable[ZoneInfo]],
        *,
        clock: Clock,
        ttl: float,
    ) -> None:
        self._connection = connection
        self._lookup = lookup
        self._clock = clock
        self._ttl = ttl
        self._info: ZoneInfo | None = None
        self._expires = 0.0
        # A root a fresh lookup confirmed after a 401: the credentials are wrong, not the zone.
        self._confirmed: tuple[str, float] | None = None
        self._lock = asyncio.Lock()  # 50 first calls at once make one lookup, not 50

    @property
    def discovered(self) -> bool:
        """False when the zone URL is configured (nothing to re-discover on 401)."""
        return self._connection.zone_url is None

    @property
    def info(self) -> ZoneInfo | None:
        """The last zone answer, if any was fetched."""
        return self._info

    async def root(self) -> str:
        """The REST root to call now, discovering it if unknown or expired."""
        if self._connection.zone_url is not None:
            return self._connection.zone_url
        if self._info is not None and self._clock.monotonic() < self._expires:
            return self._info.url
        async with self._lock:
            if self._info is None or self._clock.monotonic() >= self._expires:
                await self._refresh()
            assert self._info is not None
            return self._info.url

    async def rediscover(self, failed_root: str) -> bool:
        """After a 401 from ``failed_root``: look again; True if the root changed.

        If another call already moved the root, no new lookup is made.
        """
        if not self.discovered:
            return False
        async with self._lock:
            if self._info is not None and self._info.url != failed_root:
                return True
            now = self._clock.monotonic()
            confirmed = self._confirmed
            if (
                confirmed is not None
                and confirmed[0] == failed_root
                and now - confirmed[1] < _CONFIRMED_SECONDS
            ):
                return False  # just looked: concurrent 401s need not all ask again
            await self._refresh()
            assert self._info is not None
            if self._info.url == failed_root:
                self._confirmed = (failed_root, now)
                return False
            return True

    async def _refresh(self) -> None:
        self._info = await self._lookup()
        self._expires = self._clock.monotonic() + self._ttl


__all__ = [
    "API_VERSION",
    "DEFAULT_ZONE_LOOKUP_URL",
    "Connection",
    "ZoneResolver",
    "normalize_root",
]

"""Typed, frozen settings parsed once at start from the environment.

Every variable has the prefix ``AUTOTASK_SYNC_`` (docs/configuration.md lists them all). Two
well-known names are also accepted without the prefix because platforms set them for you:
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``.

Each service defines its own settings class on top of :class:`BaseServiceSettings` and calls
:func:`load_settings` once in ``__main__``; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

ENV_PREFIX = "AUTOTASK_SYNC_"

DEFAULT_ZONE_LOOKUP_URL = "https://webservices.autotask.net/atservicesrest"
"""Zone discovery's host; any zone host answers (autotask-api.md §1)."""

DEFAULT_KAFKA_MAX_REQUEST_SIZE = 1024 * 1024
"""aiokafka's own default ``max_request_size``; Kafka's default topic limit is 12 bytes more."""

CONNECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A connection name: a lower-case slug, as used in keys, rows and metric labels."""

WELL_KNOWN_NAMES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
}
"""Settings platforms set for you under their usual names; the prefixed name wins over these."""

OPS_PORTS: Mapping[str, int] = MappingProxyType(
    {"webhook_gateway": 9080, "sync_worker": 9081, "provisioner": 9082, "reconciler": 9083}
)
"""Each service's default ops port (``/healthz``, ``/readyz``, ``/metrics``), by the name it
runs under: all different, and different from the gateway's public ``http_port`` (8080), so
every service runs on one host with its defaults (docs/configuration.md, "Ports")."""


def env_names(field_name: str) -> tuple[str, ...]:
    """The variables a setting is read from, in order of precedence (the prefixed name first)."""
    prefixed = ENV_PREFIX + field_name.upper()
    bare = WELL_KNOWN_NAMES.get(field_name)
    return (prefixed, bare) if bare else (prefixed,)


def configured_value(field_name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value the environment gives a setting, by the same precedence the settings use.

    For code outside the settings classes that must agree with them (the development stack,
    the test session deciding whether to start its own infrastructure).
    """
    env = os.environ if environ is None else environ
    return next((env[name] for name in env_names(field_name) if env.get(name)), None)


_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """``15``, ``15s``, ``500ms``, ``2m``, ``1h`` as a timedelta; anything else is returned as is
    (pydantic then tries ISO 8601)."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"]])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A duration from the environment: seconds (``15``), or with a unit (``500ms``, ``2m``, ``1h``)."""

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class BaseServiceSettings(BaseSettings):
    """Settings every service shares: identity, logging, metrics, Kafka, PostgreSQL, topics."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    connection: str = Field(
        default="default",
        pattern=CONNECTION_NAME_PATTERN,
        description="Name of the Autotask connection this process serves (lower-case slug).",
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(
        default="auto", description="json, console, or auto (console on a TTY, else json)."
    )
    http_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - containers listen on all interfaces
        description="Bind address of the public HTTP server (the gateway's callout routes) and, "
        "unless OPS_HOST is set, of the ops endpoints.",
    )
    http_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port of the public routes: the gateway's callouts. Services without "
        "public routes serve nothing on it.",
    )
    ops_host: str | None = Field(
        default=None, description="Bind address of the ops endpoints; unset: HTTP_HOST."
    )
    ops_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the ops endpoints (/healthz, /readyz, /metrics); unset: the "
        "service's own default (OPS_PORTS), distinct for each service.",
    )
    shutdown_grace: Duration = Field(
        default=timedelta(seconds=20),
        description="Drain budget after SIGTERM (Kubernetes kills after 30 s).",
    )
    startup_wait: Duration = Field(
        default=timedelta(minutes=2),
        description="How long a starting service waits for PostgreSQL and Kafka to be reachable "
        "(pods start in any order) before it gives up and exits.",
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(*env_names("kafka_bootstrap_servers")),
    )
    kafka_client_id: str = "autotask-sync"
    kafka_max_request_size: int = Field(
        default=DEFAULT_KAFKA_MAX_REQUEST_SIZE,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Largest message the producers send, in bytes, record overhead included "
        "(aiokafka's max_request_size; 1 MiB like its default). Each topic's max.message.bytes "
        "(the broker's message.max.bytes by default, 1 MiB + 12) must be at least this.",
    )
    topic_prefix: str = Field(
        default="autotask", description="First segment of every topic name (autotask.<x>.v1)."
    )

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://autotask_sync@127.0.0.1:5432/autotask_sync"),
        validation_alias=AliasChoices(*env_names("database_url")),
    )
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)

    secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet keys for the secrets stored in PostgreSQL, comma-separated: the first "
        "encrypts, all decrypt (shared/secrets.py).",
    )
    connections_reload_interval: Duration = Field(
        default=timedelta(seconds=60),
        description="Full reload of the connections table besides its change notifications.",
    )


class AutotaskSettings(BaseServiceSettings):
    """The single connection configured from the environment (the simple default)."""

    autotask_username: str = Field(default="", description="The API-only user's username.")
    autotask_secret: SecretStr = Field(default=SecretStr(""), description="The API user's secret.")
    autotask_integration_code: SecretStr = Field(
        default=SecretStr(""), description="The API tracking identifier (integration code)."
    )
    autotask_zone_url: str | None = Field(
        default=None,
        description="REST root such as https://webservices14.autotask.net/atservicesrest; "
        "discovered from the username when unset.",
    )
    autotask_zone_lookup_url: str = Field(
        default=DEFAULT_ZONE_LOOKUP_URL,
        description="Where zone discovery asks; any zone host answers. Also the default for "
        "connections stored in the database.",
    )
    autotask_impersonation_resource_id: int | None = Field(default=None, ge=1)
    autotask_scope: str = Field(
        default="",
        description="Sync scope of the environment connection, as JSON (shared/scope/rules.py).",
    )

    # The API budget every process of the deployment shares (docs/configuration.md, "API budget").
    api_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the tenant's hourly API threshold this deployment may use, every "
        "process together; the rest is left to the PSA's other integrations.",
    )
    api_shared_slots: bool = Field(
        default=True,
        description="Share the 3 concurrent calls per endpoint between processes through "
        "PostgreSQL (false: each process keeps its own).",
    )
    api_slot_ttl: Duration = Field(
        default=timedelta(seconds=30),
        ge=timedelta(seconds=1),
        description="Lease of a shared slot: a process that dies holding one loses it within "
        "this (live holders renew theirs).",
    )
    api_auth_cooldown: Duration = Field(
        default=timedelta(minutes=5),
        gt=timedelta(0),
        description="Pause of every call to a connection after Autotask rejected its "
        "credentials; it doubles with each rejection in a row.",
    )
    api_auth_cooldown_max: Duration = Field(
        default=timedelta(hours=1),
        gt=timedelta(0),
        description="The longest such pause.",
    )
    api_rate_limit_pause: Duration = Field(
        default=timedelta(seconds=60),
        gt=timedelta(0),
        description="How long a process stops calling a connection after a 429 or thread-limit "
        "rejection that names no Retry-After (docs/autotask-api.md §5).",
    )

    @property
    def has_environment_connection(self) -> bool:
        """True when ``AUTOTASK_SYNC_AUTOTASK_USERNAME`` names an environment connection."""
        return bool(self.autotask_username.strip())


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build ``cls`` from the environment, turning validation errors into one clear ConfigError.

    The message names each offending variable and why it was refused; it never repeats the
    value, which might be a secret.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc") or ("?",)
            field_name = str(loc[0])
            problems.append(f"{_env_name(cls, field_name)}: {error['msg']}")
        raise ConfigError(
            "invalid configuration: " + "; ".join(problems) + " (see docs/configuration.md)"
        ) from None


def _env_name(cls: type[BaseSettings], field_name: str) -> str:
    if field_name.startswith(ENV_PREFIX):  # an alias was reported
        return field_name
    field = cls.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return ENV_PREFIX + field_name.upper()

"""Typed, frozen settings parsed once at start from the environment.

Every variable has the prefix ``AUTOTASK_SYNC_`` (docs/configuration.md lists them all). Two
well-known names are also accepted without the prefix because platforms set them for you:
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``.

Each service defines its own settings class on top of :class:`BaseServiceSettings` and calls
:func:`load_settings` once in ``__main__``; nothing reads the environment at import time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

ENV_PREFIX = "AUTOTASK_SYNC_"

_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _parse_duration(value: Any) -> Any:
    """Accept ``15``, ``15s``, ``500ms``, ``2m``, ``1h`` (and ISO 8601 via pydantic)."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"]])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
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
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Name of the Autotask connection this process serves (lower-case slug).",
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(
        default="auto", description="json, console, or auto (console on a TTY, else json)."
    )
    http_host: str = Field(default="0.0.0.0", description="Bind address of the HTTP server.")  # noqa: S104 - containers listen on all interfaces
    http_port: int = Field(default=8080, ge=0, le=65535)
    shutdown_grace: Duration = Field(
        default=timedelta(seconds=20),
        description="Drain budget after SIGTERM (Kubernetes kills after 30 s).",
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    kafka_client_id: str = "autotask-sync"
    topic_prefix: str = Field(
        default="autotask", description="First segment of every topic name (autotask.<x>.v1)."
    )

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://autotask_sync@127.0.0.1:5432/autotask_sync"),
        validation_alias=AliasChoices(f"{ENV_PREFIX}DATABASE_URL", "DATABASE_URL"),
    )
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)


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
        default="https://webservices.autotask.net/atservicesrest",
        description="Where zone discovery asks; any zone host answers.",
    )
    autotask_impersonation_resource_id: int | None = Field(default=None, ge=1)


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

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
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError
from shared.messages.topics import DEFAULT_TOMBSTONE_RETENTION

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


def env_name(field_name: str) -> str:
    """The variable a setting is named by in messages that say what to fix (``kafka_sasl_password``
    -> ``AUTOTASK_SYNC_KAFKA_SASL_PASSWORD``)."""
    return env_names(field_name)[0]


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


def readable_file(path: Path) -> Path:
    """``path`` if this process can read it as a file; else a ValueError saying why (checked at
    start, so a Secret or certificate that is not mounted stops the process with its name)."""
    if not path.is_file():
        raise ValueError(f"{path} is not a file (is it mounted?)")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable by this process (uid {os.getuid()})")
    return path


ReadableFile = Annotated[Path, AfterValidator(readable_file)]
"""A path to a file that exists and that this process may read."""

DatabaseSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
"""libpq's ``sslmode`` values, which asyncpg understands."""

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


def _upper_case(value: Any) -> Any:
    """``sasl_ssl`` as ``SASL_SSL``; an empty value as unset."""
    return (value.strip().upper() or None) if isinstance(value, str) else value


_SecurityProtocolValue = Annotated[KafkaSecurityProtocol, BeforeValidator(_upper_case)]
_SaslMechanismValue = Annotated[KafkaSaslMechanism | None, BeforeValidator(_upper_case)]

ChangeValueFormat = Literal["json", "connect-json"]
"""The values of :data:`shared.messages.change.ValueFormat` (spelled out here: that module
imports the mirror, which imports these settings)."""
_ChangeValueFormatValue = Annotated[
    ChangeValueFormat, BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)
]


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
    stall_unready_after: Duration = Field(
        default=timedelta(seconds=60),
        description="A part of the service that has work (consumer lag, spooled callouts, "
        "unacknowledged sends) and gets none of it done for this long makes /readyz fail "
        "(shared/runtime/progress.py).",
    )
    stall_unhealthy_after: Duration = Field(
        default=timedelta(minutes=5),
        description="...and for this long, while PostgreSQL and Kafka answer, makes /healthz "
        "fail so Kubernetes replaces the pod. Longer than STALL_UNREADY_AFTER.",
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
    # How every Kafka client authenticates and encrypts (managed Kafka): shared/kafka/security.py
    # checks the combination at start and builds each client's options from it
    # (docs/configuration.md, "Kafka security").
    kafka_security_protocol: _SecurityProtocolValue = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    )
    kafka_sasl_mechanism: _SaslMechanismValue = Field(
        default=None,
        description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER; required with SASL_*.",
    )
    kafka_sasl_username: str = Field(default="", description="SASL user (PLAIN and SCRAM).")
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""), description="SASL password (PLAIN and SCRAM)."
    )
    kafka_sasl_password_file: ReadableFile | None = Field(
        default=None, description="A file holding the SASL password (a mounted Secret)."
    )
    kafka_sasl_oauth_token_provider: str = Field(
        default="",
        description="OAUTHBEARER: 'package.module:callable' returning an aiokafka "
        "AbstractTokenProvider (AWS MSK IAM, an identity provider's client credentials).",
    )
    kafka_ssl_cafile: ReadableFile | None = Field(
        default=None,
        description="PEM CA bundle the brokers' certificates must chain to; unset: the "
        "system's trusted CAs.",
    )
    kafka_ssl_certfile: ReadableFile | None = Field(
        default=None, description="PEM client certificate, for listeners that require one."
    )
    kafka_ssl_keyfile: ReadableFile | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    kafka_ssl_key_password: SecretStr = Field(
        default=SecretStr(""), description="Password of an encrypted client key."
    )
    kafka_ssl_key_password_file: ReadableFile | None = Field(
        default=None, description="A file holding the client key's password (a mounted Secret)."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Whether each broker's certificate must name the host the client dialled.",
    )
    topic_prefix: str = Field(
        default="autotask", description="First segment of every topic name (autotask.<x>.v1)."
    )
    tombstone_retention: Duration = Field(
        default=DEFAULT_TOMBSTONE_RETENTION,
        ge=timedelta(hours=1),
        description="delete.retention.ms of the change topics (autotask-sync topics): how long "
        "compaction keeps a removal's tombstone; consumers further behind miss the removal. At "
        "least 1h (a bare number is seconds: 86400, 24h).",
    )
    change_value_format: _ChangeValueFormatValue = Field(
        default="json",
        description="Value format of the change topics: json (the envelope as it is) or "
        "connect-json (Kafka Connect's JSON with schema, for its sinks; docs/consumers.md).",
    )

    database_url: SecretStr = Field(
        default=SecretStr("postgresql://autotask_sync@127.0.0.1:5432/autotask_sync"),
        validation_alias=AliasChoices(*env_names("database_url")),
    )
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)
    # How to reach PostgreSQL: shared.db.database_dsn merges these into the URL (docs/
    # configuration.md, "PostgreSQL over TLS"); every pool and session uses its result.
    database_url_file: ReadableFile | None = Field(
        default=None,
        description="A file holding the database URL (a mounted Secret); wins over DATABASE_URL.",
    )
    database_password_file: ReadableFile | None = Field(
        default=None,
        description="A file holding the database password (a mounted Secret); it replaces any "
        "password in the URL.",
    )
    database_sslmode: DatabaseSslMode | None = Field(
        default=None,
        description="TLS to PostgreSQL (disable, allow, prefer, require, verify-ca, verify-full); "
        "wins over sslmode in the URL. Unset and not in the URL: prefer.",
    )
    database_sslrootcert: ReadableFile | None = Field(
        default=None,
        description="The CA certificate(s) the server's certificate must chain to (the "
        "provider's bundle); wins over sslrootcert in the URL.",
    )
    database_sslcert: ReadableFile | None = Field(
        default=None,
        description="Client certificate, when the server asks for one; wins over sslcert in "
        "the URL.",
    )
    database_sslkey: ReadableFile | None = Field(
        default=None,
        description="The client certificate's private key; wins over sslkey in the URL.",
    )

    secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet keys for the secrets stored in PostgreSQL, comma-separated: the first "
        "encrypts, all decrypt (shared/secrets.py).",
    )
    connections_reload_interval: Duration = Field(
        default=timedelta(seconds=60),
        description="Full reload of the connections table besides its change notifications.",
    )

    @field_validator("stall_unhealthy_after")
    @classmethod
    def _liveness_after_readiness(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        unready = info.data.get("stall_unready_after")
        if unready is not None and value <= unready:
            raise ValueError(
                "must be longer than AUTOTASK_SYNC_STALL_UNREADY_AFTER "
                f"({unready.total_seconds():g} s): a stuck pod leaves the Service before it "
                "is replaced"
            )
        return value


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
    return env_name(field_name)

"""Typed, frozen settings parsed once at start from the environment.

Every variable has the prefix ``AUTOTASK_SYNC_`` (docs/configuration.md lists them all). Two
well-known names are also accepted without the prefix because platforms set them for you:
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``.

Each service defines its own settings class on top of :class:`BaseServiceSettings` and calls
:func:`load_settings` once in ``__main__``; nothing reads the environment at import time.

Mistakes stop the process at start, named: a malformed value, a duration outside its bounds
(:class:`Within`), a malformed URL, and an ``AUTOTASK_SYNC_*`` variable that no process of the
product reads (a misspelt name would otherwise be ignored; :func:`unknown_variables`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema
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
"""A duration from the environment: seconds (``15``), or with a unit (``500ms``, ``2m``, ``1h``).
Every Duration setting also has its bounds: ``Annotated[Duration, Within("1s", "24h")]``."""


class Within:
    """The bounds of a duration setting, written as the variables are (``Within("5s", "24h")``).

    A value outside them stops the process at start with the bound in the message (``must be at
    least 5s``): a zero or a unit mistaken (``SWEEP_INTERVAL=0``, ``300`` meant as minutes) is
    refused instead of running a loop flat out or waiting for days.
    """

    def __init__(self, low: str, high: str) -> None:
        self.low_text, self.high_text = low, high
        self.low, self.high = parse_duration(low), parse_duration(high)
        if not isinstance(self.low, timedelta) or not isinstance(self.high, timedelta):
            raise TypeError(f"bounds must be durations such as 5s or 24h, not {low!r}, {high!r}")

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: timedelta) -> timedelta:
        """``value`` when it lies within the bounds, else a ValueError naming the bound."""
        if value < self.low:
            raise ValueError(f"must be at least {self.low_text}")
        if value > self.high:
            raise ValueError(f"must be at most {self.high_text}")
        return value

    def __repr__(self) -> str:
        return f"Within({self.low_text!r}, {self.high_text!r})"


def http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host (and a valid port); else a
    ValueError saying what is wrong, without repeating the URL."""
    if any(character.isspace() for character in value):
        raise ValueError("must not contain spaces (percent-encode them as %20)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number or out of range
    except ValueError:
        raise ValueError("has a port that is not a number between 0 and 65535") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with https:// (or http://)")
    if not parts.hostname:
        raise ValueError("names no host: write it as https://host.example.com/path")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
"""An absolute http(s) URL, checked at start (:func:`http_url`)."""


def _blank_as_unset(value: Any) -> Any:
    """An empty value (a ConfigMap key left blank) as unset."""
    return (value.strip() or None) if isinstance(value, str) else value


def _bootstrap_servers(value: str) -> str:
    """Kafka's bootstrap servers, ``host:port`` comma-separated (a bracketed IPv6 address and a
    missing port, 9092, as aiokafka takes them); a ValueError naming the faulty entry by its
    position, never its text."""
    entries = [entry.strip() for entry in value.split(",")]
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number} of {len(entries)}" if len(entries) > 1 else "the address"
        if not entry:
            raise ValueError(f"{where} is empty: list host:port pairs separated by commas")
        if "://" in entry:
            raise ValueError(f"{where} has a scheme: write host:port, without ...://")
        if any(character.isspace() for character in entry):
            raise ValueError(f"{where} contains a space: list host:port pairs")
        host, port = host_and_port(entry)
        if not host:
            raise ValueError(f"{where} names no host: write host:port")
        if port is not None and not (port.isdigit() and 0 < int(port) <= 65535):
            raise ValueError(f"{where} has a port that is not a number between 1 and 65535")
    return value


def host_and_port(entry: str) -> tuple[str, str | None]:
    """``host`` and ``port`` of ``host:port``, ``[ipv6]:port``, ``host`` or a bare IPv6 address
    (whose last group is taken for the port only when the address is bracketed)."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return "", None
        return host, rest[1:] if rest else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, None


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
    shutdown_grace: Annotated[Duration, Within("1s", "10m")] = Field(
        default=timedelta(seconds=20),
        description="Drain budget after SIGTERM (Kubernetes kills after 30 s).",
    )
    startup_wait: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=2),
        description="How long a starting service waits for PostgreSQL and Kafka to be reachable "
        "(pods start in any order) before it gives up and exits.",
    )
    stall_unready_after: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(seconds=60),
        description="A part of the service that has work (consumer lag, spooled callouts, "
        "unacknowledged sends) and gets none of it done for this long makes /readyz fail "
        "(shared/runtime/progress.py).",
    )
    stall_unhealthy_after: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=5),
        description="...and for this long, while PostgreSQL and Kafka answer, makes /healthz "
        "fail so Kubernetes replaces the pod. Longer than STALL_UNREADY_AFTER.",
    )

    kafka_bootstrap_servers: Annotated[str, AfterValidator(_bootstrap_servers)] = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(*env_names("kafka_bootstrap_servers")),
        description="host:port pairs, comma-separated.",
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
    tombstone_retention: Annotated[Duration, Within("1h", "2160h")] = Field(
        default=DEFAULT_TOMBSTONE_RETENTION,
        description="delete.retention.ms of the change topics (autotask-sync topics): how long "
        "compaction keeps a removal's tombstone; consumers further behind miss the removal. At "
        "least 1h, at most 90 days (2160h; a bare number is seconds: 86400, 24h).",
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
    connections_reload_interval: Annotated[Duration, Within("1s", "24h")] = Field(
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
    autotask_zone_url: Annotated[HttpUrl | None, BeforeValidator(_blank_as_unset)] = Field(
        default=None,
        description="REST root such as https://webservices14.autotask.net/atservicesrest; "
        "discovered from the username when unset.",
    )
    autotask_zone_lookup_url: HttpUrl = Field(
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
    api_slot_ttl: Annotated[Duration, Within("1s", "1h")] = Field(
        default=timedelta(seconds=30),
        description="Lease of a shared slot: a process that dies holding one loses it within "
        "this (live holders renew theirs).",
    )
    api_auth_cooldown: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(minutes=5),
        description="Pause of every call to a connection after Autotask rejected its "
        "credentials; it doubles with each rejection in a row.",
    )
    api_auth_cooldown_max: Annotated[Duration, Within("1s", "24h")] = Field(
        default=timedelta(hours=1),
        description="The longest such pause.",
    )
    api_rate_limit_pause: Annotated[Duration, Within("1s", "1h")] = Field(
        default=timedelta(seconds=60),
        description="How long a process stops calling a connection after a 429 or thread-limit "
        "rejection that names no Retry-After (docs/autotask-api.md §5).",
    )

    @property
    def has_environment_connection(self) -> bool:
        """True when ``AUTOTASK_SYNC_AUTOTASK_USERNAME`` names an environment connection."""
        return bool(self.autotask_username.strip())


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
_PYDANTIC_VALUE_ERROR = "Value error, "
"""How pydantic begins the message of a ValueError a validator raised: left out."""

ALLOW_UNKNOWN = ENV_PREFIX + "ALLOW_UNKNOWN"
"""Names, comma-separated, of ``AUTOTASK_SYNC_*`` variables set on purpose that no process reads
(:func:`unknown_variables` lets them pass)."""

SERVICE_VARIABLES = frozenset(
    {
        # services/webhook_gateway/settings.py
        "AUTOTASK_SYNC_BAD_SIGNATURES_PER_CLIENT",
        "AUTOTASK_SYNC_BAD_SIGNATURES_PER_REGISTRATION",
        "AUTOTASK_SYNC_BODY_DEADLINE",
        "AUTOTASK_SYNC_CLIENT_IP_HEADER",
        "AUTOTASK_SYNC_DEACTIVATION_INTERVAL",
        "AUTOTASK_SYNC_DEDUP_SIZE",
        "AUTOTASK_SYNC_DEDUP_WINDOW",
        "AUTOTASK_SYNC_HEADER_DEADLINE",
        "AUTOTASK_SYNC_KAFKA_RETRY_INTERVAL",
        "AUTOTASK_SYNC_LAST_CALLOUT_FLUSH_INTERVAL",
        "AUTOTASK_SYNC_MAX_BODY_SIZE",
        "AUTOTASK_SYNC_MAX_CONCURRENT_CALLOUTS",
        "AUTOTASK_SYNC_MAX_UNFINISHED_BODIES",
        "AUTOTASK_SYNC_MAX_UNFINISHED_BODIES_PER_CLIENT",
        "AUTOTASK_SYNC_PRODUCE_DEADLINE",
        "AUTOTASK_SYNC_REGISTRATIONS_RELOAD_INTERVAL",
        "AUTOTASK_SYNC_SPOOL_CHECK_INTERVAL",
        "AUTOTASK_SYNC_SPOOL_DEADLINE",
        "AUTOTASK_SYNC_SPOOL_DRAIN_BATCH",
        "AUTOTASK_SYNC_SPOOL_DRAIN_INTERVAL",
        # shared/reconcile/settings.py: the worker, the reconciler and the sweep commands
        "AUTOTASK_SYNC_BACKFILL_ON_FIRST_LOAD",
        "AUTOTASK_SYNC_CONTROL_GROUP",
        "AUTOTASK_SYNC_ID_SWEEP_INTERVAL",
        "AUTOTASK_SYNC_MASS_DELETE_MIN",
        "AUTOTASK_SYNC_MASS_DELETE_SHARE",
        "AUTOTASK_SYNC_METADATA_INTERVAL",
        "AUTOTASK_SYNC_SWEEP_CHECK_INTERVAL",
        "AUTOTASK_SYNC_SWEEP_CONCURRENCY",
        "AUTOTASK_SYNC_SWEEP_INTERVAL",
        "AUTOTASK_SYNC_SWEEP_INTERVALS",
        "AUTOTASK_SYNC_SWEEP_LOCK_WAIT",
        "AUTOTASK_SYNC_SWEEP_OVERLAP",
        "AUTOTASK_SYNC_SWEEP_PAGE_SIZE",
        "AUTOTASK_SYNC_SWEEP_REQUEST_WINDOW",
        # services/sync_worker/settings.py
        "AUTOTASK_SYNC_CONCURRENT_UNITS",
        "AUTOTASK_SYNC_CONSUMER_GROUP",
        "AUTOTASK_SYNC_CONSUMER_HEARTBEAT_INTERVAL",
        "AUTOTASK_SYNC_CONSUMER_REBALANCE_TIMEOUT",
        "AUTOTASK_SYNC_CONSUMER_SESSION_TIMEOUT",
        "AUTOTASK_SYNC_DEAD_LETTER_AFTER",
        "AUTOTASK_SYNC_DEAD_LETTER_MIN_AGE",
        "AUTOTASK_SYNC_MAX_IDS_PER_FETCH",
        "AUTOTASK_SYNC_MAX_IN_FLIGHT",
        "AUTOTASK_SYNC_MISSING_RETRIES",
        "AUTOTASK_SYNC_MISSING_RETRY_DELAY",
        "AUTOTASK_SYNC_RETRY_DELAY_MAX",
        "AUTOTASK_SYNC_REVOKE_WAIT",
        "AUTOTASK_SYNC_SWEEPS_ENABLED",
        "AUTOTASK_SYNC_WINDOW_HIGH",
        "AUTOTASK_SYNC_WINDOW_HIGH_AT",
        "AUTOTASK_SYNC_WINDOW_LOW",
        "AUTOTASK_SYNC_WINDOW_MEDIUM",
        "AUTOTASK_SYNC_WINDOW_MEDIUM_AT",
        # services/provisioner/settings.py
        "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL",
        "AUTOTASK_SYNC_PRODUCTION_MODE",
        "AUTOTASK_SYNC_PROVISIONER_DEACTIVATION_WINDOW",
        "AUTOTASK_SYNC_PROVISIONER_EVENT_COALESCE",
        "AUTOTASK_SYNC_PROVISIONER_GROUP_ID",
        "AUTOTASK_SYNC_PROVISIONER_INTERVAL",
        "AUTOTASK_SYNC_PROVISIONER_LOCK_WAIT",
        "AUTOTASK_SYNC_PROVISIONER_METADATA_TTL",
        "AUTOTASK_SYNC_WEBHOOK_ENTITIES",
        "AUTOTASK_SYNC_WEBHOOK_EVENTS",
        "AUTOTASK_SYNC_WEBHOOK_EXCLUDED_RESOURCES",
        "AUTOTASK_SYNC_WEBHOOK_EXCLUDE_API_USER",
        "AUTOTASK_SYNC_WEBHOOK_NOTIFICATION_EMAIL",
        "AUTOTASK_SYNC_WEBHOOK_SECRET_OVERLAP",
        "AUTOTASK_SYNC_WEBHOOK_THRESHOLD_NOTIFICATIONS",
    }
)
"""The variables of the settings classes outside this module: each service knows only its own
class, but one environment often configures them all (a shell, the demo, a shared ConfigMap), so
a name any process reads is no mistake in another. tests/shared/test_settings.py keeps this list
equal to what the classes read."""

DEVELOPMENT_VARIABLES = frozenset(
    {
        "AUTOTASK_SYNC_CACHE_DIR",
        "AUTOTASK_SYNC_DEMO_GATEWAY_PORT",
        "AUTOTASK_SYNC_DEMO_REAL",
        "AUTOTASK_SYNC_KUSTOMIZE",
        "AUTOTASK_SYNC_NO_DOCKER",
        "AUTOTASK_SYNC_PG_USER",
        "AUTOTASK_SYNC_REUSE_STACK",
        "AUTOTASK_SYNC_SOAK",
    }
)
"""Variables the development tools and the tests read, never a setting (docs/configuration.md,
"Development and tests only"): the environment that runs the tests or the demo runs the
services too."""


def variables(cls: type[BaseSettings]) -> frozenset[str]:
    """Every variable ``cls`` reads (:func:`env_names` of each field)."""
    return frozenset(name for field_name in cls.model_fields for name in env_names(field_name))


def unknown_variables(cls: type[BaseSettings], environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``AUTOTASK_SYNC_*`` variable of ``environ`` that no process of the
    product reads, with the closest name that one does (a typo would otherwise be ignored, and
    the setting it meant keep its default). Names listed in ``AUTOTASK_SYNC_ALLOW_UNKNOWN``
    pass."""
    known = (
        variables(cls)
        | variables(AutotaskSettings)
        | SERVICE_VARIABLES
        | DEVELOPMENT_VARIABLES
        | {ALLOW_UNKNOWN}
    )
    allowed = {
        name.strip().upper()
        for key, value in environ.items()
        if key.upper() == ALLOW_UNKNOWN
        for name in value.split(",")
    }
    passing = known | allowed
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX)
        and name.upper() not in passing
        and not _service_link(name, environ)
    )
    settings = sorted(known - DEVELOPMENT_VARIABLES - {ALLOW_UNKNOWN})
    problems = [f"{name} is not a setting{_closest(name, settings)}" for name in unknown]
    if problems:
        problems.append(f"list variables set on purpose in {ALLOW_UNKNOWN}")
    return problems


_SERVICE_LINK = re.compile(
    r"^(?P<service>.+?)_(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)"
    r"(?:_PROTO|_PORT|_ADDR)?)?)$"
)


def _service_link(name: str, environ: Mapping[str, str]) -> bool:
    """Whether ``name`` is one of the variables Kubernetes sets for a Service of the namespace
    (``<SERVICE>_SERVICE_HOST``, ``<SERVICE>_PORT_8080_TCP`` for ``autotask-sync-gateway``)
    where service links are on (the manifests turn them off; other deployments may not):
    they come with their ``<SERVICE>_SERVICE_HOST``, which no typo of a setting does."""
    match = _SERVICE_LINK.match(name.upper())
    return match is not None and f"{match['service']}_SERVICE_HOST" in environ


def _closest(name: str, candidates: list[str]) -> str:
    """``" (did you mean X?)"`` with the candidate most like ``name``, or ``""``."""
    suffixes = [candidate.removeprefix(ENV_PREFIX) for candidate in candidates]
    close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), suffixes, n=1)
    return f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build ``cls`` from the environment, turning validation errors into one clear ConfigError.

    The message names each offending variable and why it was refused, unknown variables
    (:func:`unknown_variables`) included; it never repeats a value, which might be a secret.
    """
    problems = unknown_variables(cls, os.environ)
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error.get("loc") or ("?",)
            where = ": ".join([_env_name(str(loc[0])), *map(str, loc[1:])])
            problems.append(f"{where}: {error['msg'].removeprefix(_PYDANTIC_VALUE_ERROR)}")
    if problems:
        raise ConfigError(
            "invalid configuration: " + "; ".join(problems) + " (see docs/configuration.md)"
        )
    return settings


def _env_name(reported: str) -> str:
    """The variable to fix for the field pydantic ``reported`` (its name or, for a setting with
    several names, its first one): of its names, the one the environment sets
    (``KAFKA_BOOTSTRAP_SERVERS`` when only that is), else the first."""
    field_name = reported.lower().removeprefix(ENV_PREFIX.lower())
    names = env_names(field_name)
    return next((name for name in names if os.environ.get(name)), names[0])

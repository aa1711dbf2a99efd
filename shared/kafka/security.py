"""How every client reaches the cluster: the bootstrap servers and the security on top of them.

Managed Kafka is not PLAINTEXT. Amazon MSK, Confluent Cloud, Aiven and Strimzi's TLS listener
want TLS, most of them SASL over it (PLAIN, SCRAM), Aiven a client certificate, MSK IAM an
OAUTHBEARER token signed with AWS credentials. Every client the project makes (producers,
consumers, admin clients, the topic reader) takes its connection options from one
:class:`KafkaClientConfig`, made from the settings once per process (:func:`client_config`) and
checked then: a combination that cannot work, a CA file that holds no certificate, a token
provider that cannot be imported stops the process at start with a ConfigError naming the
variable, rather than as a connection failure later.

A plain bootstrap string is accepted wherever a config is (:meth:`KafkaClientConfig.of`): a
PLAINTEXT cluster, which is what tests and local tools use.

The SASL password and the client key's password come from their variable or from its ``_FILE``
twin (a mounted Kubernetes Secret); both are registered with the log redactor and are never part
of a repr, a message or a log line.

When a client cannot start, aiokafka logs each broker's answer and raises only "Unable to
bootstrap". :func:`probe` then connects once more, the same way, to learn the cause, which
:func:`shared.kafka.errors.connect_error` turns into one line naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.protocol.metadata import MetadataRequest
from cryptography import x509
from pydantic import SecretStr

from shared.errors import ConfigError
from shared.logging import redact_text, register_secret
from shared.settings import (
    BaseServiceSettings,
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    env_name,
)

DOCS = 'docs/configuration.md, "Kafka security"'

PROBE_TIMEOUT = timedelta(seconds=10)
"""How long :func:`probe` waits for one broker. A client that speaks plaintext to a TLS listener
(or TLS to a plaintext one) is usually hung up on at once, but a proxy in between may just keep
the connection open: the wait is bounded, and its end is a diagnosis too."""

_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True, slots=True)
class KafkaClientConfig:
    """The bootstrap servers and the security every client of the process uses.

    :meth:`options` gives aiokafka's keyword options (``security_protocol``, ``ssl_context``,
    ``sasl_*``); ``describe()`` says where and how, without secrets, for logs and messages.
    """

    bootstrap_servers: str
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: str = ""
    sasl_password: SecretStr = field(default=SecretStr(""), repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    token_provider: AbstractTokenProvider | None = field(default=None, repr=False, compare=False)
    ca_file: Path | None = None
    """Where the trusted CAs came from (None: the system's), for messages."""
    client_certificate: bool = False
    """Whether a client certificate is presented (SSL listeners that require one)."""

    @classmethod
    def of(cls, kafka: KafkaClientConfig | str) -> KafkaClientConfig:
        """``kafka`` itself, or a bootstrap string as a PLAINTEXT cluster."""
        return kafka if isinstance(kafka, KafkaClientConfig) else cls(bootstrap_servers=kafka)

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> KafkaClientConfig:
        """Check the security settings together and build the config; ConfigError naming the
        variable when they cannot work (prefer :func:`client_config`, which builds it once)."""
        protocol = settings.kafka_security_protocol
        mechanism = settings.kafka_sasl_mechanism
        uses_sasl = protocol in _SASL_PROTOCOLS
        uses_tls = protocol in _TLS_PROTOCOLS
        _check_layers(settings, uses_sasl=uses_sasl, uses_tls=uses_tls)
        password = SecretStr("")
        provider = None
        if mechanism in _PASSWORD_MECHANISMS:
            password = _password(settings, mechanism)
        elif mechanism == "OAUTHBEARER":
            provider = _token_provider(settings)
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=settings.kafka_sasl_username if mechanism != "OAUTHBEARER" else "",
            sasl_password=password,
            ssl_context=_ssl_context(settings) if uses_tls else None,
            token_provider=provider,
            ca_file=settings.kafka_ssl_cafile if uses_tls else None,
            client_certificate=uses_tls and settings.kafka_ssl_certfile is not None,
        )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in _TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in _SASL_PROTOCOLS

    def options(self) -> dict[str, Any]:
        """aiokafka's keyword options for a producer, consumer or admin client of this cluster."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.connection_options()}

    def connection_options(self) -> dict[str, Any]:
        """The security part of :meth:`options` (what one broker connection takes)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context or ssl.create_default_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = self.token_provider
            else:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def describe(self) -> str:
        """``127.0.0.1:9093 over SASL_SSL (SCRAM-SHA-512 as 'sync')``: no secret in it."""
        how: str = self.security_protocol
        if self.uses_sasl and self.sasl_mechanism == "OAUTHBEARER":
            how += " (OAUTHBEARER)"
        elif self.uses_sasl:
            how += f" ({self.sasl_mechanism} as {self.sasl_username!r})"
        elif self.client_certificate:
            how += " (client certificate)"
        return f"{self.bootstrap_servers} over {how}"


_built: dict[tuple[Any, ...], KafkaClientConfig] = {}


def client_config(settings: BaseServiceSettings) -> KafkaClientConfig:
    """The Kafka client config of ``settings``, built and checked on first use and the same
    object after that: one SSL context and one token provider for the whole process."""
    key = tuple(
        (name, getattr(settings, name))
        for name in BaseServiceSettings.model_fields
        if name.startswith("kafka_")
    )
    config = _built.get(key)
    if config is None:
        config = _built[key] = KafkaClientConfig.from_settings(settings)
    return config


def _refuse(problem: str) -> ConfigError:
    return ConfigError(f"invalid Kafka security settings: {problem} (see {DOCS})")


def _check_layers(settings: BaseServiceSettings, *, uses_sasl: bool, uses_tls: bool) -> None:
    """The settings of a layer (SASL, TLS) the protocol does not use are refused rather than
    ignored: a client certificate or a password that is silently not sent is worse than an
    error at start."""
    protocol = settings.kafka_security_protocol
    protocol_name = env_name("kafka_security_protocol")
    mechanism_name = env_name("kafka_sasl_mechanism")
    sasl_fields = (
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_sasl_password_file",
        "kafka_sasl_oauth_token_provider",
    )
    tls_fields = (
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "kafka_ssl_key_password",
        "kafka_ssl_key_password_file",
    )
    for fields, used, layer, fix in (
        (sasl_fields, uses_sasl, "SASL", "SASL_SSL (or SASL_PLAINTEXT)"),
        (tls_fields, uses_tls, "TLS", "SSL or SASL_SSL"),
    ):
        given = [env_name(name) for name in fields if _is_set(getattr(settings, name))]
        if given and not used:
            raise _refuse(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                f"{protocol_name} is {protocol}, which uses no {layer}: set it to {fix}, or "
                "unset them"
            )
    if not settings.kafka_ssl_check_hostname and not uses_tls:
        raise _refuse(
            f"{env_name('kafka_ssl_check_hostname')} is false but {protocol_name} is "
            f"{protocol}, which uses no TLS"
        )
    mechanism = settings.kafka_sasl_mechanism
    if uses_sasl and mechanism is None:
        raise _refuse(
            f"{mechanism_name} must be set when {protocol_name} is {protocol}: PLAIN, "
            "SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
        )
    provider_name = env_name("kafka_sasl_oauth_token_provider")
    if mechanism == "OAUTHBEARER":
        given = [
            env_name(name)
            for name in ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file")
            if _is_set(getattr(settings, name))
        ]
        if given:
            raise _refuse(
                f"{', '.join(given)} not used with OAUTHBEARER: the token comes from "
                f"{provider_name}; unset them"
            )
    elif settings.kafka_sasl_oauth_token_provider:
        raise _refuse(
            f"{provider_name} is set but {mechanism_name} is {mechanism}, not OAUTHBEARER"
        )
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise _refuse(
            f"{env_name('kafka_ssl_keyfile')} is set without {env_name('kafka_ssl_certfile')}: "
            "set the client certificate too"
        )
    key_password = _is_set(settings.kafka_ssl_key_password) or _is_set(
        settings.kafka_ssl_key_password_file
    )
    if key_password and settings.kafka_ssl_certfile is None:
        raise _refuse(
            f"a client key password is set without {env_name('kafka_ssl_certfile')} and "
            f"{env_name('kafka_ssl_keyfile')}"
        )


def _is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value != ""


def _secret(settings: BaseServiceSettings, field_name: str) -> SecretStr:
    """A secret setting from its variable or its ``_FILE`` twin (one of them, not both); a
    file's trailing line break is not part of the secret."""
    value: SecretStr = getattr(settings, field_name)
    path: Path | None = getattr(settings, f"{field_name}_file")
    if path is None:
        register_secret(value)
        return value
    if value.get_secret_value():
        raise _refuse(
            f"{env_name(field_name)} and {env_name(field_name + '_file')} are both set: set one"
        )
    try:
        text = path.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(
            f"{env_name(field_name + '_file')}: {path} cannot be read ({type(exc).__name__})"
        ) from None
    if not text:
        raise _refuse(f"{env_name(field_name + '_file')}: {path} is empty")
    register_secret(text)
    return SecretStr(text)


def _password(settings: BaseServiceSettings, mechanism: str) -> SecretStr:
    password = _secret(settings, "kafka_sasl_password")
    missing = []
    if not settings.kafka_sasl_username:
        missing.append(env_name("kafka_sasl_username"))
    if not password.get_secret_value():
        missing.append(
            f"{env_name('kafka_sasl_password')} (or {env_name('kafka_sasl_password_file')})"
        )
    if missing:
        raise _refuse(f"{mechanism} needs {' and '.join(missing)}")
    return password


def _ssl_context(settings: BaseServiceSettings) -> ssl.SSLContext:
    """TLS that verifies the brokers: against ``KAFKA_SSL_CAFILE`` when set (a private CA: Aiven,
    Strimzi), else the system's trusted CAs (MSK, Confluent Cloud); with the client
    certificate when one is set."""
    cafile = settings.kafka_ssl_cafile
    if cafile is not None:
        _require_certificates(cafile)
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except ssl.SSLError as exc:
        raise _refuse(
            f"{env_name('kafka_ssl_cafile')}: {cafile} could not be loaded ({exc.reason})"
        ) from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    certfile = settings.kafka_ssl_certfile
    if certfile is not None:
        key_password = _secret(settings, "kafka_ssl_key_password").get_secret_value()
        try:
            # A callable, so OpenSSL never prompts on a terminal for an encrypted key's password.
            context.load_cert_chain(
                str(certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password=lambda: key_password,
            )
        except ssl.SSLError as exc:
            raise _refuse(
                f"the client certificate could not be loaded ({exc.reason or exc}): check that "
                f"{env_name('kafka_ssl_certfile')} and {env_name('kafka_ssl_keyfile')} are PEM, "
                "that the key belongs to the certificate, and, for an encrypted key, "
                f"{env_name('kafka_ssl_key_password')} (or _FILE)"
            ) from None
    return context


def _require_certificates(path: Path) -> None:
    name = env_name("kafka_ssl_cafile")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _refuse(f"{name}: {path} cannot be read ({type(exc).__name__})") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise _refuse(
            f"{name}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); a Java "
            "truststore (.jks, .p12) must be converted to PEM first"
        ) from None


def _token_provider(settings: BaseServiceSettings) -> AbstractTokenProvider:
    """The OAUTHBEARER token provider named by ``package.module:callable``, called once."""
    name = env_name("kafka_sasl_oauth_token_provider")
    target = settings.kafka_sasl_oauth_token_provider.strip()
    if not target:
        raise _refuse(
            f"OAUTHBEARER needs {name}: 'package.module:callable' returning an aiokafka "
            "AbstractTokenProvider"
        )
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise _refuse(f"{name} must look like 'package.module:callable', not {target!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs arbitrary code: any failure is the module's
        raise _refuse(
            f"{name}: cannot import {module_name} ({type(exc).__name__}: "
            f"{redact_text(str(exc))}); is its package installed in the image?"
        ) from None
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise _refuse(f"{name}: {module_name} has no callable {attribute}")
    try:
        provider = factory()
    except Exception as exc:  # the provider's own code: say what it raised
        raise _refuse(
            f"{name}: {target}() failed ({type(exc).__name__}: {redact_text(str(exc))})"
        ) from None
    if not isinstance(provider, AbstractTokenProvider):
        raise _refuse(
            f"{name}: {target}() returned a {type(provider).__name__}, not an aiokafka "
            "AbstractTokenProvider (a class with an async token() method)"
        )
    return provider


@dataclass(frozen=True, slots=True)
class Refusal:
    """How one bootstrap server answered :func:`probe`: ``error`` is what connecting raised."""

    address: str
    error: BaseException


async def probe(
    kafka: KafkaClientConfig, *, within: timedelta = PROBE_TIMEOUT
) -> Sequence[Refusal]:
    """Connect to each bootstrap server as a client does (TCP, TLS, SASL, a metadata request)
    and return why each failed, in the order tried; empty when one of them answered.

    Each server is given ``within`` at most: a client that speaks plaintext to a TLS listener may
    otherwise wait until its request timeout."""
    refusals: list[Refusal] = []
    seconds = within.total_seconds()
    for host, port, _family in collect_hosts(kafka.bootstrap_servers, randomize=False):
        address = f"{host}:{port}"
        try:
            async with asyncio.timeout(seconds):
                connection = await create_conn(
                    host,
                    port,
                    client_id="autotask-sync-probe",
                    request_timeout_ms=int(seconds * 1000),
                    **kafka.connection_options(),
                )
                try:
                    await connection.send(MetadataRequest([]))
                finally:
                    connection.close()
        except TimeoutError:
            refusals.append(Refusal(address, TimeoutError(f"no answer within {seconds:g} s")))
            continue
        except Exception as exc:  # every failure is a finding here, reported by the caller
            refusals.append(Refusal(address, exc))
            continue
        return []
    return refusals


__all__ = [
    "DOCS",
    "PROBE_TIMEOUT",
    "KafkaClientConfig",
    "Refusal",
    "client_config",
    "probe",
]

"""Kafka over TLS and SASL, the ways managed Kafka is reached, against a real broker.

The settings are checked together at start and refused with the variable to fix; every way in
(SCRAM-SHA-256, SCRAM-SHA-512, PLAIN over TLS, OAUTHBEARER through the token provider hook, a
client certificate) carries messages through the project's admin, producer and reader; and
each way of getting it wrong (a wrong password, a wrong CA, plaintext spoken to the TLS port,
TLS to the plaintext port, ...) ends in one line that names the setting, without a secret in it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from shared.errors import ConfigError, KafkaError
from shared.kafka import (
    KafkaClientConfig,
    client_config,
    ensure_topics,
    make_producer,
    produce,
    require_topics,
    start_client,
)
from shared.kafka.errors import connect_error
from shared.kafka.reader import read_to_end
from shared.kafka.security import probe
from shared.messages.topics import TopicSpec
from shared.settings import BaseServiceSettings, load_settings
from tests.helpers.kafka_security import (
    USER,
    UnsignedTokenProvider,
    listeners_of,
    secured_broker,
    security_env,
    settings_from,
)
from tests.helpers.processes import run_cli
from tests.helpers.servers import Broker
from tools.dev_infra.certificates import authority

WAYS_IN = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER", "client certificate"]


def _refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as refused:
        KafkaClientConfig.from_settings(settings_from(env))
    return str(refused.value)


# --- the settings, checked at start -----------------------------------------------------------
def test_sasl_without_a_mechanism_is_refused_naming_the_variable() -> None:
    message = _refused({"AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM must be set" in message
    assert "SASL_SSL" in message


def test_plain_and_scram_need_a_username_and_a_password() -> None:
    message = _refused(
        {
            "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM": "PLAIN",
        }
    )
    assert "AUTOTASK_SYNC_KAFKA_SASL_USERNAME" in message
    assert "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD" in message


@pytest.mark.parametrize(
    ("variable", "value", "layer"),
    [
        ("AUTOTASK_SYNC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL"),
        ("AUTOTASK_SYNC_KAFKA_SASL_USERNAME", "sync", "SASL"),
        ("AUTOTASK_SYNC_KAFKA_SSL_CAFILE", "{ca}", "TLS"),
    ],
)
def test_a_setting_the_protocol_does_not_use_is_refused_not_ignored(
    variable: str, value: str, layer: str, tmp_path: Path
) -> None:
    ca = authority(tmp_path).cert
    message = _refused({variable: value.format(ca=ca)})
    assert f"{variable} is set but AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in message
    assert f"uses no {layer}" in message


def test_a_ca_file_that_holds_no_pem_certificate_is_refused(tmp_path: Path) -> None:
    der = tmp_path / "ca.der"
    certificate = authority(tmp_path).cert.read_bytes()
    der.write_bytes(
        x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER)
    )
    message = _refused(
        {"AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SSL", "AUTOTASK_SYNC_KAFKA_SSL_CAFILE": str(der)}
    )
    assert "AUTOTASK_SYNC_KAFKA_SSL_CAFILE" in message
    assert "holds no PEM certificate" in message


def test_a_ca_file_that_is_not_there_stops_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("AUTOTASK_SYNC_KAFKA_SSL_CAFILE", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigError, match=r"AUTOTASK_SYNC_KAFKA_SSL_CAFILE: .* is not a file"):
        load_settings(BaseServiceSettings)


@pytest.mark.parametrize(
    ("provider", "said"),
    [
        ("", "OAUTHBEARER needs AUTOTASK_SYNC_KAFKA_SASL_OAUTH_TOKEN_PROVIDER"),
        ("no_colon_here", "must look like 'package.module:callable'"),
        ("no_such_package.tokens:Provider", "cannot import no_such_package.tokens"),
        ("tests.helpers.kafka_security:Missing", "has no callable Missing"),
        ("tests.helpers.kafka_security:NotATokenProvider", "not an aiokafka AbstractTokenProvider"),
    ],
)
def test_oauthbearer_needs_a_provider_hook_that_gives_a_token_provider(
    provider: str, said: str
) -> None:
    message = _refused(
        {
            "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "AUTOTASK_SYNC_KAFKA_SASL_OAUTH_TOKEN_PROVIDER": provider,
        }
    )
    assert said in message
    assert "AUTOTASK_SYNC_KAFKA_SASL_OAUTH_TOKEN_PROVIDER" in message


def test_the_password_comes_from_its_file_and_not_from_both(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-secret\n")
    env = {
        "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",  # case does not matter
        "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "AUTOTASK_SYNC_KAFKA_SASL_USERNAME": "sync",
        "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    config = KafkaClientConfig.from_settings(settings_from(env))
    options = config.options()
    assert options["sasl_plain_password"] == "from-the-secret"  # the line break is not in it
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "from-the-secret" not in repr(config)
    assert "from-the-secret" not in config.describe()

    both = _refused({**env, "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD": "another"})
    assert "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD and AUTOTASK_SYNC_KAFKA_SASL_PASSWORD_FILE" in both
    assert "another" not in both


def test_an_encrypted_client_key_opens_with_its_password_and_never_prompts(
    tmp_path: Path,
) -> None:
    ca = authority(tmp_path)
    pair = ca.client(tmp_path, "sync")
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password-123"),
        )
    )
    env = {
        "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SSL",
        "AUTOTASK_SYNC_KAFKA_SSL_CAFILE": str(ca.cert),
        "AUTOTASK_SYNC_KAFKA_SSL_CERTFILE": str(pair.cert),
        "AUTOTASK_SYNC_KAFKA_SSL_KEYFILE": str(encrypted),
        "AUTOTASK_SYNC_KAFKA_SSL_KEY_PASSWORD": "key-password-123",
    }
    assert KafkaClientConfig.from_settings(settings_from(env)).client_certificate
    wrong = _refused({**env, "AUTOTASK_SYNC_KAFKA_SSL_KEY_PASSWORD": "not-the-password"})
    assert "the client certificate could not be loaded" in wrong
    assert "AUTOTASK_SYNC_KAFKA_SSL_KEY_PASSWORD" in wrong
    assert "not-the-password" not in wrong
    other = ca.client(tmp_path, "other")
    mismatched = _refused(
        {
            **env,
            "AUTOTASK_SYNC_KAFKA_SSL_KEYFILE": str(other.key),
            "AUTOTASK_SYNC_KAFKA_SSL_KEY_PASSWORD": "",
        }
    )
    assert "that the key belongs to the certificate" in mismatched


def test_the_process_builds_its_config_once() -> None:
    settings = BaseServiceSettings(kafka_bootstrap_servers="127.0.0.1:9")
    assert client_config(settings) is client_config(settings)
    assert client_config(settings).options() == {
        "bootstrap_servers": "127.0.0.1:9",
        "security_protocol": "PLAINTEXT",
    }


# --- against a broker -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with secured_broker(tmp_path_factory.mktemp("secured-broker")) as started:
        yield started


@pytest.fixture
def env_for(broker: Broker, tmp_path: Path) -> Callable[..., dict[str, str]]:
    def env(way: str, **options: Any) -> dict[str, str]:
        mechanism = None if way == "client certificate" else way
        return security_env(listeners_of(broker), tmp_path, mechanism=mechanism, **options)

    return env


async def _one_line_error(config: KafkaClientConfig) -> KafkaError:
    with pytest.raises(KafkaError) as failed:
        await require_topics(config, ["anything"], client_id="test-security")
    assert "\n" not in str(failed.value)
    return failed.value


@pytest.mark.integration
@pytest.mark.parametrize("way", WAYS_IN)
async def test_messages_go_round_trip_each_way_in(way: str, env_for, unique: str) -> None:
    config = KafkaClientConfig.from_settings(settings_from(env_for(way)))
    topic = f"secured.{unique}"
    tokens_before = UnsignedTokenProvider.calls
    assert await ensure_topics(config, [TopicSpec(topic, 1)], replication_factor=1) == [topic]
    producer = make_producer(config, client_id="test-security")
    try:
        await start_client(producer, config, what="start the producer")
        await produce(producer, topic, key=b"k", value=way.encode())
    finally:
        await producer.stop()
    read = [record.value async for record in read_to_end(config, topic)]
    assert read == [way.encode()]
    if way == "OAUTHBEARER":
        assert UnsignedTokenProvider.calls > tokens_before  # the hook gave the tokens


@pytest.mark.integration
async def test_a_wrong_password_says_which_settings_to_check(env_for) -> None:
    config = KafkaClientConfig.from_settings(
        settings_from(env_for("SCRAM-SHA-512", password="not-the-password"))
    )
    error = await _one_line_error(config)
    message = str(error)
    assert "refused the SASL credentials (SCRAM-SHA-512 as 'autotask-sync')" in message
    assert "check AUTOTASK_SYNC_KAFKA_SASL_USERNAME / AUTOTASK_SYNC_KAFKA_SASL_PASSWORD" in message
    assert "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM" in message
    assert "not-the-password" not in message
    assert not error.retriable  # the same password gets the same answer


@pytest.mark.integration
async def test_a_wrong_ca_says_the_brokers_certificate_is_not_trusted(
    env_for, tmp_path: Path
) -> None:
    other_ca = authority(tmp_path / "other", "some other CA").cert
    config = KafkaClientConfig.from_settings(
        settings_from(env_for("SCRAM-SHA-256", ca_file=other_ca))
    )
    error = await _one_line_error(config)
    assert "certificate at 127.0.0.1:" in str(error)
    assert "is not trusted (certificate verify failed" in str(error)
    assert f"set AUTOTASK_SYNC_KAFKA_SSL_CAFILE (now {other_ca})" in str(error)
    assert not error.retriable


@pytest.mark.integration
async def test_a_plaintext_client_at_the_tls_port_is_told_to_use_tls(broker: Broker) -> None:
    config = KafkaClientConfig.of(listeners_of(broker).sasl_ssl_bootstrap)
    error = await _one_line_error(config)
    assert "closed the connection without answering: the listener may expect TLS" in str(error)
    assert "set AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL (now PLAINTEXT) to SSL or SASL_SSL" in str(
        error
    )


@pytest.mark.integration
async def test_a_tls_client_at_the_plaintext_port_is_told_it_may_be_plaintext(
    broker: Broker,
) -> None:
    ca = listeners_of(broker).ca_file
    config = KafkaClientConfig.from_settings(
        settings_from(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SSL",
                "AUTOTASK_SYNC_KAFKA_SSL_CAFILE": str(ca),
            }
        )
    )
    error = await _one_line_error(config)
    assert "the TLS handshake with Kafka at" in str(error)
    assert "the listener may be plaintext" in str(error)
    assert "check AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL (now SSL)" in str(error)


@pytest.mark.integration
async def test_a_sasl_client_at_a_listener_without_sasl_is_told_so(broker: Broker) -> None:
    config = KafkaClientConfig(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username=USER,
        sasl_password=SecretStr("whatever-it-is"),
    )
    error = await _one_line_error(config)
    assert "does not expect SASL on this listener" in str(error)
    assert "whatever-it-is" not in str(error)


@pytest.mark.integration
async def test_the_client_certificate_listener_without_a_certificate_says_so(env_for) -> None:
    env = {
        k: v
        for k, v in env_for("client certificate").items()
        if "_SSL_CERT" not in k and "_SSL_KEY" not in k
    }
    error = await _one_line_error(KafkaClientConfig.from_settings(settings_from(env)))
    assert "closed the connection after the TLS handshake" in str(error)
    assert "AUTOTASK_SYNC_KAFKA_SSL_CERTFILE / AUTOTASK_SYNC_KAFKA_SSL_KEYFILE" in str(error)


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (a proxy holding them, a port that is no Kafka)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_gets_a_bounded_wait_and_a_hint(
    silent_server: str,
) -> None:
    config = KafkaClientConfig.of(silent_server)
    refusals = await probe(config, within=timedelta(milliseconds=500))
    error = connect_error(config, refusals, "list the Kafka topics", cause=TimeoutError())
    assert str(error) == (
        f"could not list the Kafka topics: Kafka at {silent_server} did not answer (no answer "
        "within 0.5 s): if the listener uses TLS, set AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL "
        "(now PLAINTEXT) to SSL or SASL_SSL; else check the address and that no firewall or "
        "proxy holds the connection"
    )
    assert error.retriable


# --- the same, as an operator runs it ---------------------------------------------------------
@pytest.mark.integration
async def test_topics_ensure_works_over_sasl_ssl_and_refuses_a_wrong_password_in_one_line(
    env_for, unique: str
) -> None:
    env = env_for("SCRAM-SHA-512") | {"AUTOTASK_SYNC_TOPIC_PREFIX": f"cli{unique}"}
    created = await run_cli("topics", "ensure", "--partitions", "1", env=env)
    assert created.code == 0, created.output
    assert "created" in created.out

    wrong = env_for("SCRAM-SHA-512", password="wrong-password-42") | {
        "AUTOTASK_SYNC_TOPIC_PREFIX": f"cli{unique}"
    }
    refused = await run_cli("topics", "ensure", "--partitions", "1", env=wrong)
    assert refused.code == 2
    assert refused.err.splitlines() == [
        f"error: could not create the Kafka topics: Kafka at "
        f"{wrong['KAFKA_BOOTSTRAP_SERVERS']} refused the SASL credentials (SCRAM-SHA-512 as "
        "'autotask-sync'): check AUTOTASK_SYNC_KAFKA_SASL_USERNAME / "
        "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD (or _FILE) and AUTOTASK_SYNC_KAFKA_SASL_MECHANISM"
    ]
    assert "wrong-password-42" not in refused.output

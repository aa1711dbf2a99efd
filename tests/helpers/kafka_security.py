"""A broker with the listeners managed Kafka is reached by, and the settings that reach it.

:func:`secured_broker` starts a broker of the test module's own with a SASL_SSL listener (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) and an SSL listener that requires a client
certificate (:class:`tools.dev_infra.kafka.SecuredListeners`). :func:`security_env` gives the
``AUTOTASK_SYNC_KAFKA_*`` variables an operator would set for one way in, the password in a file
like a mounted Kubernetes Secret; :func:`settings_from` turns them into settings in-process.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from aiokafka.abc import AbstractTokenProvider

from shared.settings import ENV_PREFIX, BaseServiceSettings
from tests.helpers.servers import Broker
from tools.dev_infra.kafka import SecuredListeners

USER = "autotask-sync"
"""The user every test signs in as (PLAIN and both SCRAMs know it)."""


@contextmanager
def secured_broker(folder: Path) -> Iterator[Broker]:
    """A broker of its own with the secured listeners (``broker.secured_listeners``) besides
    its PLAINTEXT one (``broker.bootstrap``), closed at exit."""
    broker = Broker(folder, secured=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


def listeners_of(broker: Broker) -> SecuredListeners:
    """The secured listeners of a broker started by :func:`secured_broker`."""
    assert broker.secured_listeners is not None, "start it with secured=True"
    return broker.secured_listeners


class UnsignedTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER tokens for the local broker: unsigned JWTs (``alg: none``), which its
    unsecured validator accepts. Named in ``AUTOTASK_SYNC_KAFKA_SASL_OAUTH_TOKEN_PROVIDER`` as
    ``tests.helpers.kafka_security:UnsignedTokenProvider``; ``calls`` counts the tokens made."""

    calls = 0

    async def token(self) -> str:
        UnsignedTokenProvider.calls += 1
        now = int(time.time())
        header = _segment({"alg": "none"})
        claims = _segment({"sub": USER, "iat": now, "exp": now + 3600, "scope": "kafka"})
        return f"{header}.{claims}."


class NotATokenProvider:
    """What a provider hook must not return: no ``AbstractTokenProvider``."""


def _segment(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def security_env(
    listeners: SecuredListeners,
    folder: Path,
    *,
    mechanism: str | None = "SCRAM-SHA-512",
    password: str | None = None,
    ca_file: Path | None = None,
) -> dict[str, str]:
    """The variables that reach ``listeners``: SASL_SSL with ``mechanism`` as :data:`USER`
    (``password`` instead of the right one: a wrong one), or, with ``mechanism`` None, the SSL
    listener with a client certificate issued into ``folder``. ``ca_file``: trust another CA."""
    env = {"AUTOTASK_SYNC_KAFKA_SSL_CAFILE": str(ca_file or listeners.ca_file)}
    if mechanism is None:
        pair = listeners.client_certificate(folder, USER)
        return env | {
            "KAFKA_BOOTSTRAP_SERVERS": listeners.ssl_bootstrap,
            "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SSL",
            "AUTOTASK_SYNC_KAFKA_SSL_CERTFILE": str(pair.cert),
            "AUTOTASK_SYNC_KAFKA_SSL_KEYFILE": str(pair.key),
        }
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": listeners.sasl_ssl_bootstrap,
        "AUTOTASK_SYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AUTOTASK_SYNC_KAFKA_SASL_MECHANISM": mechanism,
    }
    if mechanism == "OAUTHBEARER":
        return env | {
            "AUTOTASK_SYNC_KAFKA_SASL_OAUTH_TOKEN_PROVIDER": (
                "tests.helpers.kafka_security:UnsignedTokenProvider"
            )
        }
    secret = folder / "kafka-password"
    folder.mkdir(parents=True, exist_ok=True)
    # As a Kubernetes Secret mounted from `kubectl create secret --from-file` often ends.
    secret.write_text((password if password is not None else listeners.users[USER]) + "\n")
    secret.chmod(0o600)
    return env | {
        "AUTOTASK_SYNC_KAFKA_SASL_USERNAME": USER,
        "AUTOTASK_SYNC_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }


def settings_from(env: Mapping[str, str]) -> BaseServiceSettings:
    """Settings from ``env`` (variable names as an operator sets them), whatever this process's
    own environment says about Kafka."""
    fields: dict[str, object] = {
        name.removeprefix(ENV_PREFIX).lower(): value for name, value in env.items()
    }
    return BaseServiceSettings(**fields)


__all__ = [
    "USER",
    "NotATokenProvider",
    "UnsignedTokenProvider",
    "listeners_of",
    "secured_broker",
    "security_env",
    "settings_from",
]

"""The Kafka error boundary: aiokafka's exceptions become :class:`shared.errors.KafkaError`.

Code outside ``shared/kafka`` never names aiokafka's errors. It calls the helpers here and in
``factory`` (which translate already), or wraps a block of its own calls on a producer or
consumer::

    with kafka_errors("commit the callouts' offsets"):
        await consumer.commit(offsets)

The translated error is retriable (:class:`KafkaError`'s default) unless Kafka refused the
message itself or its topic for good: too large, corrupt, a timestamp or topic it does not
accept, no permission to write the topic (:func:`is_retriable`). Sending such a message again
gets the same answer; callers decide what that means (dead letter, set aside, stop). Every other
failure, including brokers that are away, stays retriable.

:class:`DeliveryError` is what a pipelined send raises when some of its messages were not
acknowledged: which ones, and why each.

:class:`ProducerStateLost` is a send that failed because the broker no longer accepts the
idempotent producer's state (its sequence numbers or its producer id: :func:`is_state_lost`).
That producer would fail every later send to the partition; :mod:`shared.kafka.producer` replaces
it, so the error is retriable: the caller sends again, on the new producer.

:func:`connect_error` explains a client that could not connect (called with what
:func:`shared.kafka.security.probe` found): refused credentials, an untrusted certificate,
plaintext spoken to a TLS listener or the other way round, each as one line naming the settings
to fix. Those are not retriable: the same settings get the same answer. A server that is away or
hangs up without saying why stays retriable.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from aiokafka.errors import (
    CorruptRecordException,
    IllegalSaslStateError,
    InvalidProducerEpoch,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    PolicyViolationError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnknownProducerId,
    UnsupportedForMessageFormatError,
    UnsupportedSaslMechanismError,
)
from aiokafka.errors import KafkaError as AIOKafkaError

from shared.errors import KafkaError
from shared.kafka.security import KafkaClientConfig, Refusal
from shared.logging import redact_text
from shared.settings import env_name, env_names

_REFUSED_FOR_GOOD: tuple[type[AIOKafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
)
"""Refusals of a message or its topic that trying again cannot change. aiokafka's own
``retriable`` flag is not enough on its own: it is False for a ``KafkaTimeoutError`` too, which
is what a send gets while the brokers are away."""

_STATE_LOST: tuple[type[AIOKafkaError], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)
"""The broker's answers that say it no longer accepts the producer's idempotence state. aiokafka
fails the batch and keeps the producer, whose next batch for the partition gets the same answer
(a batch that expired in it while no leader was known used up its sequence numbers; a batch the
broker refused did too): only a new producer, with a new producer id, sends again."""


class ProducerStateLost(KafkaError):
    """A send failed because the broker no longer accepts the producer's idempotence state.

    Retriable: the producer is replaced (:mod:`shared.kafka.producer`) and the message, sent
    again, goes out on the new one. Consumers deduplicate what may then arrive twice."""

    retriable = True


class DeliveryError(KafkaError):
    """Some messages of a pipelined send were not acknowledged.

    ``failures`` maps the position of each such message in the batch to why (a message not even
    handed to the producer has a retriable error saying so); every other message was
    acknowledged. The error itself is the first failure's, retriable like it.
    """

    def __init__(self, message: str, *, failures: Mapping[int, KafkaError]) -> None:
        first = failures[min(failures)]
        super().__init__(message, retriable=first.retriable)
        self.failures = dict(failures)


def is_retriable(exc: BaseException) -> bool:
    """Whether sending again can succeed where ``exc`` failed (see the module docstring)."""
    if isinstance(exc, KafkaError):
        return exc.retriable
    return not (isinstance(exc, _REFUSED_FOR_GOOD) and not getattr(exc, "retriable", False))


def is_state_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker no longer accepts the producer's idempotence state (the
    producer must be replaced: :class:`ProducerStateLost`)."""
    return isinstance(exc, (*_STATE_LOST, ProducerStateLost))


def translate(exc: AIOKafkaError, what: str) -> KafkaError:
    """``exc`` as a :class:`KafkaError` ("could not {what}: ..."), retriable as it deserves."""
    detail = redact_text(str(exc)) or type(exc).__name__
    if isinstance(exc, _STATE_LOST):
        return ProducerStateLost(
            f"could not {what}: {type(exc).__name__}: {detail} (Kafka no longer accepts the "
            "producer's idempotence state; it is replaced, send again)"
        )
    return KafkaError(
        f"could not {what}: {type(exc).__name__}: {detail}", retriable=is_retriable(exc)
    )


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """aiokafka errors raised in this block become :class:`KafkaError` ("could not {what}:
    ...")."""
    try:
        yield
    except AIOKafkaError as exc:
        raise translate(exc, what) from exc


def connect_error(
    kafka: KafkaClientConfig, refusals: Sequence[Refusal], what: str, *, cause: BaseException
) -> KafkaError:
    """Why no client of ``kafka`` could connect, as "could not {what}: ..." in one line that
    names the settings to fix. ``refusals``: how each bootstrap server answered a probe (the
    most telling one is reported); ``cause``: what the client raised, reported when the probe
    found nothing more precise."""
    if not refusals:
        return (
            translate(cause, what)
            if isinstance(cause, AIOKafkaError)
            else _away(kafka.bootstrap_servers, what, cause)
        )
    refusal = min(refusals, key=lambda r: _rank(r.error))
    explained = _explain(kafka, refusal)
    if explained is None:
        return _away(refusal.address, what, refusal.error)
    message, retriable = explained
    return KafkaError(f"could not {what}: {message}", retriable=retriable)


_TLS_FIX = f"{env_name('kafka_ssl_certfile')} / {env_name('kafka_ssl_keyfile')}"


def _explain(kafka: KafkaClientConfig, refusal: Refusal) -> tuple[str, bool] | None:
    """(message, retriable) for a refusal that says something about the security settings;
    None for a server that is simply away."""
    at, exc = refusal.address, refusal.error
    protocol_setting = env_name("kafka_security_protocol")
    protocol = f"{protocol_setting} (now {kafka.security_protocol})"
    mechanism_setting = env_name("kafka_sasl_mechanism")
    if isinstance(exc, SaslAuthenticationFailed):
        if kafka.sasl_mechanism == "OAUTHBEARER":
            return (
                f"Kafka at {at} refused the OAUTHBEARER token: check the token "
                f"{env_name('kafka_sasl_oauth_token_provider')} returns (identity, audience, "
                "expiry) and what the cluster accepts",
                False,
            )
        return (
            f"Kafka at {at} refused the SASL credentials ({kafka.sasl_mechanism} as "
            f"{kafka.sasl_username!r}): check {env_name('kafka_sasl_username')} / "
            f"{env_name('kafka_sasl_password')} (or _FILE) and {mechanism_setting}",
            False,
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"Kafka at {at} does not accept SASL mechanism {kafka.sasl_mechanism} "
            f"({redact_text(str(exc))}): set {mechanism_setting} to one it enables",
            False,
        )
    if isinstance(exc, IllegalSaslStateError):
        plain = "SSL" if kafka.uses_tls else "PLAINTEXT"
        return (
            f"Kafka at {at} does not expect SASL on this listener: set {protocol} to {plain} "
            f"and unset {mechanism_setting}, or use the port of its SASL listener",
            False,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "certificate verify failed"
        if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
            return (
                f"Kafka's certificate at {at} does not name that host ({reason}): use a name "
                f"the certificate holds in {env_name('kafka_bootstrap_servers')}, or set "
                f"{env_name('kafka_ssl_check_hostname')}=false",
                False,
            )
        trusted = f"now {kafka.ca_file}" if kafka.ca_file else "unset: the system's CAs"
        return (
            f"Kafka's certificate at {at} is not trusted (certificate verify failed: {reason}): "
            f"set {env_name('kafka_ssl_cafile')} ({trusted}) to the CA that signed the "
            "brokers' certificates",
            False,
        )
    if kafka.uses_tls and isinstance(exc, ssl.SSLError | ConnectionResetError):
        return (
            f"the TLS handshake with Kafka at {at} failed ({_reason(exc)}): the listener may "
            f"be plaintext; check {protocol} and the port",
            not isinstance(exc, ssl.SSLError),
        )
    if isinstance(exc, KafkaConnectionError):  # connected, then hung up on without an answer
        if not kafka.uses_tls:
            return (
                f"Kafka at {at} closed the connection without answering: the listener may "
                f"expect TLS; set {protocol} to SSL or SASL_SSL, or use a plaintext port",
                True,
            )
        if not kafka.uses_sasl:
            return (
                f"Kafka at {at} closed the connection after the TLS handshake: the listener "
                f"may require a client certificate ({_TLS_FIX}, signed by a CA the brokers "
                f"trust) or SASL (set {protocol} to SASL_SSL)",
                True,
            )
        return (
            f"Kafka at {at} closed the connection during SASL: check {protocol}, "
            f"{mechanism_setting} and whether the listener also requires a client "
            f"certificate ({_TLS_FIX})",
            True,
        )
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        hint = (
            f"if the listener uses TLS, set {protocol} to SSL or SASL_SSL"
            if not kafka.uses_tls
            else "check that the port is the TLS listener's"
        )
        return (
            f"Kafka at {at} did not answer ({_reason(exc)}): {hint}; else check the address and "
            "that no firewall or proxy holds the connection",
            True,
        )
    return None


_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
"""OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH."""


def _rank(exc: BaseException) -> int:
    """Most telling first: a broker's explicit refusal, then a hang-up, then silence."""
    if isinstance(exc, SaslAuthenticationFailed | UnsupportedSaslMechanismError):
        return 0
    if isinstance(exc, ssl.SSLError | IllegalSaslStateError):
        return 1
    if isinstance(exc, KafkaConnectionError | ConnectionResetError):
        return 2
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return 3
    return 4


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return redact_text(str(exc)) or type(exc).__name__


def _away(address: str, what: str, exc: BaseException) -> KafkaError:
    """A server that did not answer, with what was found when it was dialled (``exc``): the
    client's own error only repeats the addresses it tried, so it is left out."""
    return KafkaError(
        f"could not {what}: could not reach Kafka at {address} ({_reason(exc)}): check "
        f"{' or '.join(env_names('kafka_bootstrap_servers'))} and that the brokers are up"
    )


__all__ = [
    "DeliveryError",
    "ProducerStateLost",
    "connect_error",
    "is_retriable",
    "is_state_lost",
    "kafka_errors",
    "translate",
]

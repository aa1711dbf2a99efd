"""The routes Autotask calls. Thin: bounded intake, verify, route, make durable, answer.

``POST /v1/callouts/{registration_id}``
    404 unknown registration, 410 retired, 413 body over the cap, 401 missing or wrong
    signature (nothing stored, and the answer never says which secret was tried), 429 when the
    client address sent too many bad signatures this minute or has too many bodies still
    arriving (refused before its body is read), 408 when the body does not arrive within
    ``body_deadline``, 503 when the registrations are not loaded yet, neither Kafka nor the
    spool took the callout, or the gateway is at its limits (bodies arriving, callouts being
    made durable; Autotask retries), 200 otherwise: accepted (on Kafka), spooled, duplicate (the
    same event already durable, or in flight) or dead-lettered (verified but unroutable; on the
    dead-letter topic).

``POST /v1/deactivations/{registration_id}`` (the webhook's DeactivationUrl, unsigned)
    200 at once, its body unread; the check happens in the background (:mod:`.deactivation`),
    at most once per registration and interval (later calls are "suppressed"). 404 unknown.

What a request may cost is bounded before the costly parts (:mod:`.admission`); a request
refused before its body was read has its connection closed rather than its body drained.
One log line per request, with the registration id shortened to 8 characters and never a body,
a URL or a secret.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from structlog.contextvars import bound_contextvars

from services.webhook_gateway.admission import Admission
from services.webhook_gateway.bookkeeping import LastCallouts
from services.webhook_gateway.deactivation import DeactivationNotices
from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.durability import Durability, Stored, Unavailable
from services.webhook_gateway.routing import Routed, route
from services.webhook_gateway.signature import (
    SIGNATURE_HEADER,
    Verification,
    claimed_mac,
    verify,
    verify_reescaped,
)
from shared.logging import get_logger
from shared.messages.topics import Topics
from shared.metrics import (
    GATEWAY_BODY_BYTES,
    GATEWAY_REQUEST_SECONDS,
    GATEWAY_REQUESTS,
    GATEWAY_SIGNATURE_FALLBACKS,
)
from shared.registrations import Registration

log = get_logger(__name__)

CALLOUT_ROUTE = "callout"
DEACTIVATION_ROUTE = "deactivation"
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RegistrationLookup(Protocol):
    """What the routes need of the registrations (:class:`RegistrationStore` in production)."""

    @property
    def loaded(self) -> bool: ...

    def get(self, registration_id: str) -> Registration | None: ...


@dataclass(frozen=True, slots=True)
class CalloutLimits:
    """Request-independent facts the callout route needs."""

    max_body_size: int
    topics: Topics
    body_deadline: float = 5.0
    """Seconds a body may take to arrive once the headers have."""
    client_ip_header: str = ""
    """Where the client's address is, behind a proxy (empty: the TCP peer)."""


INLINE_FALLBACK_BYTES = 16 * 1024
"""Bodies up to this size get the re-escaped comparison on the event loop (well under a
millisecond); larger ones in a worker thread, so the loop keeps answering meanwhile."""


REGISTRATIONS = web.AppKey("registrations", RegistrationLookup)
DURABILITY = web.AppKey("durability", Durability)
RECENT = web.AppKey("recent", RecentCallouts)
LAST_CALLOUTS = web.AppKey("last_callouts", LastCallouts)
DEACTIVATIONS = web.AppKey("deactivations", DeactivationNotices)
LIMITS = web.AppKey("limits", CalloutLimits)
ADMISSION = web.AppKey("admission", Admission)


class Outcome(StrEnum):
    """What became of one request (the ``outcome`` metric label and log field)."""

    ACCEPTED = "accepted"
    SPOOLED = "spooled"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_REGISTRATION = "unknown_registration"
    RETIRED = "retired"
    TOO_LARGE = "too_large"
    BAD_REQUEST = "bad_request"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    """At a gateway-wide limit (bodies arriving, callouts in hand): refused at once."""
    CLIENT_BUSY = "client_busy"
    """The client address already has its share of bodies arriving: refused before reading."""
    CLIENT_BLOCKED = "client_blocked"
    """The client address sent too many bad signatures this minute: refused before reading."""
    TOO_SLOW = "too_slow"
    """The body did not arrive within ``body_deadline``."""
    SUPPRESSED = "suppressed"
    """A deactivation call for a registration already reported within the interval."""


_ANSWERS: dict[Outcome, tuple[int, bytes]] = {
    Outcome.ACCEPTED: (200, b'{"status":"accepted"}'),
    Outcome.SPOOLED: (200, b'{"status":"accepted"}'),
    Outcome.DUPLICATE: (200, b'{"status":"accepted"}'),
    Outcome.DEAD_LETTERED: (200, b'{"status":"accepted"}'),
    Outcome.BAD_SIGNATURE: (401, b'{"error":"missing or invalid X-Hook-Signature"}'),
    Outcome.UNKNOWN_REGISTRATION: (404, b'{"error":"unknown callout URL"}'),
    Outcome.RETIRED: (410, b'{"error":"this webhook registration was retired"}'),
    Outcome.TOO_LARGE: (413, b'{"error":"body too large"}'),
    Outcome.BAD_REQUEST: (400, b'{"error":"the request body could not be read"}'),
    Outcome.UNAVAILABLE: (503, b'{"error":"temporarily unavailable, retry later"}'),
    Outcome.OVERLOADED: (503, b'{"error":"overloaded, retry later"}'),
    Outcome.CLIENT_BUSY: (429, b'{"error":"too many unfinished requests, retry later"}'),
    Outcome.CLIENT_BLOCKED: (429, b'{"error":"too many invalid signatures, retry later"}'),
    Outcome.TOO_SLOW: (408, b'{"error":"the request body did not arrive in time"}'),
    Outcome.SUPPRESSED: (200, b'{"status":"accepted"}'),
}


@dataclass(slots=True)
class _Result:
    outcome: Outcome
    registration: Registration | None = None
    routed: Routed | None = None
    verification: Verification | None = None
    body_size: int | None = None
    error: str | None = None
    client: str | None = None
    """The client's address, logged when the request was refused for something it did."""


async def callout(request: web.Request) -> web.StreamResponse:
    """``POST /v1/callouts/{registration_id}``."""
    started = time.perf_counter()
    received_at = datetime.now(UTC)
    request_id = _request_id(request)
    registration_id = request.match_info["registration_id"]
    with bound_contextvars(request_id=request_id, registration=registration_id[:8]):
        result = await _handle_callout(request, registration_id, received_at, request_id)
        status, body = _ANSWERS[result.outcome]
        _record(CALLOUT_ROUTE, result, status, time.perf_counter() - started)
        return _answer(status, body, request_id)


async def _handle_callout(
    request: web.Request, registration_id: str, received_at: datetime, request_id: str
) -> _Result:
    app = request.app
    registrations = app[REGISTRATIONS]
    registration = registrations.get(registration_id)
    if registration is None:
        if not registrations.loaded:  # cannot tell unknown from not-yet-loaded: retry later
            return _Result(Outcome.UNAVAILABLE, error="registrations not loaded yet")
        return _Result(Outcome.UNKNOWN_REGISTRATION)
    if registration.retired:
        return _Result(Outcome.RETIRED, registration)
    limits, admission = app[LIMITS], app[ADMISSION]
    client = _client_address(request, limits.client_ip_header)
    # Refusals before the body is read: they cost a lookup, never the body's bytes.
    if admission.bad_by_client.exceeded(client):
        return _Result(Outcome.CLIENT_BLOCKED, registration, client=client)
    bodies = admission.bodies
    if bodies.full_for(client):
        return _Result(Outcome.CLIENT_BUSY, registration, client=client)
    if bodies.full:
        return _Result(Outcome.OVERLOADED, registration, error="bodies in flight at the limit")
    bodies.take(client)
    try:
        body = await _read_capped(request, limits.max_body_size, limits.body_deadline)
    finally:
        bodies.give_back(client)
    if isinstance(body, Outcome | _Unreadable):
        # Too large, too slow or unreadable: Autotask sends none of these, so they count against
        # the address as a bad signature does (its next bodies are refused unread).
        admission.bad_by_client.failed(client)
        if isinstance(body, Outcome):
            return _Result(body, registration, client=client)
        return _Result(Outcome.BAD_REQUEST, registration, error=body.reason, client=client)
    callouts = admission.callouts
    if callouts.full:
        return _Result(Outcome.OVERLOADED, registration, error="callouts in hand at the limit")
    callouts.take()
    try:
        return await _verify_and_store(request, registration, body, client, received_at, request_id)
    finally:
        callouts.give_back()


async def _verify_and_store(
    request: web.Request,
    registration: Registration,
    body: bytes,
    client: str,
    received_at: datetime,
    request_id: str,
) -> _Result:
    app = request.app
    limits, admission = app[LIMITS], app[ADMISSION]
    registration_id = registration.registration_id
    GATEWAY_BODY_BYTES.observe(len(body))
    verification = await _verify(request, registration, body, received_at, admission)
    if not verification.ok:
        admission.bad_by_client.failed(client)
        admission.bad_by_registration.failed(registration_id)
        return _Result(
            Outcome.BAD_SIGNATURE, registration, verification=verification, client=client
        )

    routed = route(
        registration, body, topics=limits.topics, received_at=received_at, request_id=request_id
    )
    result = _Result(
        Outcome.ACCEPTED, registration, routed, verification=verification, body_size=len(body)
    )
    recent = app[RECENT]
    # One event, however often and however written it arrives, is stored once (dedup.py).
    async with recent.claim(recent.key_for(registration_id, routed.callout, body)) as claim:
        if claim.duplicate:
            result.outcome = Outcome.DUPLICATE
            return result
        if claim.failure is not None:  # a copy in flight at the same time could not be stored
            result.outcome, result.error = Outcome.UNAVAILABLE, claim.failure
            return result
        try:
            stored = await app[DURABILITY].store(routed.message)
        except Unavailable as exc:
            claim.failed(str(exc))
            result.outcome, result.error = Outcome.UNAVAILABLE, str(exc)
            return result
        claim.stored()
    app[LAST_CALLOUTS].saw(registration_id, received_at)
    if routed.deactivation_notice:
        app[DEACTIVATIONS].submit(registration)
    if routed.dead_lettered:
        result.outcome = Outcome.DEAD_LETTERED
    elif stored is Stored.SPOOL:
        result.outcome = Outcome.SPOOLED
    return result


async def _verify(
    request: web.Request,
    registration: Registration,
    body: bytes,
    received_at: datetime,
    admission: Admission,
) -> Verification:
    """The raw-bytes comparison always; the re-escaped one (§8.5) only while this URL has not
    used up its failures for the minute, and off the event loop for larger bodies."""
    header = request.headers.get(SIGNATURE_HEADER)
    secrets = [s.get_secret_value().encode() for s in registration.verifying_secrets(received_at)]
    verification = verify(header, body, secrets, fallback=False)
    if verification is not Verification.MISMATCH:
        return verification
    if admission.bad_by_registration.exceeded(registration.registration_id):
        return verification
    claimed = claimed_mac(header)
    if isinstance(claimed, Verification):
        return claimed
    if len(body) <= INLINE_FALLBACK_BYTES:
        return verify_reescaped(claimed, body, secrets)
    return await asyncio.to_thread(verify_reescaped, claimed, body, secrets)


async def deactivation(request: web.Request) -> web.StreamResponse:
    """``POST /v1/deactivations/{registration_id}`` (unsigned: it only asks for a check)."""
    started = time.perf_counter()
    request_id = _request_id(request)
    registration_id = request.match_info["registration_id"]
    with bound_contextvars(request_id=request_id, registration=registration_id[:8]):
        registration = request.app[REGISTRATIONS].get(registration_id)
        # The body says nothing we act on (the call is unsigned): it is never read.
        if registration is None:
            result = _Result(Outcome.UNKNOWN_REGISTRATION)
        elif registration.retired:  # a retired webhook is deleted in Autotask: expected
            result = _Result(Outcome.RETIRED, registration)
        elif request.app[DEACTIVATIONS].submit(registration):
            result = _Result(Outcome.ACCEPTED, registration)
        else:  # reported within the interval: a flood must not flood the logs at ERROR too
            result = _Result(Outcome.SUPPRESSED, registration)
        # Any registration we know gets 200: Autotask needs no retry, whatever we make of it.
        answered = Outcome.UNKNOWN_REGISTRATION if registration is None else Outcome.ACCEPTED
        status, answer = _ANSWERS[answered]
        _record(DEACTIVATION_ROUTE, result, status, time.perf_counter() - started)
        return _answer(status, answer, request_id)


# --- reading, answering, recording -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Unreadable:
    reason: str


async def _read_capped(
    request: web.Request, limit: int, deadline: float
) -> bytes | _Unreadable | Outcome:
    """The raw body; TOO_LARGE when it is larger than ``limit`` (read no further than that),
    TOO_SLOW when it has not all arrived within ``deadline`` seconds.

    The application's ``client_max_size`` is the callout cap, so aiohttp stops reading a body
    (chunked ones too) as soon as it passes it.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        return Outcome.TOO_LARGE
    try:
        async with asyncio.timeout(deadline):
            body = await request.read()
    except TimeoutError:
        return Outcome.TOO_SLOW
    except web.HTTPRequestEntityTooLarge:
        return Outcome.TOO_LARGE
    except (HttpProcessingError, ClientPayloadError, ConnectionError) as exc:
        return _Unreadable(type(exc).__name__)
    return body if len(body) <= limit else Outcome.TOO_LARGE


def _client_address(request: web.Request, header: str) -> str:
    """The client's address: the last entry of ``header`` (set by the proxy in front) when one
    is configured and present, else the TCP peer."""
    if header:
        given = request.headers.get(header)
        if given:
            return given.rsplit(",", 1)[-1].strip()[:64]
    return request.remote or ""


def _request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one (128 random bits, as
    a UUID4's hex; ``os.urandom`` directly costs a seventh of ``uuid.uuid4``)."""
    given = request.headers.get(REQUEST_ID_HEADER)
    if given is not None and _REQUEST_ID.match(given):
        return given
    return os.urandom(16).hex()


def _answer(status: int, body: bytes, request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


def _short(text: str | None, limit: int = 40) -> str | None:
    """Body-supplied text for a log line, cut short (a body's strings can be megabytes)."""
    return text if text is None or len(text) <= limit else text[:limit] + "..."


_COUNTERS: dict[tuple[str, str, str], Any] = {}
_TIMERS: dict[str, Any] = {}


def _count(route_name: str, outcome: Outcome, connection: str, elapsed: float) -> None:
    """The request metrics, with their labelled children cached (label lookups are costly)."""
    key = (route_name, outcome.value, connection)
    counter = _COUNTERS.get(key)
    if counter is None:
        counter = _COUNTERS[key] = GATEWAY_REQUESTS.labels(*key)
    counter.inc()
    timer = _TIMERS.get(route_name)
    if timer is None:
        timer = _TIMERS[route_name] = GATEWAY_REQUEST_SECONDS.labels(route_name)
    timer.observe(elapsed)


def _record(route_name: str, result: _Result, status: int, elapsed: float) -> None:
    registration = result.registration
    connection = registration.connection if registration is not None else ""
    _count(route_name, result.outcome, connection, elapsed)
    if result.verification is Verification.VERIFIED_REESCAPED:
        GATEWAY_SIGNATURE_FALLBACKS.labels(connection).inc()
    # The fields the brief asks for and little else: every field costs time on each request.
    fields: dict[str, object] = {
        "outcome": result.outcome.value,
        "latency_ms": round(elapsed * 1000, 3),
    }
    if status != 200:
        fields["status"] = status
    if registration is not None:
        fields["connection"] = registration.connection
        fields["entity"] = registration.entity
    if result.client is not None:
        fields["client"] = result.client
    routed = result.routed
    if routed is not None and routed.callout is not None:
        fields["id"] = routed.callout.id
        fields["action"] = _short(routed.callout.action)
        if routed.entity_mismatch:
            fields["body_entity_type"] = _short(routed.callout.entity_type)
    if routed is not None and routed.dead_letter_reason is not None:
        fields["reason"] = routed.dead_letter_reason
    if result.verification is not None and not result.verification.ok:
        fields["verification"] = result.verification.value  # "signature" would be masked
    if result.error is not None:
        fields["error"] = result.error
    if route_name == DEACTIVATION_ROUTE and result.outcome is Outcome.ACCEPTED:
        log.error("Autotask called a webhook's deactivation URL", **fields)
    elif result.outcome is Outcome.UNAVAILABLE:
        log.error("callout refused for now", **fields)
    elif result.outcome is Outcome.OVERLOADED:
        log.warning("callout refused: overloaded", **fields)
    elif routed is not None and (routed.entity_mismatch or routed.dead_lettered):
        log.warning("callout", **fields)
    elif result.outcome in _ANSWERED_OK:
        log.info("callout" if route_name == CALLOUT_ROUTE else "deactivation call", **fields)
    else:
        event = "callout rejected" if route_name == CALLOUT_ROUTE else "deactivation call"
        log.warning(event, **fields)


_ANSWERED_OK = frozenset(
    {Outcome.ACCEPTED, Outcome.SPOOLED, Outcome.DUPLICATE, Outcome.DEAD_LETTERED, Outcome.RETIRED}
)
"""Outcomes logged at INFO (SUPPRESSED, though answered 200, is a WARNING: a flood)."""


__all__ = [
    "ADMISSION",
    "CALLOUT_ROUTE",
    "DEACTIVATIONS",
    "DEACTIVATION_ROUTE",
    "DURABILITY",
    "LAST_CALLOUTS",
    "LIMITS",
    "RECENT",
    "REGISTRATIONS",
    "CalloutLimits",
    "Outcome",
    "RegistrationLookup",
    "callout",
    "deactivation",
]

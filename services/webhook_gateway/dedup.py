"""Recently stored callouts, so a re-sent event is acknowledged without being stored again: pure,
no I/O (an injectable monotonic clock; asyncio futures only to share an outcome).

Autotask re-sends a callout whose answer was slow or lost, and may send the same event to a
receiver more than once at the same moment (autotask-api.md §8.3). What is remembered is the
*event*, not the bytes (:meth:`RecentCallouts.key_for`):

- a body that says when it happened (``EventTime`` or ``SequenceNumber``) is keyed by what the
  parser reads from it: the registration, the entity type (canonical, lower-case), ``Id``,
  ``Action``, ``EventTime``, ``SequenceNumber`` and, so that two genuinely different events are
  never taken for one, ``Guid``, ``PersonID`` and ``Fields`` in canonical JSON. The same event
  written again (other whitespace, key order or key case, ``\\u00E9`` or ``\\u00e9`` or a raw
  ``é``, another Unicode encoding) has the same key;
- any other JSON object is keyed by its canonical JSON (parsed, keys sorted, compact,
  ``ensure_ascii=False``); an object with a duplicated key, by its bytes;
- a body that cannot be parsed (it is dead-lettered) is keyed by its raw bytes.

Keys are 128-bit BLAKE2b digests. :meth:`RecentCallouts.claim` lets the first of several
concurrent requests for one key store it while the others wait for its outcome: stored, they
are duplicates; failed with a reason, they answer the same way (nothing was stored, so Autotask
must retry); gone without either (cancelled, an unexpected error), one of them takes over and
stores it. No request is ever told "duplicate" unless the event is durable.

A key is remembered for at least ``window`` after its callout was stored and at most an eighth of
``window`` longer (keys are kept in time slices, ~90 bytes each), at most ``capacity`` of them (the
oldest slice is forgotten first). Per process and best effort: a re-send landing on another
replica, after a restart or after the window is stored again, which is harmless because every
write downstream is idempotent. Correctness never depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.entities import by_callout_type
from shared.messages.callout import Callout

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a fake in tests)."""

CalloutKey = int
"""A 128-bit digest naming one event of one registration (:meth:`RecentCallouts.key_for`)."""

DEFAULT_WINDOW = timedelta(minutes=15)
DEFAULT_CAPACITY = 200_000
_SLICES = 8
"""Time slices per window: a key outlives the window by at most one slice."""


@dataclass(slots=True)
class _Slice:
    """Keys stored from ``started`` on, the newest at ``last``."""

    started: float
    last: float
    keys: set[CalloutKey]


@dataclass(frozen=True, slots=True)
class _Outcome:
    stored: bool
    failure: str | None


class Claim:
    """One request's hold on a callout key (from :meth:`RecentCallouts.claim`).

    ``duplicate``: the event is already durable, answer 2xx and store nothing. ``failure``: the
    concurrent request that held the key failed to make it durable for this reason; answer as it
    did (not 2xx) and store nothing. Otherwise this request owns the key: store the callout,
    then call :meth:`stored`, or :meth:`failed` with the reason when it could not be stored.
    """

    __slots__ = ("_failure", "_owner", "_stored", "duplicate", "failure")

    def __init__(
        self, *, duplicate: bool = False, failure: str | None = None, owner: bool = False
    ) -> None:
        self.duplicate = duplicate
        self.failure = failure
        self._owner = owner
        self._stored = False
        self._failure: str | None = None

    @property
    def owner(self) -> bool:
        """Whether this request must store the callout."""
        return self._owner

    def stored(self) -> None:
        """The callout is durable: requests waiting on this key are duplicates."""
        self._require_owner()
        self._stored = True

    def failed(self, reason: str) -> None:
        """The callout could not be made durable: waiting requests answer the same way."""
        self._require_owner()
        self._failure = reason

    def _require_owner(self) -> None:
        if not self._owner:
            raise RuntimeError("only the claim that owns a callout key stores it")


class RecentCallouts:
    """Keys of callouts stored within ``window`` (at most ``capacity``), and keys in flight."""

    def __init__(
        self,
        *,
        window: timedelta = DEFAULT_WINDOW,
        capacity: int = DEFAULT_CAPACITY,
        clock: Clock = time.monotonic,
    ) -> None:
        self._window = window.total_seconds()
        self._capacity = capacity
        self._clock = clock
        self._slice = self._window / _SLICES
        self._slice_size = max(1, capacity // _SLICES)
        # Oldest first; a slice goes when its newest key is older than the window.
        self._slices: deque[_Slice] = deque()
        self._count = 0
        self._in_flight: dict[CalloutKey, asyncio.Future[_Outcome]] = {}

    @property
    def enabled(self) -> bool:
        return self._window > 0 and self._capacity > 0

    def __len__(self) -> int:
        """Keys remembered as stored (expired slices not yet dropped included)."""
        return self._count

    @property
    def in_flight(self) -> int:
        """Keys a request is storing right now."""
        return len(self._in_flight)

    # --- keys ------------------------------------------------------------------------------
    @staticmethod
    def key_for(registration_id: str, callout: Callout | None, body: bytes) -> CalloutKey:
        """The key of the event ``body`` carries (``callout``: what routing parsed from it, None
        when it could not be parsed). Never raises."""
        if callout is not None:
            if callout.event_time is not None or callout.sequence_number is not None:
                event = _event_identity(callout)
                if event is not None:
                    return _digest(b"event", registration_id, event)
            canonical = _canonical_json(body)
            if canonical is not None:
                return _digest(b"json", registration_id, canonical)
        return _digest(b"raw", registration_id, body)

    # --- remembering -----------------------------------------------------------------------
    def seen(self, key: CalloutKey) -> bool:
        """Whether a callout with ``key`` was stored within the window."""
        if not self.enabled:
            return False
        self._expire()
        return any(key in part.keys for part in self._slices)

    def remember(self, key: CalloutKey) -> None:
        """Record that the callout with ``key`` is now durable."""
        if not self.enabled:
            return
        self._expire()
        now = self._clock()
        newest = self._slices[-1] if self._slices else None
        if (
            newest is None
            or now - newest.started >= self._slice
            or len(newest.keys) >= self._slice_size
        ):
            newest = _Slice(started=now, last=now, keys=set())
            self._slices.append(newest)
        if key not in newest.keys:
            newest.keys.add(key)
            self._count += 1
        newest.last = now
        while self._count > self._capacity and len(self._slices) > 1:
            self._count -= len(self._slices.popleft().keys)

    def _expire(self) -> None:
        horizon = self._clock() - self._window
        slices = self._slices
        while slices and slices[0].last <= horizon:
            self._count -= len(slices.popleft().keys)

    # --- claiming --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def claim(self, key: CalloutKey) -> AsyncIterator[Claim]:
        """Hold ``key`` while storing its callout; see :class:`Claim` for what to do with it.

        Concurrent claims of one key wait for the holder's outcome (the holder's store is
        bounded by the gateway's deadlines). Leaving the block without :meth:`Claim.stored`
        or :meth:`Claim.failed` (an exception, cancellation) hands the key to a waiter.
        """
        if not self.enabled:
            yield Claim(owner=True)
            return
        while True:
            if self.seen(key):
                yield Claim(duplicate=True)
                return
            holder = self._in_flight.get(key)
            if holder is None:
                break
            # shield: a waiter cancelled (its client gone) must not cancel the holder's outcome.
            outcome = await asyncio.shield(holder)
            if outcome.stored:
                yield Claim(duplicate=True)
                return
            if outcome.failure is not None:
                yield Claim(failure=outcome.failure)
                return
            # The holder left without an outcome: the next turn of the loop takes the key over.
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        claim = Claim(owner=True)
        try:
            yield claim
        finally:
            del self._in_flight[key]
            if claim._stored:
                self.remember(key)
            future.set_result(_Outcome(stored=claim._stored, failure=claim._failure))


def _digest(kind: bytes, registration_id: str, data: bytes) -> CalloutKey:
    registration = registration_id.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(kind, digest_size=16)
    digest.update(len(registration).to_bytes(4, "big"))
    digest.update(registration)
    digest.update(data)
    return int.from_bytes(digest.digest(), "big")


def _dumps(value: Any) -> bytes:
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    )
    return text.encode("utf-8", "surrogatepass")  # a body may carry a lone "\ud800"


def _event_identity(callout: Callout) -> bytes | None:
    try:
        entity_type = by_callout_type(callout.entity_type).callout_type
    except KeyError:
        entity_type = callout.entity_type
    identity = [
        entity_type.lower(),
        callout.id,
        callout.action,
        callout.event_time,
        callout.sequence_number,
        callout.guid,
        callout.person_id,
        callout.fields,
    ]
    try:
        return _dumps(identity)
    except (ValueError, TypeError, RecursionError):
        return None


class _DuplicateKeyError(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Sorted keys would hide which value came last: keep such a body apart, by its bytes.
        raise _DuplicateKeyError
    return result


def _canonical_json(body: bytes) -> bytes | None:
    try:
        return _dumps(json.loads(body, object_pairs_hook=_unique_pairs))
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_WINDOW",
    "CalloutKey",
    "Claim",
    "Clock",
    "RecentCallouts",
]

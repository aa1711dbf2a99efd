"""Recently stored callouts (keys of events, concurrent claims, window, capacity) and the
deactivation throttle: pure, with a fake clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.webhook_gateway.deactivation import Throttle
from services.webhook_gateway.dedup import (
    DEFAULT_CAPACITY,
    DEFAULT_WINDOW,
    CalloutKey,
    Claim,
    RecentCallouts,
)
from services.webhook_gateway.routing import route
from shared.messages.topics import Topics
from shared.registrations import Registration, RegistrationState

REGISTRATION = "r" * 32
TOPICS = Topics(prefix="autotask")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _recent(window: float = 900, capacity: int = 1000) -> tuple[RecentCallouts, FakeClock]:
    clock = FakeClock()
    return RecentCallouts(window=timedelta(seconds=window), capacity=capacity, clock=clock), clock


def _registration(registration_id: str = REGISTRATION, entity: str = "Tickets") -> Registration:
    return Registration(
        registration_id=registration_id,
        connection="acme",
        entity=entity,
        state=RegistrationState.ACTIVE,
        secret_current=SecretStr("secret"),
    )


def _key(body: bytes, registration_id: str = REGISTRATION, entity: str = "Tickets") -> CalloutKey:
    """The key the handler computes: from what routing parsed, as it will be wired."""
    routed = route(
        _registration(registration_id, entity),
        body,
        topics=TOPICS,
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
        request_id="req",
    )
    return RecentCallouts.key_for(registration_id, routed.callout, body)


EVENT = (
    b'{"Action":"Update","Guid":"00000000-0000-0000-0000-000000000001","EntityType":"Ticket",'
    b'"Id":42,"Fields":{"Title":"Caf\\u00E9 \\u0026 \\u003Cbar\\u003E \\u002B1"},'
    b'"EventTime":"2025-01-01T00:00:00Z","SequenceNumber":8,"PersonID":29682885}'
)
EVENT_VALUE: dict[str, Any] = json.loads(EVENT)


# --- keys: the event, not the bytes ----------------------------------------------------------
@pytest.mark.parametrize(
    "again",
    [
        pytest.param(json.dumps(EVENT_VALUE).encode(), id="other whitespace"),
        pytest.param(json.dumps(EVENT_VALUE, indent=2).encode(), id="pretty"),
        pytest.param(EVENT.replace(b"\\u00E9", b"\\u00e9"), id="escape case"),
        pytest.param(json.dumps(EVENT_VALUE, ensure_ascii=False).encode(), id="raw UTF-8"),
        pytest.param(json.dumps(dict(reversed(EVENT_VALUE.items()))).encode(), id="key order"),
        pytest.param(
            json.dumps({k.lower(): v for k, v in EVENT_VALUE.items()}).encode(), id="key case"
        ),
        pytest.param(json.dumps(EVENT_VALUE).encode("utf-16"), id="UTF-16"),
        pytest.param(b"\xef\xbb\xbf" + EVENT, id="BOM"),
        pytest.param(json.dumps({**EVENT_VALUE, "Id": "42"}).encode(), id="Id as text"),
    ],
)
def test_the_same_event_written_again_has_the_same_key(again: bytes) -> None:
    assert again != EVENT
    assert _key(again) == _key(EVENT)


@pytest.mark.parametrize(
    "change",
    [
        {"Id": 43},
        {"Action": "Create"},
        {"Action": "Delete"},
        {"EventTime": "2025-01-01T00:00:01Z"},
        {"SequenceNumber": 9},
        {"EntityType": "TicketNote"},
        {"Fields": {"Title": "Cafe & <bar> +1"}},
        {"Fields": {"Title": "Caf\u00e9 & <bar> +1", "Status": 5}},
        {"PersonID": 4},
        {"Guid": "00000000-0000-0000-0000-000000000002"},
    ],
)
def test_events_that_differ_in_anything_they_say_have_different_keys(
    change: dict[str, Any],
) -> None:
    assert _key(json.dumps({**EVENT_VALUE, **change}).encode()) != _key(EVENT)


def test_keys_belong_to_one_registration() -> None:
    assert _key(EVENT, "a" * 32) != _key(EVENT, "b" * 32)
    # Unparsable bodies are keyed by their bytes: the registration's end is not blurred into them.
    assert RecentCallouts.key_for("ab", None, b"c") != RecentCallouts.key_for("a", None, b"bc")


def test_an_alias_of_the_entity_type_is_the_same_event() -> None:
    company = {"Action": "Update", "EntityType": "Company", "Id": 0, "EventTime": "t"}
    account = {**company, "EntityType": "account"}
    assert _key(json.dumps(company).encode(), entity="Companies") == _key(
        json.dumps(account).encode(), entity="Companies"
    )


def test_without_event_time_or_sequence_the_whole_object_is_the_event() -> None:
    body = {"Action": "Update", "EntityType": "Ticket", "Id": 42, "Fields": {"a": "\u00e9"}}
    key = _key(json.dumps(body).encode())
    assert key == _key(json.dumps(body, ensure_ascii=False, indent=1).encode())
    assert key == _key(json.dumps(dict(reversed(body.items()))).encode())
    assert key != _key(json.dumps({**body, "Fields": {"a": "e"}}).encode())
    assert key != _key(json.dumps({**body, "Unknown": 1}).encode())
    assert key != _key(json.dumps({**body, "EventTime": "t"}).encode())


def test_a_body_with_a_duplicated_key_is_keyed_by_its_bytes() -> None:
    first = b'{"EntityType":"Ticket","Id":42,"X":1,"X":2}'
    second = b'{"EntityType":"Ticket","Id":42,"X":2,"X":1}'
    assert _key(first) != _key(second)
    assert _key(first) == _key(first)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (b"\xff not json", b"\xff not json "),
        (b'{"EntityType":"Ticket","Id":"\xc2\xb2"}', b'{"EntityType":"Ticket","Id":"\xc2\xb3"}'),
        (b"[1, 2]", b"[1,2]"),  # dead-lettered: the bytes are what is stored, so the bytes count
    ],
)
def test_a_body_that_cannot_be_routed_is_keyed_by_its_bytes(one: bytes, other: bytes) -> None:
    assert _key(one) != _key(other)
    assert _key(one) == _key(bytes(one))


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
_EVENT_BODIES = st.fixed_dictionaries(
    {
        "EntityType": st.sampled_from(["Ticket", "TicketNote", "Contact"]),
        "Id": st.integers(0, 3),
    },
    optional={
        "Action": st.sampled_from(["Create", "Update", "Delete", "Other"]),
        "EventTime": st.sampled_from(["2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z"]),
        "SequenceNumber": st.integers(0, 2),
        "PersonID": st.integers(1, 2),
        "Guid": st.sampled_from(["g1", "g2"]),
        "Fields": st.dictionaries(st.sampled_from(["a", "b", "\u00e9"]), _VALUES, max_size=2),
    },
)


def _meaning(value: dict[str, Any]) -> str:
    """The event a body names: what the parser reads (no ``Fields`` reads as ``Fields: {}``)
    when it has a time or a sequence, else the whole object."""
    if "EventTime" in value or "SequenceNumber" in value:
        value = {"Fields": {}, **value}
    return json.dumps(value, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(one=_EVENT_BODIES, other=_EVENT_BODIES, ascii_one=st.booleans(), indent=st.booleans())
def test_keys_are_equal_exactly_when_the_events_are(
    one: dict[str, Any], other: dict[str, Any], ascii_one: bool, indent: bool
) -> None:
    first = json.dumps(one, ensure_ascii=ascii_one).encode()
    second = json.dumps(other, indent=2 if indent else None).encode()
    assert (_key(first) == _key(second)) == (_meaning(one) == _meaning(other))


# --- remembering: window and capacity --------------------------------------------------------
def test_the_defaults_are_a_quarter_hour_and_a_bounded_number_of_keys() -> None:
    assert timedelta(minutes=15) == DEFAULT_WINDOW
    assert DEFAULT_CAPACITY == 200_000
    recent = RecentCallouts()
    assert recent.enabled


def test_a_replay_within_the_window_is_recognised_and_forgotten_after_it() -> None:
    recent, clock = _recent(window=900)
    key = _key(EVENT)
    assert not recent.seen(key)
    recent.remember(key)
    clock.now += 393  # Autotask's re-send of a callout whose answer it did not get
    assert recent.seen(key)
    clock.now += 900 - 393 - 0.001
    assert recent.seen(key)  # at least the window
    clock.now += 900 / 8  # at most an eighth longer
    assert not recent.seen(key)
    assert len(recent) == 0


def test_keys_stored_over_time_each_last_at_least_the_window() -> None:
    recent, clock = _recent(window=80)
    stored_at: dict[int, float] = {}
    for key in range(40):
        recent.remember(key)
        stored_at[key] = clock.now
        clock.now += 3
    for key, at in stored_at.items():
        if clock.now - at < 80:
            assert recent.seen(key), (key, clock.now - at)
        if clock.now - at >= 90:
            assert not recent.seen(key), (key, clock.now - at)


def test_capacity_bounds_memory_by_forgetting_the_oldest_first() -> None:
    recent, clock = _recent(capacity=16)
    for key in range(100):
        recent.remember(key)
        clock.now += 0.01
        assert len(recent) <= 16
    remembered = [key for key in range(100) if recent.seen(key)]
    assert remembered == list(range(100 - len(remembered), 100))  # the newest ones
    assert len(remembered) >= 16 - 16 // 8  # at most one slice short of capacity


def test_a_zero_window_or_capacity_turns_it_off() -> None:
    for recent, _clock in (_recent(window=0), _recent(capacity=0)):
        recent.remember(1)
        assert not recent.enabled
        assert not recent.seen(1)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 5), st.floats(0, 20)), max_size=60))
def test_never_more_than_capacity_and_a_seen_key_was_stored_recently(
    events: list[tuple[int, float]],
) -> None:
    recent, clock = _recent(window=30, capacity=4)
    stored: dict[int, float] = {}
    for key, wait in events:
        clock.now += wait
        if recent.seen(key):
            assert clock.now - stored[key] < 30 + 30 / 8
        else:
            recent.remember(key)
            stored[key] = clock.now
        assert len(recent) <= 4


# --- claims: concurrent identical sends ------------------------------------------------------
class Store:
    """A durability stand-in: counts what it made durable; can be held, or made to fail."""

    def __init__(self) -> None:
        self.stored = 0
        self.release = asyncio.Event()
        self.fail_with: str | None = None
        self.crashes = 0
        """How many of the next stores raise an unexpected error."""

    async def __call__(self) -> None:
        await self.release.wait()
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("unexpected")
        if self.fail_with is not None:
            raise ConnectionError(self.fail_with)
        self.stored += 1


async def _handle(recent: RecentCallouts, key: CalloutKey, store: Store) -> str:
    """What the callout handler does with a claim; the outcome it answers."""
    async with recent.claim(key) as claim:
        if claim.duplicate:
            return "duplicate"
        if claim.failure is not None:
            return f"unavailable: {claim.failure}"
        assert claim.owner
        try:
            await store()
        except ConnectionError as exc:
            claim.failed(str(exc))
            return f"unavailable: {exc}"
        claim.stored()
        return "stored"


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_five_concurrent_identical_sends_are_stored_once() -> None:
    recent, _clock = _recent()
    store = Store()
    tasks = [asyncio.create_task(_handle(recent, 7, store)) for _ in range(5)]
    await _settle()
    assert recent.in_flight == 1
    assert not any(task.done() for task in tasks)  # nobody is answered before it is durable
    store.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert sorted(outcomes) == ["duplicate"] * 4 + ["stored"]
    assert store.stored == 1
    assert recent.in_flight == 0
    assert await _handle(recent, 7, store) == "duplicate"  # and a later re-send too


async def test_when_the_first_cannot_make_it_durable_the_others_fail_the_same_way() -> None:
    recent, _clock = _recent()
    store = Store()
    store.fail_with = "neither Kafka nor the spool"
    tasks = [asyncio.create_task(_handle(recent, 7, store)) for _ in range(3)]
    await _settle()
    store.release.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes == ["unavailable: neither Kafka nor the spool"] * 3
    assert store.stored == 0
    store.fail_with = None  # Autotask's retry, once the store works again, is stored
    assert await _handle(recent, 7, store) == "stored"
    assert store.stored == 1


@pytest.mark.parametrize("how", ["raises", "cancelled"])
async def test_when_the_first_vanishes_a_waiter_takes_over_and_stores(how: str) -> None:
    recent, _clock = _recent()
    store = Store()
    first = asyncio.create_task(_handle(recent, 7, store))
    await _settle()
    others = [asyncio.create_task(_handle(recent, 7, store)) for _ in range(3)]
    await _settle()
    if how == "cancelled":
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await _settle()
        # Not answered on the vanished one's behalf: one of them holds the key now.
        assert not any(task.done() for task in others)
        assert recent.in_flight == 1
    else:
        store.crashes = 1
        store.release.set()
        with pytest.raises(RuntimeError):
            await first
    store.release.set()
    assert sorted(await asyncio.gather(*others)) == ["duplicate", "duplicate", "stored"]
    assert store.stored == 1


async def test_a_waiter_whose_client_left_does_not_disturb_the_first() -> None:
    recent, _clock = _recent()
    store = Store()
    first = asyncio.create_task(_handle(recent, 7, store))
    await _settle()
    waiter = asyncio.create_task(_handle(recent, 7, store))
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    store.release.set()
    assert await first == "stored"
    assert recent.seen(7)


async def test_different_keys_do_not_wait_for_each_other() -> None:
    recent, _clock = _recent()
    held = Store()
    blocked = asyncio.create_task(_handle(recent, 1, held))
    free = Store()
    free.release.set()
    assert await _handle(recent, 2, free) == "stored"
    held.release.set()
    assert await blocked == "stored"


async def test_a_claim_that_is_not_the_owner_cannot_store() -> None:
    recent, _clock = _recent()
    recent.remember(7)
    async with recent.claim(7) as claim:
        assert claim.duplicate
        with pytest.raises(RuntimeError):
            claim.stored()


async def test_switched_off_every_claim_stores() -> None:
    recent, _clock = _recent(window=0)
    for _ in range(2):
        async with recent.claim(7) as claim:
            assert isinstance(claim, Claim)
            assert claim.owner
            claim.stored()
    assert recent.in_flight == 0


# --- the deactivation throttle ---------------------------------------------------------------
def test_the_throttle_lets_one_event_per_key_and_interval_through() -> None:
    clock = FakeClock()
    throttle = Throttle(interval=timedelta(minutes=1), clock=clock)
    assert [throttle.allow("reg-a") for _ in range(50)] == [True] + [False] * 49
    assert throttle.allow("reg-b")  # keys are independent
    clock.now += 59.9
    assert not throttle.allow("reg-a")
    clock.now += 0.2
    assert throttle.allow("reg-a")
    assert not throttle.allow("reg-a")


def test_the_throttle_forgets_the_oldest_keys_beyond_its_capacity() -> None:
    clock = FakeClock()
    throttle = Throttle(interval=timedelta(minutes=1), clock=clock, capacity=2)
    assert throttle.allow("a")
    assert throttle.allow("b")
    assert throttle.allow("c")
    assert throttle.allow("a")  # forgotten, so let through again (bounded memory wins)
    assert not throttle.allow("c")

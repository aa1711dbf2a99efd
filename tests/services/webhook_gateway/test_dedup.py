"""Recent-callout fingerprints and the deactivation throttle: pure, with a fake clock."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.webhook_gateway.deactivation import Throttle
from services.webhook_gateway.dedup import RecentCallouts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _recent(window: float = 300, capacity: int = 100) -> tuple[RecentCallouts, FakeClock]:
    clock = FakeClock()
    return RecentCallouts(window=timedelta(seconds=window), capacity=capacity, clock=clock), clock


def test_an_exact_resend_within_the_window_is_seen() -> None:
    recent, clock = _recent()
    fingerprint = recent.fingerprint("reg-a", b"body")
    assert not recent.seen(fingerprint)
    recent.remember(fingerprint)
    clock.now += 299
    assert recent.seen(fingerprint)
    clock.now += 2
    assert not recent.seen(fingerprint)  # the window is over
    assert len(recent) == 0


def test_fingerprints_tell_registrations_and_bodies_apart() -> None:
    recent, _clock = _recent()
    recent.remember(recent.fingerprint("reg-a", b"body"))
    assert not recent.seen(recent.fingerprint("reg-b", b"body"))
    assert not recent.seen(recent.fingerprint("reg-a", b"body "))
    assert recent.fingerprint("ab", b"c") != recent.fingerprint("a", b"bc")


def test_capacity_bounds_memory_by_forgetting_the_oldest() -> None:
    recent, clock = _recent(capacity=3)
    prints = [recent.fingerprint("r", str(n).encode()) for n in range(5)]
    for fingerprint in prints:
        recent.remember(fingerprint)
        clock.now += 1
    assert len(recent) == 3
    assert [recent.seen(p) for p in prints] == [False, False, True, True, True]


def test_a_zero_window_turns_it_off() -> None:
    recent, _clock = _recent(window=0)
    fingerprint = recent.fingerprint("r", b"x")
    recent.remember(fingerprint)
    assert not recent.enabled
    assert not recent.seen(fingerprint)


@given(events=st.lists(st.tuples(st.integers(0, 5), st.floats(0, 100)), max_size=60))
def test_never_more_than_capacity_and_nothing_older_than_the_window(
    events: list[tuple[int, float]],
) -> None:
    recent, clock = _recent(window=30, capacity=4)
    remembered: dict[bytes, float] = {}
    for body, wait in events:
        clock.now += wait
        fingerprint = recent.fingerprint("r", bytes([body]))
        if recent.seen(fingerprint):
            assert clock.now - remembered[fingerprint] < 30
        recent.remember(fingerprint)
        remembered[fingerprint] = clock.now
        assert len(recent) <= 4


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

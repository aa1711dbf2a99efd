"""The gateway's request limits as pure bookkeeping: slots in all and per address, failures per
key within a window, and memory bounded however many addresses a flood uses."""

from __future__ import annotations

from datetime import timedelta

from services.webhook_gateway.admission import FailureLimit, Slots


def test_slots_are_limited_in_all_and_per_key_and_come_back() -> None:
    slots = Slots(limit=3, per_key=2)
    slots.take("a")
    slots.take("a")
    assert slots.full_for("a")
    assert not slots.full_for("b")
    slots.take("b")
    assert slots.full  # three in all
    slots.give_back("a")
    assert not slots.full
    assert not slots.full_for("a")
    slots.give_back("a")
    slots.give_back("b")
    assert slots.current == 0


def test_failures_beyond_the_limit_hold_until_the_window_is_over() -> None:
    now = [100.0]
    limit = FailureLimit(limit=3, window=timedelta(minutes=1), clock=lambda: now[0])
    for _ in range(3):
        assert not limit.exceeded("1.2.3.4")
        limit.failed("1.2.3.4")
    assert limit.exceeded("1.2.3.4")
    assert not limit.exceeded("5.6.7.8")  # one address's failures are its own
    now[0] += 59.0
    assert limit.exceeded("1.2.3.4")
    now[0] += 1.0  # the minute that began with the first failure is over
    assert not limit.exceeded("1.2.3.4")
    limit.failed("1.2.3.4")
    assert not limit.exceeded("1.2.3.4")  # a new window, counting from one


def test_a_flood_from_many_addresses_keeps_memory_bounded() -> None:
    limit = FailureLimit(limit=1, capacity=1000)
    for n in range(50_000):
        limit.failed(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
    assert len(limit) == 1000
    assert limit.exceeded("10.0.195.79")  # the most recent are the ones remembered

"""The coalescer: a burst of control events makes one pass, at most one per window, and an
event a pass has already covered makes none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.provisioner.healing import Coalescer

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=1)


def coalescer() -> Coalescer:
    return Coalescer(WINDOW, debounce=timedelta(seconds=1), skew=timedelta(seconds=5))


def test_the_first_event_is_acted_on_after_the_debounce_and_the_rest_of_a_burst_joins_it():
    c = coalescer()
    assert c.due() is None
    assert c.offer(T0, now=100.0) == "scheduled"
    for n in range(1, 50):
        assert c.offer(T0 + timedelta(milliseconds=n), now=100.0 + n / 1000) == "coalesced"
    assert c.due() == 101.0
    c.started(wall=T0 + timedelta(seconds=1), now=101.0, by_event=True)
    assert c.due() is None


def test_after_an_event_pass_the_next_waits_for_the_window():
    c = coalescer()
    c.offer(T0, now=100.0)
    c.started(wall=T0 + timedelta(seconds=1), now=101.0, by_event=True)
    assert c.offer(T0 + timedelta(seconds=30), now=130.0) == "scheduled"
    assert c.due() == 161.0  # one pass per connection per window
    assert c.offer(T0 + timedelta(seconds=40), now=140.0) == "coalesced"
    assert c.due() == 161.0


def test_an_event_older_than_the_last_pass_is_covered_by_it():
    c = coalescer()
    c.started(wall=T0, now=100.0, by_event=False)  # e.g. the pass at start-up
    assert c.offer(T0 - timedelta(minutes=10), now=101.0) == "covered"
    assert c.due() is None
    # ...but one stamped just before the pass may have been missed by its reads: not covered.
    assert c.offer(T0 - timedelta(seconds=2), now=101.0) == "scheduled"


def test_a_scheduled_pass_covers_pending_events_without_starting_the_window():
    c = coalescer()
    c.offer(T0, now=100.0)
    c.started(wall=T0 + timedelta(seconds=0.5), now=100.5, by_event=False)
    assert c.due() is None
    assert c.offer(T0 + timedelta(seconds=20), now=120.0) == "scheduled"
    assert c.due() == 121.0  # no event-driven pass yet: only the debounce


def test_deactivation_notices_alone_replan_at_most_once_per_deactivation_window():
    """Unsigned notices cost a bounded number of passes: one per deactivation window."""
    c = Coalescer(WINDOW, debounce=timedelta(seconds=1), deactivation_window=timedelta(minutes=15))
    c.offer(T0, now=100.0)
    c.started(wall=T0 + timedelta(seconds=1), now=101.0, by_event=True)
    passes = 1
    now = 101.0
    while now < 101.0 + 3600:  # an hour of notices, one a second
        now += 1.0
        c.offer(T0 + timedelta(seconds=now), now=now)
        due = c.due()
        if due is not None and due <= now:
            c.started(wall=T0 + timedelta(seconds=now), now=now, by_event=True)
            passes += 1
    assert passes == 5  # the first, then one per 15 minutes


def test_an_operator_request_does_not_wait_for_the_deactivation_window():
    c = Coalescer(WINDOW, debounce=timedelta(seconds=1), deactivation_window=timedelta(minutes=15))
    c.offer(T0, now=100.0)
    c.started(wall=T0 + timedelta(seconds=1), now=101.0, by_event=True)
    assert c.offer(T0 + timedelta(minutes=2), now=221.0) == "scheduled"
    assert c.due() == 101.0 + 15 * 60
    assert c.offer(T0 + timedelta(minutes=2, seconds=1), now=222.0, trigger="reprovision") == (
        "coalesced"
    )
    assert c.due() == 222.0  # the first notice's debounce; the window has long passed

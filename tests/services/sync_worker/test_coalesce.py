"""Coalescing: one fetch per entity per window, deletes need no fetch, the window adapts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sync_worker.coalesce import Coalescer, Item, WindowPolicy
from shared.entities import COMPANIES, TICKETS

T0 = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = timedelta(milliseconds=250)


def item(entity_id: int, *, delete: bool = False, second: float = 0.0, seq: int | None = None):
    return Item(
        message=(entity_id, second),
        id=entity_id,
        delete=delete,
        received_at=T0 + timedelta(seconds=second),
        sequence=seq,
    )


def fixed(_connection: str) -> timedelta:
    return WINDOW


def test_many_callouts_for_few_entities_become_one_fetch_each():
    coalescer = Coalescer()
    for n in range(100):
        coalescer.add("acme", TICKETS, item(n % 10, seq=n), now=0.0)
    assert coalescer.due(now=0.1, window_for=fixed) == []
    [unit] = coalescer.due(now=0.25, window_for=fixed)
    assert unit.callouts == 100
    assert sorted(unit.fetch_ids) == list(range(10))
    assert unit.sequences[3] == 93  # the highest sequence per id
    assert coalescer.waiting == 0


def test_no_unit_names_more_than_max_ids_however_many_arrive_at_once():
    coalescer = Coalescer(max_ids=4)
    for n in range(10):
        coalescer.add("acme", TICKETS, item(n, seq=n), now=0.0)
        coalescer.add("acme", TICKETS, item(n, seq=100 + n), now=0.0)  # a repeat joins its id
    assert coalescer.waiting == 20
    assert coalescer.next_due(now=0.0, window_for=fixed) == 0.0
    units = coalescer.due(now=0.0, window_for=fixed)  # the window has not passed
    assert [unit.fetch_ids for unit in units] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [unit.callouts for unit in units] == [8, 8]
    assert units[1].sequences == {4: 104, 5: 105, 6: 106, 7: 107}
    assert coalescer.waiting == 4  # ids 8 and 9 wait for their window
    [rest] = coalescer.flush()
    assert rest.fetch_ids == [8, 9]
    assert coalescer.waiting == 0


def test_a_delete_needs_no_fetch_and_wins_over_updates_of_the_same_id():
    coalescer = Coalescer()
    coalescer.add("acme", TICKETS, item(1, second=0.0), now=0.0)
    coalescer.add("acme", TICKETS, item(1, delete=True, second=1.0), now=0.0)
    coalescer.add("acme", TICKETS, item(1, second=2.0), now=0.0)  # reordered delivery
    coalescer.add("acme", TICKETS, item(2), now=0.0)
    [unit] = coalescer.flush()
    assert unit.fetch_ids == [2]
    assert unit.delete_at == {1: T0 + timedelta(seconds=1)}
    assert unit.earliest[1] == T0


def test_buckets_are_per_connection_and_entity_and_full_ones_go_early():
    coalescer = Coalescer(max_ids=3)
    for n in range(3):
        coalescer.add("acme", TICKETS, item(n), now=0.0)
    coalescer.add("globex", TICKETS, item(1), now=0.0)
    coalescer.add("acme", COMPANIES, item(1), now=0.0)
    [full] = coalescer.due(now=0.0, window_for=fixed)
    assert (full.connection, full.entity, len(full.fetch_ids)) == ("acme", TICKETS, 3)
    assert coalescer.next_due(now=0.1, window_for=fixed) == 0.15
    assert {(u.connection, u.entity.rest_name) for u in coalescer.due(now=1, window_for=fixed)} == {
        ("globex", "Tickets"),
        ("acme", "Companies"),
    }
    assert coalescer.next_due(now=1, window_for=fixed) is None


def test_the_window_widens_as_the_budget_is_used():
    policy = WindowPolicy()
    assert policy.window(None) == timedelta(milliseconds=250)
    assert policy.window(0.49) == timedelta(milliseconds=250)
    assert policy.window(0.5) == timedelta(seconds=2)
    assert policy.window(0.8) == timedelta(seconds=10)

"""The CLI's one spelling of values: yes/no, ISO times, past and future distances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from cli.text import distance, iso, or_dash, when, yes_no

NOW = datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)


def test_yes_no_never_prints_python_values() -> None:
    assert [yes_no(v) for v in (True, False, None, 1, 0)] == ["yes", "no", "no", "yes", "no"]


def test_or_dash_keeps_zero() -> None:
    assert (or_dash(0), or_dash(None)) == ("0", "-")


def test_iso_has_the_t_and_the_offset_in_utc() -> None:
    local = datetime(2026, 12, 7, 10, 0, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert iso(local) == "2026-12-07T08:00:05+00:00"
    assert iso(None) == "-"


def test_distance_says_ago_for_the_past_and_in_for_the_future() -> None:
    assert distance(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert distance(NOW + timedelta(seconds=293), NOW) == "in 5 min"
    assert distance(NOW - timedelta(hours=3), NOW) == "3.0 h ago"
    assert distance(NOW + timedelta(days=3), NOW) == "in 3.0 d"


def test_when_combines_both_and_tolerates_no_time() -> None:
    assert when(NOW - timedelta(seconds=5), NOW) == "2026-12-07T07:59:55+00:00 (5 s ago)"
    assert when(None, NOW) == "-"

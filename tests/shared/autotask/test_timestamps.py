"""Timestamps parse with or without Z / offset and are sent as UTC with milliseconds and Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.autotask._timestamps import format_timestamp, parse_optional_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2012-05-25T15:14:29.033Z", datetime(2012, 5, 25, 15, 14, 29, 33_000, tzinfo=UTC)),
        ("2016-03-30T13:10:35.563", datetime(2016, 3, 30, 13, 10, 35, 563_000, tzinfo=UTC)),
        ("2016-03-30T13:10:35.5630009", datetime(2016, 3, 30, 13, 10, 35, 563_000, tzinfo=UTC)),
        ("2016-03-30T15:10:35+02:00", datetime(2016, 3, 30, 13, 10, 35, tzinfo=UTC)),
        ("2016-03-30T13:10:35z", datetime(2016, 3, 30, 13, 10, 35, tzinfo=UTC)),
        ("2016-03-30", datetime(2016, 3, 30, tzinfo=UTC)),
    ],
)
def test_parse_gives_aware_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2016-13-01T00:00:00"])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_optional_parse():
    assert parse_optional_timestamp(None) is None
    assert parse_optional_timestamp("") is None
    with pytest.raises(ValueError):
        parse_optional_timestamp(12)


def test_format_is_utc_milliseconds_z_and_round_trips():
    local = datetime(2025, 4, 8, 21, 18, 19, 738_999, tzinfo=timezone(timedelta(hours=2)))
    text = format_timestamp(local)
    assert text == "2025-04-08T19:18:19.738Z"
    assert parse_timestamp(text) == local.replace(microsecond=738_000)


def test_format_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2025, 1, 1))

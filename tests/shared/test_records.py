"""One timestamp form: every datetime field in RFC 3339 UTC with milliseconds and ``Z``,
whatever form Autotask sent the instant in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.entities import CONTRACTS, RESOURCES, TICKETS
from shared.records import INSTANT_PATTERN, normalize_instant, normalize_record

# Instants whose every rendering below stays within years 1..9999.
INSTANTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def renderings(instant: datetime, offset: timezone, extra_digit: int) -> list[str]:
    """Ways Autotask (or a proxy in front of it) may write ``instant``."""
    naive = instant.replace(tzinfo=None)
    return [
        naive.isoformat(timespec="microseconds") + "Z",
        naive.isoformat(timespec="microseconds") + "z",
        naive.isoformat(timespec="microseconds"),  # no zone: UTC (autotask-api.md §3)
        naive.isoformat(timespec="microseconds") + f"{extra_digit}",  # .NET's 7 digits
        instant.isoformat(timespec="microseconds"),  # +00:00
        instant.astimezone(offset).isoformat(timespec="microseconds"),
    ]


@given(INSTANTS, OFFSETS, st.integers(min_value=0, max_value=9))
def test_every_form_of_an_instant_normalises_to_the_same_text(instant, offset, extra_digit):
    expected = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    texts = {normalize_instant(text) for text in renderings(instant, offset, extra_digit)}
    assert len(texts) == 1, texts
    (text,) = texts
    assert re.fullmatch(INSTANT_PATTERN, text)
    assert datetime.fromisoformat(text) == expected


@given(st.one_of(st.text(max_size=40), INSTANTS.map(lambda d: d.isoformat())))
def test_normalising_twice_changes_nothing(text):
    once = normalize_instant(text)
    assert normalize_instant(once) == once


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2016-03-30T13:10:35.563", "2016-03-30T13:10:35.563Z"),
        ("2016-03-30T08:10:35.563-05:00", "2016-03-30T13:10:35.563Z"),
        ("2016-03-30T13:10:35Z", "2016-03-30T13:10:35.000Z"),
        ("2016-03-30", "2016-03-30T00:00:00.000Z"),  # date-only fields hold midnight UTC
        ("0001-01-01T00:00:00", "0001-01-01T00:00:00.000Z"),  # .NET's MinValue keeps 4 digits
    ],
)
def test_known_forms(sent, kept):
    assert normalize_instant(sent) == kept


@pytest.mark.parametrize(
    "odd",
    [
        "",
        "yesterday",
        "2016-13-01T00:00:00.000",
        "2016-02-30T00:00:00.000Z",
        "9999-12-31T23:00:00-05:00",
    ],
)
def test_a_value_that_is_no_instant_is_kept_as_sent(odd):
    assert normalize_instant(odd) == odd


def test_a_record_gets_its_datetime_fields_normalised_and_nothing_else():
    record = {
        "id": 7,
        "title": "2016-03-30T13:10:35",  # a string field that looks like a time stays
        "createDate": "2016-03-30T13:10:35.563",
        "completedDate": None,
        "lastTrackedModificationDateTime": "2016-03-30T15:10:35.563+02:00",
        "userDefinedFields": [{"name": "Due", "value": "2016-03-30T13:10:35"}],
        "someFieldAutotaskAddedLater": "2016-03-30T13:10:35",
    }
    assert normalize_record(TICKETS, record) == {
        **record,
        "createDate": "2016-03-30T13:10:35.563Z",
        "lastTrackedModificationDateTime": "2016-03-30T13:10:35.563Z",
    }
    assert record["createDate"] == "2016-03-30T13:10:35.563", "the input is not changed"


def test_records_without_datetime_fields_or_with_absent_ones_pass_through():
    resource = {"id": 4, "userName": "admin", "isActive": True}
    assert normalize_record(RESOURCES, resource) == resource
    assert normalize_record(CONTRACTS, {"id": 1}) == {"id": 1}

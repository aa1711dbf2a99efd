"""Strict integers from outside data: ASCII digits or JSON numbers, within 64 bits, or None."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.integers import INT64_MAX, INT64_MIN, parse_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (0, 0),
        ("42", 42),
        (" 42\t\r\n", 42),
        ("0042", 42),
        ("0", 0),
        (17.0, 17),
        (-17.0, -17),
        ("-5", -5),
        (INT64_MAX, INT64_MAX),
        (str(INT64_MAX), INT64_MAX),
        ("0" * 500 + "7", 7),  # leading zeros are not magnitude
        (INT64_MIN, INT64_MIN),
        (str(INT64_MIN), INT64_MIN),
    ],
)
def test_what_autotask_can_mean_is_read(value: object, expected: int) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # superscript two: str.isdigit() is True, int() raises ValueError
        "\u00b9",
        "\u0661\u0662\u0663",  # Arabic-Indic 123: int() reads it as 123
        "\uff11",  # fullwidth 1
        "1_000",  # int() accepts underscores
        "+5",
        "--5",
        "5-",
        "",
        "   ",
        "\u00a05",  # no-break space is Unicode whitespace, not ASCII
        "\u20035",
        "1e3",
        "1.0",
        "0x10",
        "9" * 5000,  # beyond int()'s 4300-digit limit: ValueError, not None, before
        str(INT64_MAX + 1),
        str(INT64_MIN - 1),
        INT64_MAX + 1,
        INT64_MIN - 1,
        1e300,
        float("inf"),
        float("-inf"),
        float("nan"),
        17.5,
        True,
        False,
        None,
        [1],
        {"1": 1},
        b"1",
    ],
)
def test_anything_else_is_none(value: object) -> None:
    assert parse_int(value) is None


def test_minimum_rejects_smaller_numbers_and_signs_it_does_not_allow() -> None:
    assert parse_int(0, minimum=0) == 0
    assert parse_int(-1, minimum=0) is None
    assert parse_int(-1.0, minimum=0) is None
    assert parse_int("-1", minimum=0) is None
    assert parse_int("-0", minimum=0) is None  # no sign at all where negatives are not allowed
    assert parse_int("0", minimum=1) is None
    assert parse_int("1", minimum=1) == 1


_STRICT = re.compile(r"[ \t\n\r\f\v]*-?[0-9]+[ \t\n\r\f\v]*")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40))
def test_a_string_is_read_only_when_it_is_ascii_digits(text: str) -> None:
    number = parse_int(text)
    if number is not None:
        assert _STRICT.fullmatch(text)
        assert number == int(text)
    elif _STRICT.fullmatch(text):
        assert not INT64_MIN <= int(text) <= INT64_MAX


@settings(max_examples=200, deadline=None)
@given(number=st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_every_64_bit_integer_round_trips_through_its_text(number: int) -> None:
    assert parse_int(number) == number
    assert parse_int(str(number)) == number
    assert parse_int(f" {number} ") == number

"""Integers read from outside data (callout bodies, REST rows, picklists, headers): strictly.

Autotask sends ids and picklist values as JSON numbers or as numeric strings. ``str.isdigit()``
and ``int()`` are far more tolerant than that: they accept superscripts (``"²"``, which
``isdigit`` passes and ``int`` then rejects with ValueError), other scripts' digits
(``"١٢٣"`` is 123), underscores (``"1_000"``), Unicode spaces and thousands of digits (or raise
ValueError past Python's digit limit). :func:`parse_int` accepts only what Autotask can mean:

- a JSON integer (not a bool), or an integral JSON float (``17.0``);
- a string of ASCII digits ``[0-9]+``, optionally with a leading ``-`` when ``minimum`` allows
  negatives, optionally surrounded by ASCII whitespace;

within the signed 64-bit range (Autotask ids are 64-bit at most: a larger number cannot be an id)
and at least ``minimum``. Anything else is None; it never raises.
"""

from __future__ import annotations

import re
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_ASCII_SPACE = " \t\n\r\f\v"
# ``[0-9]`` rather than ``\d``: ``\d`` matches every script's digits unless re.ASCII is set.
_DECIMAL = re.compile(r"(-?)0*([0-9]+)")
_MAX_DIGITS = len(str(INT64_MAX))  # 19: more significant digits cannot be in range


def parse_int(value: Any, *, minimum: int = INT64_MIN) -> int | None:
    """``value`` as an int in ``[minimum, INT64_MAX]``, or None (see the module docstring)."""
    number: int
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():  # also NaN and the infinities
            return None
        number = int(value)
    elif isinstance(value, str):
        parsed = _decimal(value, signed=minimum < 0)
        if parsed is None:
            return None
        number = parsed
    else:
        return None
    if minimum <= number <= INT64_MAX and number >= INT64_MIN:
        return number
    return None


def _decimal(text: str, *, signed: bool) -> int | None:
    match = _DECIMAL.fullmatch(text.strip(_ASCII_SPACE))
    if match is None:
        return None
    sign, digits = match.groups()
    if sign and not signed:
        return None
    if len(digits) > _MAX_DIGITS:  # out of range anyway; int() would also work hard on it
        return None
    return -int(digits) if sign else int(digits)


__all__ = ["INT64_MAX", "INT64_MIN", "parse_int"]

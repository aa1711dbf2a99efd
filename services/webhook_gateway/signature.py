"""Callout signatures (autotask-api.md §8.5): pure functions, no I/O.

Autotask signs each callout with HMAC-SHA1 keyed by the webhook's secret (its UTF-8 bytes) and
sends ``X-Hook-Signature: sha1=<standard Base64 of the 20-byte MAC>``. Verification works on the
raw request bytes, before anything is parsed, and compares in constant time.

Every secret the registration accepts right now (the current one, and the previous one while a
rotation overlaps) is tried on the raw bytes first. Only when all of them fail is the fallback
tried: the body parsed (key order and number text kept) and written again the way .NET's
``System.Text.Json`` default encoder writes it (compact; ``& < > ' " + `` ` `` and every
non-ASCII UTF-16 code unit as upper-case ``\\uXXXX``; control characters as ``\\u00XX`` except
``\\b \\f \\n \\r \\t``; backslash as ``\\\\``), for a receiver behind something that unescaped
the body Autotask signed. The result says how it verified (never which secret), so the fallback's
use can be counted.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

SIGNATURE_HEADER = "X-Hook-Signature"
_PREFIX = "sha1="
_DIGEST_SIZE = 20  # SHA-1, which Autotask's scheme prescribes


class Verification(StrEnum):
    """The outcome of checking one callout's signature."""

    VERIFIED = "verified"
    """A secret's MAC of the raw bytes matches."""
    VERIFIED_REESCAPED = "verified_reescaped"
    """Only the .NET re-escaped form of the body matches (the §8.5 fallback)."""
    MISSING = "missing"
    """No (or an empty) signature header."""
    MISMATCH = "mismatch"
    """A signature that no accepted secret produces, or that is not a Base64 SHA-1 MAC."""

    @property
    def ok(self) -> bool:
        return self in (Verification.VERIFIED, Verification.VERIFIED_REESCAPED)


def sign(secret: bytes, body: bytes) -> str:
    """The header value Autotask sends for ``body`` signed with ``secret``."""
    return _PREFIX + binascii.b2a_base64(hmac.digest(secret, body, "sha1"), newline=False).decode()


FALLBACK_MAX_BYTES = 256 * 1024
"""Largest body the re-escaped comparison is tried on. Autotask's callouts are a few KB (a
ticket's longest text field is 32,000 characters, under 200 KB even with every character
escaped); parsing and re-writing costs about 0.7 s per MB, so larger bodies that fail the raw
comparison are refused without it."""


def verify(
    header: str | None, body: bytes, secrets: Sequence[bytes], *, fallback: bool = True
) -> Verification:
    """Check ``header`` against ``body`` for each of ``secrets`` (constant-time per secret).

    The ``sha1=`` prefix is optional (as receivers in the wild accept both); surrounding
    whitespace is ignored. The re-escaped comparison runs only when ``fallback`` and the body
    is at most :data:`FALLBACK_MAX_BYTES` (see :func:`verify_reescaped` to run it apart).
    """
    claimed = claimed_mac(header)
    if isinstance(claimed, Verification):
        return claimed
    if not secrets:
        return Verification.MISMATCH
    if _matches_any(claimed, body, secrets):
        return Verification.VERIFIED
    if fallback:
        return verify_reescaped(claimed, body, secrets)
    return Verification.MISMATCH


def claimed_mac(header: str | None) -> bytes | Verification:
    """The 20 MAC bytes ``header`` claims, or MISSING / MISMATCH when it claims none."""
    if header is None or not header.strip():
        return Verification.MISSING
    claimed = _decode(header)
    return Verification.MISMATCH if claimed is None else claimed


def verify_reescaped(claimed: bytes, body: bytes, secrets: Sequence[bytes]) -> Verification:
    """The §8.5 fallback alone: VERIFIED_REESCAPED when the .NET re-escaped form of ``body``
    matches ``claimed``; MISMATCH otherwise, and always for bodies over
    :data:`FALLBACK_MAX_BYTES`. Pure and thread-safe (the caller may run it off the loop)."""
    if len(body) > FALLBACK_MAX_BYTES or not secrets:
        return Verification.MISMATCH
    reescaped = reescape(body)
    if reescaped is not None and reescaped != body and _matches_any(claimed, reescaped, secrets):
        return Verification.VERIFIED_REESCAPED
    return Verification.MISMATCH


def _decode(header: str) -> bytes | None:
    """The 20 MAC bytes a header claims, or None when it cannot be one."""
    value = header.strip()
    if value[: len(_PREFIX)].lower() == _PREFIX:
        value = value[len(_PREFIX) :].strip()
    try:
        claimed = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return claimed if len(claimed) == _DIGEST_SIZE else None


def _matches_any(claimed: bytes, body: bytes, secrets: Iterable[bytes]) -> bool:
    # Every secret is tried even after a match, so the time taken says nothing about which one.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(hmac.digest(secret, body, "sha1"), claimed)
    return matched


# --- the §8.5 fallback: .NET System.Text.Json default escaping -------------------------------
class _Number(str):
    """A JSON number kept as the text it was written with (so re-writing it changes nothing)."""

    __slots__ = ()


class _Object(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, in order, duplicates kept."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_SHORT_ESCAPES = {
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\\": "\\\\",
}
# Everything outside printable ASCII, plus the HTML-sensitive characters, '+', '`' and '\'.
_NEEDS_ESCAPE = re.compile("[^\x20-\x7e]|[<>&'\"+`\\\\]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:  # JSON escapes are UTF-16 code units: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _string(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, _Object):
        out.append("{")
        for position, (key, item) in enumerate(value):
            if position:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:  # pragma: no cover - json.loads produces nothing else with these hooks
        raise TypeError(type(value).__name__)


def reescape(body: bytes) -> bytes | None:
    """``body`` written again compactly with .NET's default escaping; None if it is not JSON.

    Key order, duplicate keys and the text of numbers are kept, so the only differences from
    the input are whitespace and escaping.
    """
    try:
        text = body.decode("utf-8")
        parsed = json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    out: list[str] = []
    try:
        _write(parsed, out)
    except RecursionError:
        return None
    return "".join(out).encode("ascii")


__all__ = [
    "FALLBACK_MAX_BYTES",
    "SIGNATURE_HEADER",
    "Verification",
    "claimed_mac",
    "reescape",
    "sign",
    "verify",
    "verify_reescaped",
]

"""Signature verification (autotask-api.md §8.5): the documented vectors, the header forms
receivers accept, rotation, and the .NET re-escape fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.webhook_gateway.signature import Verification, reescape, sign, verify
from tests.services.webhook_gateway.helpers import signature as independent_signature
from tools.autotask_sim.callouts.codec import dotnet_dumps

SECRET = b"test-secret-123"
VECTOR_1 = (
    b'{"Action":"Update","Guid":"00000000-0000-0000-0000-000000000001","EntityType":"Ticket",'
    b'"Id":42,"Fields":{"Title":"Printer down"},"EventTime":"2025-01-01T00:00:00Z",'
    b'"SequenceNumber":7,"PersonID":29682885}'
)
VECTOR_2 = (
    b'{"Action":"Update","Guid":"00000000-0000-0000-0000-000000000001","EntityType":"Ticket",'
    b'"Id":42,"Fields":{"Title":"Caf\\u00E9 \\u0026 \\u003Cbar\\u003E \\u002B1"},'
    b'"EventTime":"2025-01-01T00:00:00Z","SequenceNumber":8,"PersonID":29682885}'
)
SIGNATURE_1 = "sha1=iAvc/kYevdsoMuOu05KHukxUIOM="
SIGNATURE_2 = "sha1=ybHoJPzwVk0fTylIJFd1G8tM/C8="


@pytest.mark.parametrize(("body", "expected"), [(VECTOR_1, SIGNATURE_1), (VECTOR_2, SIGNATURE_2)])
def test_the_documented_vectors(body: bytes, expected: str) -> None:
    assert sign(SECRET, body) == expected
    assert verify(expected, body, [SECRET]) is Verification.VERIFIED


@pytest.mark.parametrize(
    "header",
    [
        SIGNATURE_1,
        SIGNATURE_1.removeprefix("sha1="),  # bare Base64, as some receivers accept
        f"  {SIGNATURE_1} ",
        "SHA1=" + SIGNATURE_1.removeprefix("sha1="),
    ],
)
def test_accepted_header_forms(header: str) -> None:
    assert verify(header, VECTOR_1, [SECRET]) is Verification.VERIFIED


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Verification.MISSING),
        ("", Verification.MISSING),
        ("   ", Verification.MISSING),
        ("sha1=", Verification.MISMATCH),
        ("sha1=not base64!", Verification.MISMATCH),
        ("sha1=iAvc/kYevdsoMuOu05KHukxUIO", Verification.MISMATCH),  # bad padding
        ("sha1=" + "A" * 40, Verification.MISMATCH),  # 30 bytes: not a SHA-1 MAC
        ("sha256=iAvc/kYevdsoMuOu05KHukxUIOM=", Verification.MISMATCH),
        ("sha1=iAvc/kYevdsoMuOu05KHukxUIOM=\u00e9", Verification.MISMATCH),
        (SIGNATURE_2, Verification.MISMATCH),  # another body's signature
    ],
)
def test_missing_and_bad_headers(header: str | None, expected: Verification) -> None:
    assert verify(header, VECTOR_1, [SECRET]) is expected
    assert not expected.ok


def test_a_tampered_body_or_a_wrong_secret_does_not_verify() -> None:
    assert verify(SIGNATURE_1, VECTOR_1.replace(b"42", b"43"), [SECRET]) is Verification.MISMATCH
    assert verify(SIGNATURE_1, VECTOR_1, [b"test-secret-124"]) is Verification.MISMATCH
    assert verify(SIGNATURE_1, VECTOR_1, []) is Verification.MISMATCH


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = b"new-secret-0002", SECRET
    assert verify(SIGNATURE_1, VECTOR_1, [new, old]) is Verification.VERIFIED
    assert verify(sign(new, VECTOR_1), VECTOR_1, [new, old]) is Verification.VERIFIED
    assert verify(SIGNATURE_1, VECTOR_1, [new]) is Verification.MISMATCH  # after the window


def test_a_body_unescaped_on_the_way_verifies_through_the_dotnet_form() -> None:
    unescaped = VECTOR_2.decode("unicode_escape").encode()
    assert "Café & <bar> +1".encode() in unescaped
    assert reescape(unescaped) == VECTOR_2
    assert verify(SIGNATURE_2, unescaped, [SECRET]) is Verification.VERIFIED_REESCAPED
    assert verify(SIGNATURE_2, unescaped, [b"other-secret-9"]) is Verification.MISMATCH


def test_the_fallback_keeps_key_order_duplicates_and_number_text() -> None:
    body = b'{"b" : 1.50, "a":[1e3, -0, true,null], "b":"x"}'
    assert reescape(body) == b'{"b":1.50,"a":[1e3,-0,true,null],"b":"x"}'


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("é", "\\u00E9"),
        ("😀", "\\uD83D\\uDE00"),  # astral: a surrogate pair, upper-case hex
        ("\x1f\x7f", "\\u001F\\u007F"),
        ("\b\f\n\r\t", "\\b\\f\\n\\r\\t"),
        ("\\", "\\\\"),
        ("\"'`+&<>", "\\u0022\\u0027\\u0060\\u002B\\u0026\\u003C\\u003E"),
        ("/plain text 123", "/plain text 123"),
    ],
)
def test_dotnet_escaping_of_strings(text: str, escaped: str) -> None:
    assert reescape(json.dumps(text, ensure_ascii=False).encode()) == f'"{escaped}"'.encode()


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"\xff\xfe", b"[1,", b'{"a":NaN}', b"[" * 100_000, b"{}{}"]
)
def test_what_is_not_json_has_no_fallback(body: bytes) -> None:
    assert reescape(body) is None


_JSON: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=_JSON)
def test_the_fallback_writes_what_dotnet_writes(value: Any) -> None:
    """Against the simulator's encoder, an independent implementation of the same rules."""
    expected = dotnet_dumps(value).encode()
    as_received = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert reescape(as_received) == expected
    assert reescape(expected) == expected  # already in .NET form: unchanged


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=2000))
def test_sign_and_verify_agree_with_the_documented_algorithm(secret: bytes, body: bytes) -> None:
    header = sign(secret, body)
    if secret.isascii():
        assert header == independent_signature(secret.decode(), body)
    assert verify(header, body, [secret]) is Verification.VERIFIED
    assert verify(header, body, [secret + b"x"]) is not Verification.VERIFIED

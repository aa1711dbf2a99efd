"""The callout serializer and signer against the fixed vectors of autotask-api.md §8.5."""

from __future__ import annotations

import pytest

from tools.autotask_sim.callouts.codec import (
    build_payload,
    dotnet_dumps,
    encode_payload,
    escape_string,
    signature,
    verify,
)

SECRET = "test-secret-123"


def _vector(title: str, sequence: int) -> bytes:
    payload = build_payload(
        action="Update",
        guid="00000000-0000-0000-0000-000000000001",
        entity_type="Ticket",
        entity_id=42,
        fields={"Title": title},
        event_time="2025-01-01T00:00:00Z",
        sequence_number=sequence,
        person_id=29682885,
    )
    return encode_payload(payload)


def test_vector_one_plain_ascii() -> None:
    body = _vector("Printer down", 7)
    assert body == (
        b'{"Action":"Update","Guid":"00000000-0000-0000-0000-000000000001","EntityType":"Ticket",'
        b'"Id":42,"Fields":{"Title":"Printer down"},"EventTime":"2025-01-01T00:00:00Z",'
        b'"SequenceNumber":7,"PersonID":29682885}'
    )
    assert signature(SECRET, body) == "sha1=iAvc/kYevdsoMuOu05KHukxUIOM="


def test_vector_two_dotnet_escaping() -> None:
    body = _vector("Café & <bar> +1", 8)
    assert b'"Title":"Caf\\u00E9 \\u0026 \\u003Cbar\\u003E \\u002B1"' in body
    assert signature(SECRET, body) == "sha1=ybHoJPzwVk0fTylIJFd1G8tM/C8="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'", '"\\u0027"'),
        ('"', '"\\u0022"'),
        ("`", '"\\u0060"'),
        ("\\", '"\\\\"'),
        ("\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'),
        ("\x01\x1f\x7f", '"\\u0001\\u001F\\u007F"'),
        ("ü", '"\\u00FC"'),
        ("😀", '"\\uD83D\\uDE00"'),
        ("plain text 123", '"plain text 123"'),
    ],
)
def test_escape_rules(text: str, expected: str) -> None:
    assert escape_string(text) == expected


def test_compact_order_preserving_output() -> None:
    assert dotnet_dumps({"b": [1, 2.5, None, True], "a": {"x": False}}) == (
        '{"b":[1,2.5,null,true],"a":{"x":false}}'
    )


def test_verify_accepts_prefix_or_bare_and_rejects_tampering() -> None:
    body = _vector("Printer down", 7)
    header = signature(SECRET, body)
    assert verify(SECRET, body, header)
    assert verify(SECRET, body, header.removeprefix("sha1="))
    assert not verify(SECRET, body + b" ", header)
    assert not verify("other-secret", body, header)

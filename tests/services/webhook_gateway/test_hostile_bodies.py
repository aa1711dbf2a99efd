"""Whatever bytes a verified callout carries, routing answers: a message keyed by the
registration and the body's Id, or a dead letter with the reason; the parser raises nothing but
MessageError; verification raises nothing for any header; the de-duplication key is computed.

Pure (no I/O): hypothesis drives random bytes, random JSON values and callout-shaped JSON with
hostile values (numbers in other scripts, superscripts, huge and non-finite numbers, lone
surrogates, duplicated keys and keys differing only in case, other encodings, deep nesting).
"""

from __future__ import annotations

import contextlib
import json
import re
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.routing import Routed, route
from services.webhook_gateway.signature import Verification, sign, verify
from shared.errors import MessageError
from shared.messages.callout import parse_callout
from shared.messages.topics import Topics
from shared.registrations import Registration, RegistrationState

TOPICS = Topics(prefix="autotask")
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INT64_MAX = 2**63 - 1
REGISTRATION = Registration(
    registration_id="r" * 32,
    connection="acme",
    entity="Tickets",
    state=RegistrationState.ACTIVE,
    secret_current=SecretStr("secret"),
)
SECRET = b"secret"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _route(body: bytes) -> Routed:
    return route(REGISTRATION, body, topics=TOPICS, received_at=AT, request_id="req")


# --- an oracle, written from the rule rather than from the code ---------------------------
_ASCII_INTEGER = re.compile(r"[ \t\n\r\f\v]*([0-9]+)[ \t\n\r\f\v]*")


def _expected_id(value: Any) -> int | None:
    """The Id a body means: a JSON integer or integral float, or ASCII digits; 0..2**63-1."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        match = _ASCII_INTEGER.fullmatch(value)
        digits = match.group(1).lstrip("0") or "0" if match else None
        value = int(digits) if digits is not None and len(digits) <= 19 else None
    if isinstance(value, int) and 0 <= value <= INT64_MAX:
        return value
    return None


def _expected(body: bytes) -> tuple[str, int] | None:
    """(EntityType, Id) when the body can be routed, None when it must be dead-lettered."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    lowered = {key.lower(): value for key, value in data.items()}
    entity_type, entity_id = lowered.get("entitytype"), _expected_id(lowered.get("id"))
    action = lowered.get("action")
    if isinstance(action, str) and action.strip().lower() == "deactivated":
        return None
    if not isinstance(entity_type, str) or not entity_type.strip() or entity_id is None:
        return None
    return entity_type, entity_id


def _check(body: bytes) -> Routed:
    """The properties every body must satisfy; the routed result for further checks."""
    routed = _route(body)  # never raises
    expected = _expected(body)
    assert routed.message.value is body
    if expected is None:
        assert routed.dead_lettered
        assert routed.dead_letter_reason
        assert routed.message.topic == TOPICS.callouts_dlq
        assert routed.message.key == b"acme:Ticket"
        with pytest.raises(MessageError) if routed.callout is None else nullcontext():
            parse_callout(body)
    else:
        assert not routed.dead_lettered, routed.dead_letter_reason
        assert routed.message.topic == TOPICS.callouts
        assert routed.message.key == f"acme:Ticket:{expected[1]}".encode()
        assert routed.callout is not None
        assert routed.callout.id == expected[1]
        assert routed.callout.entity_type == expected[0].strip()
        assert parse_callout(body) == routed.callout
    key = RecentCallouts.key_for(REGISTRATION.registration_id, routed.callout, body)
    assert 0 <= key < 2**128
    return routed


# --- hostile values -------------------------------------------------------------------------
_HOSTILE_NUMBERS = [
    "\u00b2",  # superscript two: isdigit() passes it, int() raises
    "\u00b9",
    "\u00b3",
    "\u0661\u0662\u0663",  # Arabic-Indic 123: int() reads 123
    "\uff14\uff12",  # fullwidth 42
    "1_000",
    "+7",
    "-7",
    " 42 ",
    "\u00a042",
    "0042",
    "9" * 19,
    "9" * 5000,  # past int()'s digit limit
    str(INT64_MAX),
    str(INT64_MAX + 1),
    "",
    "\ud800",
]
_ID_VALUES = st.one_of(
    st.sampled_from(_HOSTILE_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and the infinities included (written as NaN / Infinity literals)
    st.sampled_from([True, False, None, [], {}, [1], {"Id": 1}]),
    st.text(st.characters(categories=["Nd", "No", "Zs"]), max_size=4),
    st.from_regex(r"\A[ \t]?[0-9]{1,22}[ \t]?\Z"),
)
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _callout_shaped(draw: st.DrawFn) -> bytes:
    """A callout-like object, written by hand so keys may repeat or differ only in case."""
    pairs: list[tuple[str, Any]] = []
    names = {
        "Action": st.sampled_from(["Create", "Update", "Delete", "Deactivated", " deactivated "]),
        "EntityType": st.sampled_from(["Ticket", "ticket ", "Account", "", " ", "\ud800"]),
        "Id": _ID_VALUES,
        "Fields": st.one_of(_ANY_JSON, st.just("\ud800")),
        "EventTime": st.one_of(st.text(max_size=25), st.integers(), st.just("\udfff")),
        "SequenceNumber": _ID_VALUES,
        "PersonID": _ID_VALUES,
        "Guid": st.one_of(st.text(max_size=10), _ANY_JSON),
    }
    for name, values in names.items():
        for _ in range(draw(st.integers(0, 2))):  # absent, once, or twice
            spelling = draw(st.sampled_from([name, name.lower(), name.upper()]))
            pairs.append((spelling, draw(values)))
    pairs = draw(st.permutations(pairs))
    ensure_ascii = draw(st.booleans())
    text = (
        "{"
        + ",".join(
            json.dumps(key, ensure_ascii=ensure_ascii)
            + ":"
            + json.dumps(value, ensure_ascii=ensure_ascii)
            for key, value in pairs
        )
        + "}"
    )
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]))
    return text.encode(encoding, "surrogatepass")


@PROPERTY
@given(body=st.binary(max_size=400))
def test_random_bytes_are_routed_or_dead_lettered(body: bytes) -> None:
    _check(body)


@PROPERTY
@given(value=_ANY_JSON, ensure_ascii=st.booleans())
def test_random_json_values_are_routed_or_dead_lettered(value: Any, ensure_ascii: bool) -> None:
    _check(json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_callout_shaped())
def test_callout_shaped_bodies_with_hostile_values_are_routed_by_their_id(body: bytes) -> None:
    routed = _check(body)
    if routed.callout is not None:  # the optional numbers are strict too, or None
        for number in (routed.callout.sequence_number, routed.callout.person_id):
            assert number is None or 0 <= number <= INT64_MAX


@PROPERTY
@given(body=st.binary(max_size=400))
def test_the_parser_raises_only_message_error(body: bytes) -> None:
    with contextlib.suppress(MessageError):  # anything else fails the test
        parse_callout(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"EntityType":"Ticket","Id":"\xc2\xb2"}', None),  # answered 500 before
        (b'{"EntityType":"Ticket","Id":"\xd9\xa1\xd9\xa2\xd9\xa3"}', None),  # routed as 123 before
        (b'{"EntityType":"Ticket","Id":"' + b"9" * 5000 + b'"}', None),
        (b'{"EntityType":"Ticket","Id":1e999}', None),
        (b'{"EntityType":"Ticket","Id":NaN}', None),
        (b'{"EntityType":"Ticket","Id":-Infinity}', None),
        (b'{"EntityType":"Ticket","Id":' + b"9" * 5000 + b"}", None),
        (b'{"EntityType":"Ticket","Id":9223372036854775808}', None),
        (b'{"EntityType":"Ticket","Id":9223372036854775807}', 2**63 - 1),
        (b'{"EntityType":"Ticket","Id":" 42\\t"}', 42),
        (b'{"EntityType":"Ticket","Id":42.0}', 42),
        (b'{"EntityType":"Ticket","Id":1,"id":2}', 2),  # the last spelling wins
        (b'{"EntityType":"\\ud800","Id":3}', 3),
        (b'\xef\xbb\xbf{"EntityType":"Ticket","Id":4}', 4),
        ('{"EntityType":"Ticket","Id":5}'.encode("utf-16"), 5),
        (b'{"EntityType":"Ticket","Id":6,"Fields":[1]}', 6),
        (b'{"EntityType":"Ticket","Id":7,"Fields":' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    ],
)
def test_hostile_ids(body: bytes, expected: int | None) -> None:
    routed = _check(body)
    assert (routed.callout.id if routed.callout else None) == expected


@pytest.mark.parametrize("field", ["SequenceNumber", "PersonID", "sequencenumber", "personId"])
@pytest.mark.parametrize("value", ['"\xc2\xb9"', '"\xc2\xb3"', '"\xd9\xa3"', "1e999", "NaN", '"9"'])
def test_an_unusable_sequence_number_or_person_is_none_not_an_error(field: str, value: str) -> None:
    body = f'{{"EntityType":"Ticket","Id":8,"{field}":{value}}}'.encode("latin-1")
    routed = _check(body)
    assert routed.callout is not None
    read = routed.callout.sequence_number if "seq" in field.lower() else routed.callout.person_id
    assert read == (9 if value == '"9"' else None)


# --- signatures: any header, any body --------------------------------------------------------
_HEADERS = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
    st.binary(max_size=60).map(lambda raw: raw.decode("latin-1")),
    st.binary(min_size=20, max_size=20).map(lambda mac: sign(b"other", mac)),
    st.just("sha1=\ud800"),
)


@PROPERTY
@given(header=_HEADERS, body=st.one_of(st.binary(max_size=200), _callout_shaped()))
def test_verify_never_raises_and_never_accepts_what_the_secret_did_not_sign(
    header: str | None, body: bytes
) -> None:
    outcome = verify(header, body, [SECRET])
    assert outcome in set(Verification)
    if header is None or not header.strip():
        assert outcome is Verification.MISSING
    if outcome is Verification.VERIFIED:
        assert header is not None
        assert header.strip().removeprefix("sha1=").strip() in sign(SECRET, body)
    assert verify(sign(SECRET, body), body, [SECRET]) is Verification.VERIFIED

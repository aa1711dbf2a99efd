"""Callout bodies and signatures exactly as Autotask most likely produces them (§8.2, §8.5).

``EntityType`` carries the SOAP-era entity names: ``Ticket`` and ``InstalledProduct`` (a
configuration item) are seen in production error messages; companies send ``Account`` by default
(the same SOAP pattern; ``Company`` is the configurable alternative); ``Contact`` and
``TicketNote`` are unconfirmed.

Autotask is a .NET service; the escaping set receivers had to reproduce to verify signatures is
``System.Text.Json``'s default encoder. So the simulator writes bodies compactly with that
escaping and signs those exact bytes:

- ``& < > ' " + ` `` become ``\\u0026 \\u003C \\u003E \\u0027 \\u0022 \\u002B \\u0060``;
- every non-ASCII UTF-16 code unit becomes ``\\uXXXX`` (uppercase hex; astral characters as
  a surrogate pair);
- control characters and DEL become ``\\u00XX`` except the short forms ``\\b \\f \\n \\r \\t``;
  a backslash is ``\\\\``.

The signature is ``sha1=`` + Base64(HMAC-SHA1(secret as UTF-8, body bytes)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from tools.autotask_sim.jsontypes import JsonValue

SIGNATURE_HEADER = "X-Hook-Signature"

# The simulator's own table of wire names, per REST entity; never derived from the project's
# entity registry, so a registry that misses a spelling fails against the simulator.
ENTITY_TYPES = {
    "Tickets": "Ticket",
    "ConfigurationItems": "InstalledProduct",
    "Contacts": "Contact",
    "TicketNotes": "TicketNote",
}

# Order of the top-level keys; the true order is UNCERTAIN (§8.5), this is the one every client
# studied lists.
PAYLOAD_KEY_ORDER = (
    "Action",
    "Guid",
    "EntityType",
    "Id",
    "Fields",
    "EventTime",
    "SequenceNumber",
    "PersonID",
)

_SHORT_ESCAPES = {
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\\": "\\\\",
}
# Everything outside printable ASCII, plus the HTML-sensitive set and the backslash.
_NEEDS_ESCAPE = re.compile("[^\x20-\x7e]|[<>&'\"+`\\\\]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:
        # JSON escapes are UTF-16 code units: astral characters become a surrogate pair.
        code -= 0x10000
        high, low = 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)
        return f"\\u{high:04X}\\u{low:04X}"
    return f"\\u{code:04X}"


def escape_string(text: str) -> str:
    """A JSON string literal (quotes included) escaped like System.Text.Json's default."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def dotnet_dumps(value: JsonValue) -> str:
    """Serialise compactly (no whitespace) with .NET escaping, keeping mapping order."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON cannot carry NaN or infinity")
        return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))
    if isinstance(value, str):
        return escape_string(value)
    if isinstance(value, Mapping):
        parts = [f"{escape_string(str(k))}:{dotnet_dumps(v)}" for k, v in value.items()]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(dotnet_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hook-Signature`` value for ``body`` signed with ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).digest()
    return "sha1=" + base64.b64encode(digest).decode("ascii")


def verify(secret: str, body: bytes, header: str) -> bool:
    """Constant-time check of a signature header (``sha1=`` prefix optional)."""
    expected = signature(secret, body)
    candidate = header.strip()
    if not candidate.startswith("sha1="):
        candidate = "sha1=" + candidate
    return hmac.compare_digest(expected.encode(), candidate.encode())


def entity_type(rest_name: str, company: Literal["Account", "Company"]) -> str:
    """The callout ``EntityType`` of an entity, by its REST name."""
    if rest_name == "Companies":
        return company
    return ENTITY_TYPES[rest_name]


def build_payload(
    *,
    action: str,
    guid: str,
    entity_type: str,
    entity_id: int,
    fields: Mapping[str, JsonValue],
    event_time: str,
    sequence_number: int,
    person_id: int,
    person_id_key: str = "PersonID",
) -> dict[str, JsonValue]:
    """The callout object with its keys in ``PAYLOAD_KEY_ORDER``."""
    return {
        "Action": action,
        "Guid": guid,
        "EntityType": entity_type,
        "Id": entity_id,
        "Fields": dict(fields),
        "EventTime": event_time,
        "SequenceNumber": sequence_number,
        person_id_key: person_id,
    }


def encode_payload(payload: Mapping[str, JsonValue]) -> bytes:
    """The exact bytes sent on the wire (and signed)."""
    return dotnet_dumps(payload).encode("ascii")


__all__ = [
    "ENTITY_TYPES",
    "PAYLOAD_KEY_ORDER",
    "SIGNATURE_HEADER",
    "build_payload",
    "dotnet_dumps",
    "encode_payload",
    "entity_type",
    "escape_string",
    "signature",
    "verify",
]

"""Property: whatever arrives at the callout route, the gateway answers without a 5xx, keeps
running, and stores exactly the bodies that a registration's secret signed.

A real gateway process (``python -m services.webhook_gateway``) with a small body cap gets
arbitrary bytes, signature headers, content types, sizes, methods and paths from hypothesis,
plus raw requests with arbitrary header bytes. Afterwards the callouts topic, the dead-letter
topic and the spool together hold precisely the verified bodies.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.webhook_gateway.dedup import RecentCallouts
from services.webhook_gateway.signature import reescape
from shared.errors import MessageError
from shared.messages.callout import parse_callout
from shared.registrations import RegistrationState
from tests.helpers.processes import ServiceProcess
from tests.helpers.waiting import eventually
from tests.services.webhook_gateway.helpers import (
    Deployment,
    gateway_process,
    read_topic,
    signature,
    spooled,
)

pytestmark = pytest.mark.integration

SECRET = "fuzz-secret-0001"
CAP = 2048
OK = 200
REFUSALS = {400, 401, 404, 405, 410, 413}


@dataclass
class Target:
    process: ServiceProcess
    active: str
    retired: str
    verified: set[bytes] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture
async def target(deployment: Deployment, tmp_path: Path) -> Iterator[Target]:  # type: ignore[misc]
    active = await deployment.registration(secret=SECRET)
    retired = await deployment.registration(
        connection="old", secret=SECRET, state=RegistrationState.RETIRED
    )
    # Every request comes from one address to one URL: the bad-signature limits (test_hostile.py)
    # are lifted here, so each example reaches the parts under test.
    process = gateway_process(
        deployment.settings(),
        tmp_path / "gateway.log",
        AUTOTASK_SYNC_MAX_BODY_SIZE=str(CAP),
        AUTOTASK_SYNC_BAD_SIGNATURES_PER_CLIENT="1000000",
        AUTOTASK_SYNC_BAD_SIGNATURES_PER_REGISTRATION="1000000",
    )
    await process.start()
    try:
        yield Target(process, active.registration_id, retired.registration_id)
    finally:
        await process.stop()


_JSON_TEXT = st.text(max_size=40)
_ID = st.one_of(
    st.integers(min_value=-5, max_value=10**12),
    st.integers(min_value=1, max_value=10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
)


@st.composite
def _callout_json(draw: st.DrawFn) -> bytes:
    keys = {
        "Action": st.sampled_from(["Create", "Update", "Delete", "Deactivated", "update", ""]),
        "EntityType": st.sampled_from(["Ticket", "Account", "InstalledProduct", "", "ticket"]),
        "Id": _ID,
        "Fields": st.dictionaries(_JSON_TEXT, st.one_of(_JSON_TEXT, st.integers()), max_size=4),
        "SequenceNumber": _ID,
    }
    payload: dict[str, Any] = {}
    for key, values in keys.items():
        if draw(st.booleans()):
            name = draw(st.sampled_from([key, key.lower(), key.upper()]))
            payload[name] = draw(values)
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode()


_BODIES = st.one_of(
    st.binary(max_size=300),
    _callout_json(),
    st.binary(min_size=CAP - 8, max_size=CAP + 64),
)
_SIGNATURES = st.sampled_from(
    ["right", "bare", "spaced", "reescaped", "wrong_secret", "other_body", "random", "junk", "none"]
)


def _signature_header(kind: str, body: bytes, junk: str, random_mac: bytes) -> str | None:
    if kind == "right":
        return signature(SECRET, body)
    if kind == "bare":
        return signature(SECRET, body).removeprefix("sha1=")
    if kind == "spaced":
        return "  " + signature(SECRET, body) + " "
    if kind == "reescaped":
        escaped = reescape(body)
        return signature(SECRET, escaped if escaped is not None else body)
    if kind == "wrong_secret":
        return signature("not-the-secret-1", body)
    if kind == "other_body":
        return signature(SECRET, body + b" ")
    if kind == "random":
        return "sha1=" + base64.b64encode(random_mac).decode()
    if kind == "junk":
        return junk
    return None


def _verifies(kind: str, body: bytes) -> bool:
    """Whether the header built for ``kind`` is one the registration's secret produced."""
    # "reescaped" signs the .NET form, or the body itself when it is not JSON: signed either way.
    return kind in ("right", "bare", "spaced", "reescaped")


def _request(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _raw(port: int, data: bytes) -> int | None:
    """Send raw bytes; the status of the answer (None when the server just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def test_arbitrary_requests_never_get_a_5xx_and_only_signed_bodies_are_stored(
    target: Target, deployment: Deployment
) -> None:
    port = target.process.port

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        where=st.sampled_from(["active"] * 6 + ["retired", "unknown", "arbitrary"]),
        segment=st.text(max_size=60),
        method=st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE"]),
        body=_BODIES,
        kind=_SIGNATURES,
        junk=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
        random_mac=st.binary(min_size=20, max_size=20),
        content_type=st.sampled_from(
            [None, "application/json", "text/plain", "application/x-www-form-urlencoded"]
        ),
    )
    def examples(
        where: str,
        segment: str,
        method: str,
        body: bytes,
        kind: str,
        junk: str,
        random_mac: bytes,
        content_type: str | None,
    ) -> None:
        registration = {"active": target.active, "retired": target.retired}.get(where)
        if registration is not None:
            path = f"/v1/callouts/{registration}"
        elif where == "unknown":
            path = "/v1/callouts/" + quote(segment or "x", safe="")
        else:
            path = "/" + quote(segment, safe="/")
        headers: dict[str, str] = {}
        header = _signature_header(kind, body, junk, random_mac)
        if header is not None:
            headers["X-Hook-Signature"] = header
        if content_type is not None:
            headers["Content-Type"] = content_type
        status = _request(port, method, path, body, headers)
        target.statuses[status] = target.statuses.get(status, 0) + 1
        should_store = (
            where == "active" and method == "POST" and len(body) <= CAP and _verifies(kind, body)
        )
        if should_store:
            assert status == OK, (status, kind, body[:80])
            target.verified.add(body)
        else:
            assert status in REFUSALS, (status, where, method, kind)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(head=st.binary(max_size=300), body=st.binary(max_size=200))
    def raw_requests(head: bytes, body: bytes) -> None:
        request_line = f"POST /v1/callouts/{target.active} HTTP/1.1\r\n".encode()
        status = _raw(port, request_line + head + b"\r\n\r\n" + body)
        assert status is None or status < 500, status

    examples()
    raw_requests()

    async def stored() -> list[bytes]:
        callouts = await read_topic(deployment.bootstrap, deployment.topics.callouts)
        dead = await read_topic(deployment.bootstrap, deployment.topics.callouts_dlq)
        rows = await spooled(deployment.dsn)
        return [r.value for r in (*callouts, *dead)] + [row.value for row in rows]  # type: ignore[misc]

    async def wait_for_all() -> list[bytes]:
        await eventually(all_stored, within=timedelta(seconds=20), interval=timedelta(seconds=0.1))
        return await stored()

    def event(body: bytes) -> int:
        """What the gateway deduplicates on (dedup.py): re-sends of one event share it."""
        try:
            callout = parse_callout(body)
        except MessageError:
            callout = None
        return RecentCallouts.key_for(target.active, callout, body)

    async def all_stored() -> bool:
        return {event(body) for body in await stored()} >= {event(b) for b in target.verified}

    found = asyncio.run(wait_for_all())
    assert set(found) <= target.verified  # nothing that was not verified
    # Every verified event, each stored once (re-sends, however written, were not stored again).
    assert sorted(event(body) for body in found) == sorted({event(b) for b in target.verified})
    assert target.statuses.get(OK, 0) > 20, target.statuses  # both kinds were really tried
    assert target.statuses.get(401, 0) > 20, target.statuses
    assert _request(target.process.ops_port, "GET", "/healthz", b"", {}) == OK  # still alive
    errors = [
        line for line in target.process.log_lines() if line.get("level") in ("error", "critical")
    ]
    assert errors == []

"""Query paging: running one page and the ``paging`` tokens in ``nextPageUrl``/``prevPageUrl``.

Tokens are stateless: a signed, URL-safe blob saying which entity, which direction and which id
the page is anchored on, plus either a hash of the POST body (the next page must be POSTed with
the same body, §3) or the GET query's ``search`` text (GET pages are self-contained). A page
"after" id N holds the first matches with id > N; a page "before" id N holds the last matches
with id < N, which is how ``prevPageUrl`` walks backwards without server-side state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from tools.autotask_sim.apierror import business_error
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.query.grammar import CompiledQuery
from tools.autotask_sim.store.table import Table

Kind = Literal["post", "get"]
Direction = Literal["after", "before"]

INVALID_PAGING = "The paging token is invalid or has expired."
BODY_MISMATCH = "The request body does not match the query that produced this paging token."


@dataclass(frozen=True, slots=True)
class PageToken:
    """Where a page starts and how its query must be repeated."""

    entity: str
    kind: Kind
    direction: Direction
    anchor: int
    body_hash: str = ""
    search: str = ""


def body_fingerprint(body: Any) -> str:
    """A hash of a query body that ignores whitespace and key order."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class TokenCodec:
    """Encodes and verifies paging tokens with a per-simulator key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, token: PageToken) -> str:
        payload = json.dumps(
            [
                token.entity,
                token.kind,
                token.direction,
                token.anchor,
                token.body_hash,
                token.search,
            ],
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(self, text: str, entity: str) -> PageToken:
        """The token in ``text``; raises ApiError (500) if forged, corrupt or for another entity."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            mac, payload = raw[:12], raw[12:]
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:12]
            if not hmac.compare_digest(mac, expected):
                raise ValueError("bad mac")
            name, kind, direction, anchor, body_hash, search = json.loads(payload)
        except (ValueError, TypeError):
            raise business_error(INVALID_PAGING) from None
        if str(name).lower() != entity.lower():
            raise business_error(INVALID_PAGING)
        return PageToken(name, kind, direction, int(anchor), body_hash, search)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of matches plus where the neighbouring pages start."""

    items: list[Record]
    next_anchor: int | None
    """Anchor of the next page ("after" this id), or None when this is the last page."""
    prev_anchor: int | None
    """Anchor of the previous page ("before" this id), or None on the first page."""


def _candidate_ids(table: Table, query: CompiledQuery, after: int | None) -> Iterator[int]:
    lower = after
    if query.min_id is not None:
        lower = query.min_id if lower is None else max(lower, query.min_id)
    if query.id_candidates is not None:
        return iter(sorted(i for i in query.id_candidates if lower is None or i > lower))
    return table.ids_after(lower)


def _collect(table: Table, ids: Iterator[int], query: CompiledQuery, limit: int) -> list[Record]:
    found: list[Record] = []
    predicate = query.predicate
    get = table.get
    for record_id in ids:
        record = get(record_id)
        if record is not None and predicate(record):
            found.append(record)
            if len(found) >= limit:
                break
    return found


def run_page(
    table: Table, query: CompiledQuery, direction: Direction | None, anchor: int | None
) -> Page:
    """The page of ``query`` at the given anchor (``direction`` None: the first page)."""
    size = query.max_records
    if direction == "before":
        ids: Iterator[int]
        if query.id_candidates is not None:
            ids = iter(
                sorted(
                    (i for i in query.id_candidates if anchor is None or i < anchor), reverse=True
                )
            )
        else:
            ids = table.ids_before(anchor)
        found = _collect(table, ids, query, size + 1)
        more_before = len(found) > size
        items = list(reversed(found[:size]))
        first, last = _ends(items)
        return Page(items, last, first if more_before else None)
    found = _collect(table, _candidate_ids(table, query, anchor), query, size + 1)
    items = found[:size]
    first, last = _ends(items)
    next_anchor = last if len(found) > size else None
    prev_anchor = first if direction == "after" else None
    return Page(items, next_anchor, prev_anchor)


def count(table: Table, query: CompiledQuery) -> int:
    """How many records match ``query``."""
    predicate = query.predicate
    get = table.get
    total = 0
    for record_id in _candidate_ids(table, query, None):
        record = get(record_id)
        if record is not None and predicate(record):
            total += 1
    return total


def _ends(items: list[Record]) -> tuple[int | None, int | None]:
    if not items:
        return None, None
    first, last = items[0]["id"], items[-1]["id"]
    assert isinstance(first, int)
    assert isinstance(last, int)
    return first, last


__all__ = [
    "BODY_MISMATCH",
    "INVALID_PAGING",
    "Page",
    "PageToken",
    "TokenCodec",
    "body_fingerprint",
    "count",
    "run_page",
]

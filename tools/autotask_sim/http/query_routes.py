"""Query routes (§3, §4): ``/query``, ``/query/count`` and ``/query/next`` for one collection.

POST queries page with ``nextPageUrl`` tokens that must be POSTed again with the same body (a GET
on them is 405); GET ``?search=`` queries page with self-contained GET URLs. Pages are assembled
from per-record JSON encodings, which the tables cache, because serialising is most of the cost.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from tools.autotask_sim.apierror import ApiError, business_error, method_not_allowed, not_found
from tools.autotask_sim.http.collections import Collection, Ctx, require_permission
from tools.autotask_sim.http.responses import dumps, json_response, raw_json_response, read_json
from tools.autotask_sim.jsontypes import Record
from tools.autotask_sim.query.grammar import CompiledQuery, compile_query
from tools.autotask_sim.query.paging import (
    BODY_MISMATCH,
    Direction,
    Kind,
    PageToken,
    body_fingerprint,
    count,
    run_page,
)
from tools.autotask_sim.query.projection import project
from tools.autotask_sim.state import SimulatorState


class QueryRoutes:
    """Runs queries and pages for any collection."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def handle(
        self, request: web.Request, coll: Collection, rest: tuple[str, ...], ctx: Ctx
    ) -> web.Response:
        method = request.method
        tail = rest[0].lower() if rest else ""
        if len(rest) > 1 or tail not in ("", "count", "next"):
            raise not_found()
        if method not in ("GET", "POST"):
            raise method_not_allowed(method)
        require_permission(self.state, ctx.user, coll.perm_entity, "read")
        if not coll.capabilities.query:
            raise method_not_allowed(method)
        if tail == "next":
            return await self._next_page(request, coll, ctx)
        kind: Kind
        if method == "POST":
            body, kind, search = await read_json(request), "post", ""
        else:
            search = request.query.get("search", "")
            body, kind = _parse_search(search), "get"
        compiled = self._compile(coll, body, ctx)
        if tail == "count":
            return json_response({"queryCount": count(coll.table, compiled)})
        fingerprint = body_fingerprint(body) if kind == "post" else ""
        return self._page(coll, compiled, ctx, kind, fingerprint, search, None, None)

    async def _next_page(self, request: web.Request, coll: Collection, ctx: Ctx) -> web.Response:
        token_text = request.query.get("paging")
        if not token_text:
            raise business_error("The paging parameter is required.")
        token = self.state.tokens.decode(token_text, coll.name)
        if token.kind == "post":
            if request.method != "POST":
                raise method_not_allowed(request.method)  # GET on a POST query's next page
            body = await read_json(request)
            if body_fingerprint(body) != token.body_hash:
                raise business_error(BODY_MISMATCH)
        else:
            if request.method != "GET":
                raise method_not_allowed(request.method)
            body = _parse_search(token.search)
        compiled = self._compile(coll, body, ctx)
        return self._page(
            coll,
            compiled,
            ctx,
            token.kind,
            token.body_hash,
            token.search,
            token.direction,
            token.anchor,
        )

    def _compile(self, coll: Collection, body: Any, ctx: Ctx) -> CompiledQuery:
        compiled = compile_query(coll.schema, body, self.state.config.api)
        if coll.has_visibility_rule:
            inner = compiled.predicate
            compiled = replace(compiled, predicate=lambda r: coll.visible(r, ctx) and inner(r))
        return compiled

    def _page(
        self,
        coll: Collection,
        compiled: CompiledQuery,
        ctx: Ctx,
        kind: Kind,
        body_hash: str,
        search: str,
        direction: Direction | None,
        anchor: int | None,
    ) -> web.Response:
        page = run_page(coll.table, compiled, direction, anchor)
        items = [encode_record(coll, r, compiled) for r in page.items]

        def url(to: Direction, at: int | None) -> str | None:
            if at is None:
                return None
            token = self.state.tokens.encode(PageToken(coll.name, kind, to, at, body_hash, search))
            root = f"{ctx.origin}/ws{ctx.zone}/atservicesrest/v1.0"
            return f"{root}/{coll.name}/query/next?paging={token}"

        details = {
            "count": len(items),
            "requestCount": compiled.max_records,
            "prevPageUrl": url("before", page.prev_anchor),
            "nextPageUrl": url("after", page.next_anchor),
        }
        # Assembled from per-record encodings: identical to dumping {"items": ..., ...} at once.
        body = b'{"items":[' + b",".join(items) + b'],"pageDetails":' + dumps(details) + b"}"
        return raw_json_response(body)


def encode_record(coll: Collection, record: Record, compiled: CompiledQuery | None = None) -> bytes:
    """A record's JSON, from the table's encoding cache when it is served unchanged."""
    rendered = coll.render(record)
    if rendered is record and (compiled is None or compiled.include_fields is None):
        return coll.table.encoded(record)
    return dumps(project(rendered, compiled) if compiled is not None else rendered)


def _parse_search(search: str) -> Any:
    if not search:
        raise business_error("The search parameter is required for GET queries.")
    try:
        return json.loads(search)
    except ValueError:
        raise ApiError(500, "The search parameter is not valid JSON.") from None


__all__ = ["QueryRoutes", "encode_record"]

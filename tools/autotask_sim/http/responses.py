"""JSON in and out of the HTTP layer, in Autotask's shapes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tools.autotask_sim.apierror import ApiError, business_error
from tools.autotask_sim.jsontypes import encode_json

INVALID_BODY = "The request body is not valid JSON."


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON (tuples stored on records serialise as arrays)."""
    return encode_json(payload)


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    """A response whose JSON was assembled from pre-encoded parts."""
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(payload),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(error: ApiError) -> web.Response:
    """``{"errors": [...]}`` (or an empty body where configured, e.g. some 401s)."""
    if error.empty_body:
        return web.Response(status=error.status, headers=error.headers)
    return json_response({"errors": error.errors}, error.status, error.headers)


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The parsed request body; raises ApiError (500) when it is missing or not JSON."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise business_error("The request body is empty.")
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise business_error(INVALID_BODY) from None


def object_body(body: Any) -> dict[str, Any]:
    """``body`` as a JSON object, or ApiError (500)."""
    if not isinstance(body, dict):
        raise business_error("The request body must be a JSON object.")
    return body


__all__ = [
    "INVALID_BODY",
    "dumps",
    "error_response",
    "json_response",
    "object_body",
    "raw_json_response",
    "read_json",
]

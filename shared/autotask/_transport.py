"""One HTTP exchange with Autotask: headers in, JSON or a translated exception out.

This is the I/O boundary, zone discovery included: aiohttp's exceptions stop here and become the
project's (``raise ... from exc``), error answers go through :mod:`shared.autotask._errors`,
and a 2xx whose body is empty or cut short becomes a retriable AutotaskConnectionError (it is
what a dropped connection looks like from here).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from shared.autotask._errors import CallContext, error_from_response
from shared.autotask._metrics import requests_total
from shared.autotask._models import ZoneInfo
from shared.autotask._tenant import (
    API_VERSION,
    DEFAULT_ZONE_LOOKUP_URL,
    Connection,
    normalize_root,
)
from shared.errors import AutotaskConnectionError, AutotaskServerError, ZoneLookupError
from shared.redaction import Redactor

_JSON = "application/json"
ZONE_ENDPOINT = "zoneInformation"
"""Metric label of zone lookups (they are not thread-limited, so they have no limiter key)."""


class Transport:
    """Sends requests on a shared session with the connection's credentials."""

    def __init__(
        self,
        connection: Connection,
        session: aiohttp.ClientSession,
        *,
        timeout: aiohttp.ClientTimeout,
        redactor: Redactor,
    ) -> None:
        self._connection = connection
        self._session = session
        self._timeout = timeout
        self._redact = redactor
        # Built once: they are sent on every call.
        self._read_headers = connection.headers(write=False)
        self._write_headers = connection.headers(write=True)

    @staticmethod
    def url(root: str, path: str) -> str:
        """``{root}/v1.0/{path}``."""
        return f"{root}/{API_VERSION}/{path}"

    async def send(
        self,
        ctx: CallContext,
        url: str,
        *,
        body: Any = None,
        allow_empty: bool = False,
        expect: str | None = None,
    ) -> dict[str, Any]:
        """Make one request; return the JSON object or raise an AutotaskError.

        ``expect`` names a key a complete answer must have (``items``, ``itemId``...).
        """
        headers = self._read_headers if ctx.action == "read" else self._write_headers
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        status: int | None = None
        try:
            async with self._session.request(
                ctx.method,
                url,
                data=data,
                headers=headers,
                timeout=self._timeout,
                # Never follow: a redirect would carry the Secret header to wherever it points.
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await response.read()
                response_headers = response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self._redact(str(exc)) or "no details"
            raise AutotaskConnectionError(
                f"{ctx.method} {ctx.subject}: the call to {ctx.host} did not complete "
                f"({type(exc).__name__}: {reason}); it is retried",
                status=status,
            ) from exc
        finally:
            requests_total(
                self._connection.name,
                ctx.endpoint,
                ctx.method,
                str(status) if status is not None else "error",
            ).inc()

        if 300 <= status < 400:
            raise AutotaskServerError(
                f"{ctx.method} {ctx.subject}: {ctx.host} answered with a redirect (HTTP "
                f"{status}) that the client does not follow; check the zone URL "
                "(AUTOTASK_SYNC_AUTOTASK_ZONE_URL) or leave it unset to discover it",
                status=status,
                retriable=False,
            )
        if status >= 400:
            raise error_from_response(ctx, status, response_headers, raw, redact=self._redact)
        if not raw.strip():
            if allow_empty:
                return {}
            raise self._truncated(ctx, status, "an empty body")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise self._truncated(ctx, status, "a truncated or malformed JSON body") from exc
        if not isinstance(payload, dict):
            raise self._truncated(ctx, status, "JSON that is not an object")
        errors = payload.get("errors")
        if errors and not any(k in payload for k in ("item", "items", "itemId", "queryCount")):
            # A 2xx carrying only errors (seen with limits that skip their status) is an error.
            raise error_from_response(ctx, status, response_headers, raw, redact=self._redact)
        if expect is not None and expect not in payload:
            raise self._truncated(ctx, status, f"JSON without {expect!r}")
        return payload

    async def lookup_zone(self) -> ZoneInfo:
        """``GET {lookup}/v1.0/zoneInformation?user=...`` without credentials (none are needed)."""
        connection = self._connection
        base = connection.zone_lookup_url
        # quote() by hand: a '+' in the username must reach Autotask as %2B, not as a space.
        url = URL(
            f"{base}/{API_VERSION}/zoneInformation?user={quote(connection.username, safe='')}",
            encoded=True,
        )
        where = f"Autotask's zone lookup at {URL(base).host}"
        status: int | str = "error"
        try:
            async with self._session.get(
                url,
                headers={"Accept": _JSON},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ZoneLookupError(
                f"could not reach {where} ({type(exc).__name__}); check network access to "
                f"{base}, or set AUTOTASK_SYNC_AUTOTASK_ZONE_URL to skip discovery",
                retriable=True,
            ) from exc
        finally:
            requests_total(connection.name, ZONE_ENDPOINT, "GET", str(status)).inc()
        if status == 429 or status > 500:
            raise ZoneLookupError(
                f"{where} answered HTTP {status}; try again later", status=status, retriable=True
            )
        if status == 404:
            raise ZoneLookupError(
                f"{where} has no zoneInformation endpoint (HTTP 404): check "
                "AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL (e.g. "
                f"{DEFAULT_ZONE_LOOKUP_URL})",
                status=status,
            )
        if status != 200:
            # Autotask answers an unknown or blank user with 500 + JSON (django-autotask notes it).
            raise ZoneLookupError(
                f"{where} does not know API user {connection.username!r} (HTTP {status}): "
                "check the username; it is the API-only user's username (e-mail shaped), and "
                "the user must be active",
                status=status,
            )
        try:
            info = ZoneInfo.model_validate(json.loads(body))
        except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
            raise ZoneLookupError(
                f"{where} answered without a usable zone URL (empty, truncated or malformed "
                "body); try again, or set AUTOTASK_SYNC_AUTOTASK_ZONE_URL",
                status=status,
                retriable=True,
            ) from exc
        return info.model_copy(update={"url": normalize_root(info.url)})

    @staticmethod
    def _truncated(ctx: CallContext, status: int, what: str) -> AutotaskConnectionError:
        return AutotaskConnectionError(
            f"{ctx.method} {ctx.subject}: Autotask answered HTTP {status} with {what}; "
            "the response was probably cut off, so the call is retried",
            status=status,
        )


__all__ = ["Transport"]

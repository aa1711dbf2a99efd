"""The front door of every Autotask-facing request: zones, auth, limits and request faults.

Order, per request: outage fault → zone lookup / version (no auth) → zone check (an old zone
answers 401 after a move) → authentication (401) → hourly threshold (429) → thread slot (429 by
default, ``Itgenatr005``) → usage latency and injected latency → random 429 / 500 → the REST
handler → truncated-body fault. Every request is counted per endpoint with its status, whatever
happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from datetime import timedelta

from aiohttp import web

from shared.integers import parse_int
from tools.autotask_sim.access.faults import OUTAGE_TEXT, RANDOM_429_TEXT, RANDOM_500_TEXT
from tools.autotask_sim.access.users import ApiUser
from tools.autotask_sim.apierror import ApiError, business_error
from tools.autotask_sim.http.collections import Ctx
from tools.autotask_sim.http.responses import error_response, json_response
from tools.autotask_sim.http.rest import RestApi
from tools.autotask_sim.http.routing import ApiPath, parse_path, zone_url
from tools.autotask_sim.state import ZONE_NAMES, SimulatorState

UNKNOWN_USER = "Zone information could not be determined for the user: {user}"


class ConnectionReset(Exception):
    """Raised after the socket was reset on purpose; the app turns it into no response."""


class Gateway:
    """Serves ``/atservicesrest/...`` and ``/ws{N}/atservicesrest/...``."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.rest = RestApi(state)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = parse_path(request.path)
        endpoint = self._endpoint(path)
        try:
            response = await self._serve(request, path, endpoint)
        except ApiError as error:
            response = error_response(error)
        except ConnectionReset:
            # The socket is gone; aiohttp drops whatever we return for a closed transport.
            self._record(request, endpoint, 0)
            return web.Response(status=503)
        self._record(request, endpoint, response.status)
        return response

    def _endpoint(self, path: ApiPath) -> str:
        if path.kind == "api":
            return self.rest.endpoint(path.segments)
        return {"zone_lookup": "zoneInformation", "version": "versionInformation"}.get(
            path.kind, "unknown"
        )

    async def _serve(self, request: web.Request, path: ApiPath, endpoint: str) -> web.Response:
        state = self.state
        faults = state.faults
        outage = faults.settings.outage
        in_scope = path.kind != "zone_lookup" or faults.settings.outage_includes_zone_lookup
        if outage and in_scope and faults.applies_to(endpoint):
            if outage == "reset":
                _reset(request)
            raise ApiError(503, OUTAGE_TEXT)
        if path.kind == "unknown":
            raise ApiError(404, "No HTTP resource was found that matches the request URI.")
        if path.kind == "zone_lookup":
            return self._zone_lookup(request)
        if path.kind == "version":
            return json_response({"apiVersions": ["1.0"]})
        if path.zone != state.zone:
            # The tenant does not live here (never did, or moved away): credentials fail.
            raise state.users.unauthorized("The user is not found in this zone.")
        user = self._authenticate(request)
        ctx = Ctx(user, self._person(request, user), _origin(request), state.zone)
        state.limits.count_request()
        key = (user.integration_code, endpoint)
        state.limits.acquire(key, self.rest.method_name(path.segments, request.method))
        try:
            return await self._admitted(request, path, endpoint, ctx)
        finally:
            state.limits.release(key)

    async def _admitted(
        self, request: web.Request, path: ApiPath, endpoint: str, ctx: Ctx
    ) -> web.Response:
        state = self.state
        faults = state.faults
        targeted = faults.applies_to(endpoint)
        delay = state.limits.usage_delay()
        if targeted:
            delay += faults.latency()
        if delay > timedelta(0):
            await asyncio.sleep(delay.total_seconds())
        if targeted and faults.roll(faults.settings.rate_429):
            raise ApiError(429, RANDOM_429_TEXT, headers=state.limits.retry_after_headers())
        if targeted and faults.roll(faults.settings.rate_500):
            raise ApiError(500, RANDOM_500_TEXT)
        response = await self.rest.dispatch(request, path.segments, ctx)
        if targeted and response.status < 300 and faults.roll(faults.settings.rate_truncated):
            body = response.body
            if isinstance(body, bytes | bytearray) and body:
                cut = bytes(body[: len(body) // 2])
                return web.Response(
                    body=cut, status=response.status, content_type="application/json"
                )
        return response

    def _zone_lookup(self, request: web.Request) -> web.Response:
        name = request.query.get("user", "")
        if not name.strip() or self.state.users.find(name) is None:
            raise business_error(UNKNOWN_USER.format(user=name))
        zone = self.state.zone
        url = zone_url(_origin(request), zone, self.state.config.api.zone_url_trailing_slash)
        return json_response(
            {
                "zoneName": ZONE_NAMES.get(zone, f"Zone {zone}"),
                "url": url,
                "webUrl": f"{_origin(request)}/ww{zone}/",
                "ci": zone,
            }
        )

    def _authenticate(self, request: web.Request) -> ApiUser:
        """The caller, counted as a login or a failed login (what a lockout counts)."""
        stats = self.state.requests
        name = request.headers.get("UserName", "").strip().lower()
        try:
            user = self.state.users.authenticate(request.headers)
        except ApiError:
            stats.failed_logins[name] += 1
            raise
        stats.logins[name] += 1
        return user

    def _person(self, request: web.Request, user: ApiUser) -> int:
        """Who a write is attributed to: ImpersonationResourceId on writes, else the API user."""
        raw = request.headers.get("ImpersonationResourceId")
        if raw is None or request.method == "GET":
            return user.resource_id
        resource = parse_int(raw, minimum=0)
        resources = self.state.tenant.require("Resources")
        record = resources.get(resource) if resource is not None else None
        if resource is None or record is None or not record.get("isActive"):
            raise business_error(f"ImpersonationResourceId {raw} is not a valid, active resource.")
        return resource

    def _record(self, request: web.Request, endpoint: str, status: int) -> None:
        stats = self.state.requests
        stats.by_endpoint[endpoint] += 1
        stats.by_status[status] += 1
        stats.by_endpoint_status[(endpoint, status)] += 1
        stats.recent.append(
            {"method": request.method, "path": request.path, "endpoint": endpoint, "status": status}
        )


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), like a failing load balancer."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise ConnectionReset


__all__ = ["ConnectionReset", "Gateway"]

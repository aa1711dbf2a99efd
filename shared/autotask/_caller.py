"""The call pipeline behind every client method: retry( zone -> guard -> limiter -> transport ).

Each attempt re-reads the zone (a 401 may have moved it), passes the lockout guard (no call
while the connection is paused after rejected credentials), waits in the limiter (pauses,
budget, an endpoint slot held only while the request is on the wire) and sends. Failures are
decided here: a 401 triggers one zone re-discovery and, if the zone did not move, pauses the
connection (every process bound to the same coordinator); a 429 / thread limit pauses the
endpoint or connection, other retriable errors back off, and a create that may have reached
Autotask is never repeated.
"""

from __future__ import annotations

import random
import time
from functools import lru_cache
from typing import Any

import aiohttp
from yarl import URL

from shared.autotask._budget import BudgetTracker
from shared.autotask._clock import Clock
from shared.autotask._config import ClientConfig
from shared.autotask._coordination import Coordination, Coordinator, LocalCoordinator
from shared.autotask._errors import Action, CallContext
from shared.autotask._guard import AuthGuard
from shared.autotask._limiter import Limiter, Priority
from shared.autotask._metrics import request_seconds
from shared.autotask._models import ZoneInfo
from shared.autotask._retry import Decision, RetryPolicy, retry_reason, retrying
from shared.autotask._targets import Target, endpoint_of, label_of
from shared.autotask._tenant import API_VERSION, Connection, ZoneResolver
from shared.autotask._transport import Transport
from shared.errors import (
    AuthenticationError,
    AuthenticationPausedError,
    AutotaskConnectionError,
    AutotaskError,
    AutotaskServerError,
    RateLimitError,
    ZoneLookupError,
)
from shared.redaction import Redactor, register_secret


class Caller:
    """Owns the session, zone resolver, guard, limiter and budget of one connection."""

    def __init__(
        self,
        connection: Connection,
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None,
        clock: Clock,
        rng: random.Random,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self.clock = clock
        self._rng = rng
        self._session = session
        self._owns_session = session is None
        self._transport: Transport | None = None
        self._redactor = Redactor(connection.secret_values())
        for value in connection.secret_values():
            register_secret(value)  # log lines of every component stay clean too
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self.coordination: Coordination = self.coordinator.bind(connection.name, clock=clock)
        self.budget = BudgetTracker(
            connection.name, config.limiter.budget, clock, store=self.coordination.budget
        )
        self.limiter = Limiter(
            connection.name,
            config.limiter,
            clock=clock,
            budget=self.budget,
            slots=self.coordination.slots,
        )
        self.guard = AuthGuard(connection.name, self.coordination.lockout, clock)
        self.zone = ZoneResolver(
            connection, self._lookup_zone, clock=clock, ttl=config.zone_cache.total_seconds()
        )

    def transport(self) -> Transport:
        """The transport, creating the client's own session on first use (needs a loop)."""
        if self._transport is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self.config.max_connections)
                )
            self._transport = Transport(
                self.connection,
                self._session,
                timeout=aiohttp.ClientTimeout(
                    total=self.config.request_timeout.total_seconds(),
                    connect=self.config.connect_timeout.total_seconds(),
                ),
                redactor=self._redactor,
            )
        return self._transport

    async def close(self) -> None:
        """Close the session if we created it; a borrowed session belongs to its owner."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def _lookup_zone(self) -> ZoneInfo:
        return await self.transport().lookup_zone()

    async def rest_root(self) -> str:
        """The zone's REST root, discovered (with retries) if needed."""

        async def attempt(_deadline: float) -> str:
            return await self.zone.root()

        return await retrying(
            attempt,
            decide=_plain_decision,
            policy=self.config.retry,
            clock=self.clock,
            rng=self._rng,
            connection=self.connection.name,
            what="GET zoneInformation",
        )

    async def call(
        self,
        method: str,
        target: Target,
        path: str,
        *,
        action: Action,
        priority: Priority | None,
        body: Any = None,
        item_id: int | None = None,
        expect: str | None = None,
        allow_empty: bool = False,
        budgeted: bool = True,
        policy: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """One logical call (retries included); ``path`` is relative to ``/v1.0/``."""
        transport = self.transport()
        endpoint = endpoint_of(target)
        resource = label_of(target)
        prio = self.config.default_priority if priority is None else priority
        started = time.perf_counter()
        used_root = ""
        rediscovered = False

        async def attempt(deadline: float) -> dict[str, Any]:
            nonlocal used_root
            async with self.guard.turn():  # a paused connection does not even look its zone up
                used_root = await self.zone.root()
                host = _host_of(used_root)
                ctx = CallContext(
                    method, endpoint, action, host, self.connection.username, item_id, resource
                )
                async with self.limiter.slot(endpoint, prio, deadline, budgeted=budgeted):
                    try:
                        data = await transport.send(
                            ctx,
                            Transport.url(used_root, path),
                            body=body,
                            allow_empty=allow_empty,
                            expect=expect,
                        )
                    except AutotaskError as exc:
                        if exc.status is not None and exc.status != 401:
                            await self.guard.answered(authenticated=True)
                        raise
                    await self.guard.answered(authenticated=True)
                    return data

        async def decide(exc: AutotaskError) -> Decision | None:
            nonlocal rediscovered
            if isinstance(exc, AuthenticationPausedError):
                return None  # nothing was sent; the pause is the connection's, not this call's
            if isinstance(exc, AuthenticationError):
                # A zone move answers 401 on the old root: look the zone up once, retry once.
                if not rediscovered and self.zone.discovered:
                    rediscovered = True
                    if await self.zone.rediscover(used_root):
                        return Decision("auth_zone", backoff=False)
                host = _host_of(used_root) if used_root else "Autotask"
                await self.guard.rejected(
                    reason=f"HTTP 401 from {host} for API user {self.connection.username!r}"
                )
                return None
            if isinstance(exc, RateLimitError):
                self.limiter.back_off(endpoint, exc)  # the next attempt waits in the limiter
                return Decision(retry_reason(exc) or "rate_limit", backoff=False)
            if action == "create" and not _never_sent(exc):
                return None  # a create that may have happened must not be repeated
            return await _plain_decision(exc)

        try:
            return await retrying(
                attempt,
                decide=decide,
                policy=policy or self.config.retry,
                clock=self.clock,
                rng=self._rng,
                connection=self.connection.name,
                what=f"{method} {resource}",
            )
        finally:
            request_seconds(self.connection.name, endpoint, method).observe(
                time.perf_counter() - started
            )


def next_path(next_url: str) -> str:
    """The part of an absolute ``nextPageUrl`` after ``/v1.0/``.

    Each page is re-based on our own root: credentials then never go to a host we did not
    discover, and a walk survives a zone re-discovery half-way.
    """
    marker = f"/{API_VERSION}/"
    index = next_url.lower().find(marker)
    if index < 0:
        raise AutotaskServerError(
            "Autotask returned a nextPageUrl the client cannot follow", retriable=False
        )
    return next_url[index + len(marker) :]


async def _plain_decision(exc: AutotaskError) -> Decision | None:
    reason = retry_reason(exc)
    return Decision(reason) if reason else None


@lru_cache(maxsize=64)
def _host_of(root: str) -> str:
    return URL(root).host or root


def _never_sent(exc: AutotaskError) -> bool:
    """True when the request surely did not reach Autotask (safe to repeat a create)."""
    if isinstance(exc, ZoneLookupError | RateLimitError):
        return True
    return isinstance(exc, AutotaskConnectionError) and isinstance(
        exc.__cause__, aiohttp.ClientConnectorError
    )


__all__ = ["Caller", "next_path"]

"""The public face of the simulator: :class:`Simulator` and :func:`run_simulator`.

    async with run_simulator(SimulatorConfig(seed=7, tickets=200)) as sim:
        sim.base_url, sim.zone_lookup_url, sim.zone_url, sim.rest_url
        sim.username, sim.secret, sim.integration_code, sim.api_user_resource_id
        sim.state                         # the truth, for tests
        sim.set_faults(rate_500=0.2, latency=timedelta(milliseconds=50))  # admin API controls

A real aiohttp server on ``config.host`` (a free port by default). Start-up generates the tenant
in a worker thread, starts callout delivery, then listens; shutdown stops the change generator,
cancels pending callouts, and closes the server, each step idempotent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any, Unpack

from aiohttp import web

from tools.autotask_sim.access.users import ApiUser
from tools.autotask_sim.config import (
    ApiBehaviour,
    ApiChanges,
    FaultChanges,
    FaultConfig,
    LimitsChanges,
    LimitsConfig,
    SecurityLevel,
    SimulatorConfig,
)
from tools.autotask_sim.http.app import build_app
from tools.autotask_sim.http.routing import rest_root, zone_url
from tools.autotask_sim.jsontypes import JsonObject, Record, encode_json
from tools.autotask_sim.state import SimulatorState


class Simulator:
    """One simulated Autotask tenant served over HTTP."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._state: SimulatorState | None = None
        self._runner: web.AppRunner | None = None
        self._urls: dict[str, str] = {}
        self.port = self.config.port

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        state = await asyncio.to_thread(SimulatorState, self.config)
        self._state = state
        await state.dispatcher.start()
        app = build_app(state, self._urls)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        self._urls.update(baseUrl=self.base_url, zoneLookupUrl=self.zone_lookup_url)
        if self.config.changes.rate > 0:
            state.changes.start(self.config.changes.rate)

    async def stop(self) -> None:
        state, self._state = self._state, None
        runner, self._runner = self._runner, None
        if state is not None:
            await state.changes.stop()
            await state.dispatcher.stop()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----------------------------------------------------------------- URLs

    @property
    def state(self) -> SimulatorState:
        if self._state is None:
            raise RuntimeError("the simulator is not running")
        return self._state

    @property
    def base_url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - display address for a wildcard bind
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def zone_lookup_url(self) -> str:
        return f"{self.base_url}/atservicesrest"

    @property
    def zone_url(self) -> str:
        """The current zone's REST root exactly as zoneInformation's ``url`` returns it
        (with the trailing slash the real API sends, unless configured otherwise)."""
        trailing_slash = self.state.config.api.zone_url_trailing_slash
        return zone_url(self.base_url, self.state.zone, trailing_slash)

    @property
    def rest_url(self) -> str:
        """The current zone's REST root without a trailing slash: join ``/v1.0/...`` onto it.

        The same root a client has after normalising ``zone_url``.
        """
        return rest_root(self.base_url, self.state.zone)

    @property
    def api_user(self) -> ApiUser:
        return self.state.api_user

    @property
    def username(self) -> str:
        return self.state.api_user.username

    @property
    def secret(self) -> str:
        return self.state.api_user.secret

    @property
    def integration_code(self) -> str:
        return self.state.api_user.integration_code

    @property
    def api_user_resource_id(self) -> int:
        return self.state.api_user.resource_id

    def auth_headers(self) -> dict[str, str]:
        """The three Autotask auth headers for the seeded API user."""
        return {
            "ApiIntegrationCode": self.integration_code,
            "UserName": self.username,
            "Secret": self.secret,
            "Content-Type": "application/json",
        }

    # ------------------------------------------------------------- controls

    def set_faults(self, **changes: Unpack[FaultChanges]) -> FaultConfig:
        """Merge fault settings (see :class:`FaultConfig`); returns the new settings.

        ``sim.set_faults(latency=timedelta(milliseconds=20), rate_500=0.1)``
        """
        return self.state.set_faults(**changes)

    def clear_faults(self) -> None:
        """Back to no faults at all."""
        self.state.clear_faults()

    def set_limits(self, **changes: Unpack[LimitsChanges]) -> LimitsConfig:
        """Merge limit settings (see :class:`LimitsConfig`); returns the new settings.

        ``sim.set_limits(hourly_limit=100, retry_after=timedelta(seconds=30))``
        """
        return self.state.set_limits(**changes)

    def add_usage(self, calls: int) -> int:
        """Count ``calls`` by the tenant's other integrations in the hourly window, now;
        returns the usage (what ``ThresholdInformation`` reports)."""
        return self.state.limits.add_usage(calls)

    def set_api(self, **changes: Unpack[ApiChanges]) -> ApiBehaviour:
        """Merge API behaviour settings (see :class:`ApiBehaviour`); returns the new settings.

        ``sim.set_api(collection_patch="html_404")`` behaves like zone DE1's PATCH.
        """
        return self.state.set_api(**changes)

    def set_security(self, level: SecurityLevel, username: str | None = None) -> None:
        self.state.set_security(level, username)

    def move_zone(self, zone: int) -> None:
        """Simulate a data-centre move: old zone path → 401, zoneInformation → new url."""
        self.state.move_zone(zone)

    def unlock(self, username: str | None = None) -> None:
        self.state.unlock(username)

    def reset_counters(self) -> None:
        self.state.reset_counters()

    def add_api_user(
        self, username: str, secret: str, integration_code: str, **kwargs: Any
    ) -> ApiUser:
        return self.state.add_api_user(username, secret, integration_code, **kwargs)

    # UI-side changes: attributed to a human resource, so they fire callouts like real edits.

    def _person(self, person_id: int | None) -> int:
        if person_id is not None:
            return person_id
        return next(i for i in self.state.tenant.require("Resources").ids() if i != 4)

    def create_entity(
        self, entity: str, fields: Mapping[str, Any], person_id: int | None = None
    ) -> Record:
        """Create as a UI user (fires callouts); returns the record as GET would."""
        record = self.state.tenant.create(entity, fields, self._person(person_id))
        return _api_shape(record)

    def update_entity(
        self, entity: str, record_id: int, fields: Mapping[str, Any], person_id: int | None = None
    ) -> Record:
        """Update as a UI user (fires callouts for subscribed changes)."""
        record = self.state.tenant.update(
            entity, fields, self._person(person_id), record_id=record_id
        )
        return _api_shape(record)

    def delete_entity(self, entity: str, record_id: int, person_id: int | None = None) -> Record:
        """Delete as a UI user; returns the deleted record."""
        return _api_shape(self.state.tenant.delete(entity, record_id, self._person(person_id)))

    def apply_changes(self, count: int, seed: int | None = None) -> list[JsonObject]:
        """Apply ``count`` generated changes now (reseeding first if ``seed`` is given)."""
        if seed is not None:
            self.state.changes.reseed(seed)
        return self.state.changes.apply(count)

    def start_changes(
        self,
        rate: float,
        *,
        count: int | None = None,
        duration: timedelta | None = None,
        seed: int | None = None,
    ) -> None:
        """Generate changes in the background at ``rate`` changes per second."""
        if seed is not None:
            self.state.changes.reseed(seed)
        self.state.changes.start(rate, count=count, duration=duration)

    async def stop_changes(self) -> None:
        await self.state.changes.stop()

    async def wait_for_callouts(self, max_wait: timedelta = timedelta(seconds=10)) -> bool:
        """Wait until no callout is queued, in flight or waiting to retry (False: gave up)."""
        return await self.state.dispatcher.wait_idle(max_wait)


def _api_shape(record: Record) -> Record:
    """An independent copy shaped like parsed API JSON (UDF tuples become lists)."""
    parsed: Record = json.loads(encode_json(record))
    return parsed


@asynccontextmanager
async def run_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """Start a simulator for the duration of the ``async with`` block."""
    sim = Simulator(config)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


__all__ = ["Simulator", "run_simulator"]

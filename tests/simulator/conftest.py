"""Fixtures for the simulator suite: a running simulator, a plain aiohttp client, a receiver.

Everything goes over real HTTP on loopback. ``Api`` is a deliberately thin helper (URL joining,
auth headers, JSON decoding) so the tests read like the requests they make and stay independent
of the project's own Autotask client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tools.autotask_sim import CalloutConfig, Simulator, SimulatorConfig, run_simulator

CATCH_ALL = [{"op": "gte", "field": "id", "value": 0}]
WEBHOOK_SECRET = "s3cret-key-0123"


def fast_config(**overrides: Any) -> SimulatorConfig:
    """A small tenant with callout timings in milliseconds (real attempt counts)."""
    base: dict[str, Any] = {
        "seed": 7,
        "companies": 20,
        "contacts": 40,
        "configuration_items": 30,
        "tickets": 120,
        "ticket_notes": 150,
        "callouts": CalloutConfig(timeout_s=2.0, retry_delay_s=0.01),
    }
    base.update(overrides)
    return SimulatorConfig(**base)


@dataclass
class Reply:
    """A decoded HTTP answer."""

    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes


class Api:
    """Plain aiohttp calls against the simulator's current zone."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        return f"{self.sim.rest_url.rstrip('/')}/v1.0/{path.lstrip('/')}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {**self.sim.auth_headers(), **extra}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        async with self.session.request(
            method,
            self.url(path),
            data=data,
            headers=self.headers() if headers is None else headers,
            params=params,
        ) as response:
            raw = await response.read()
            try:
                decoded = json.loads(raw) if raw else None
            except ValueError:
                decoded = None
            return Reply(response.status, decoded, dict(response.headers), raw)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PATCH", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)

    async def query(self, entity: str, flt: list[Any], **extra: Any) -> Reply:
        return await self.post(f"{entity}/query", {"filter": flt, **extra})

    async def ids(self, entity: str, flt: list[Any]) -> list[int]:
        reply = await self.query(entity, flt)
        assert reply.status == 200, reply.body
        return [item["id"] for item in reply.body["items"]]

    async def admin(self, method: str, path: str, body: Any = None) -> Reply:
        return await self.call(
            method, f"{self.sim.base_url}/_sim/{path.lstrip('/')}", body, headers={}
        )


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(fast_config()) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def api(sim: Simulator, session: aiohttp.ClientSession) -> Api:
    return Api(sim, session)


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server standing in for a webhook endpoint."""

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    status_for: Callable[[Received], int] = lambda _r: 200
    delay_for: Callable[[Received], float] = lambda _r: 0.0

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def at(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/{name}"]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], max_wait: float = 5.0
    ) -> None:
        """Poll until ``predicate(requests)`` holds; fail the test at the deadline."""
        deadline = asyncio.get_running_loop().time() + max_wait
        while not predicate(self.requests):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"receiver condition not met; got {len(self.requests)}")
            await asyncio.sleep(0.005)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def handle(request: web.Request) -> web.Response:
        item = Received(request.path, dict(request.headers), await request.read())
        state.requests.append(item)
        delay = state.delay_for(item)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=state.status_for(item))

    app = web.Application()
    app.router.add_route("POST", "/{name:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def poll(check: Callable[[], bool | Awaitable[bool]], max_wait: float = 5.0) -> None:
    """Wait until ``check()`` is true (sync or async), failing at the deadline."""
    deadline = asyncio.get_running_loop().time() + max_wait
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


CHILD_ENTITY = {
    "TicketWebhooks": "TicketWebhook",
    "CompanyWebhooks": "CompanyWebhook",
    "ContactWebhooks": "ContactWebhook",
    "ConfigurationItemWebhooks": "ConfigurationItemWebhook",
    "TicketNoteWebhooks": "TicketNoteWebhook",
}


async def field_ids(api: Api, root: str, *, udf: bool = False) -> dict[str, int]:
    """REST field name → webhook field id, read the way clients must (picklist of fieldID)."""
    child = f"{CHILD_ENTITY[root]}{'UdfFields' if udf else 'Fields'}"
    reply = await api.get(f"{child}/entityInformation/fields")
    assert reply.status == 200, reply.body
    key = "udfFieldID" if udf else "fieldID"
    [picklist] = [f["picklistValues"] for f in reply.body["fields"] if f["name"] == key]
    return {p["label"]: int(p["value"]) for p in picklist}


async def make_webhook(
    api: Api,
    root: str,
    url: str,
    *,
    subscribed: tuple[str, ...] = (),
    display: tuple[str, ...] = (),
    subscribed_udfs: tuple[str, ...] = (),
    excluded: tuple[int, ...] = (),
    secret: str | None = WEBHOOK_SECRET,
    deactivation_url: str | None = None,
    events: tuple[str, ...] = ("Create", "Update", "Delete"),
    **extra: Any,
) -> int:
    """Create an active webhook with fields and exclusions over the REST API; returns its id."""
    body: dict[str, Any] = {
        "Name": f"sim test {url[-20:]}",
        "WebhookUrl": url,
        "DeactivationUrl": deactivation_url or url + "-deactivated",
        "IsActive": True,
        **{f"IsSubscribedTo{e}Events": True for e in events},
        **extra,
    }
    if secret is not None:
        body["SecretKey"] = secret
    created = await api.post(root, body)
    assert created.status == 200, created.body
    webhook_id = int(created.body["itemId"])
    ids = await field_ids(api, root)
    for name in dict.fromkeys((*subscribed, *display)):
        field_body = {
            "FieldID": ids[name],
            "IsSubscribedField": name in subscribed,
            "IsDisplayAlwaysField": name in display,
        }
        reply = await api.post(f"{root}/{webhook_id}/Fields", field_body)
        assert reply.status == 200, reply.body
    if subscribed_udfs:
        udf_ids = await field_ids(api, root, udf=True)
        for name in subscribed_udfs:
            udf_body = {"UdfFieldID": udf_ids[name], "IsSubscribedField": True}
            assert (await api.post(f"{root}/{webhook_id}/UdfFields", udf_body)).status == 200
    for resource in excluded:
        reply = await api.post(f"{root}/{webhook_id}/ExcludedResources", {"ResourceID": resource})
        assert reply.status == 200, reply.body
    return webhook_id

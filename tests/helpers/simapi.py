"""Plain-HTTP helpers for talking to the simulator the way a client would, without the project's
client: ``Api`` (URL joining, auth headers, JSON decoding), webhook set-up.

Tests read like the requests they make and stay independent of ``shared.autotask``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp

from tools.autotask_sim import CalloutConfig, Simulator, SimulatorConfig

CATCH_ALL = [{"op": "gte", "field": "id", "value": 0}]
WEBHOOK_SECRET = "s3cret-key-0123"


def fast_callouts(**overrides: Any) -> CalloutConfig:
    """Callout settings with timings in milliseconds (real attempt counts) plus ``overrides``."""
    timings: dict[str, Any] = {
        "timeout": timedelta(seconds=2),
        "retry_delay": timedelta(milliseconds=10),
    }
    return CalloutConfig(**(timings | overrides))


def fast_config(**overrides: Any) -> SimulatorConfig:
    """A small tenant with callout timings in milliseconds (real attempt counts)."""
    base: dict[str, Any] = {
        "seed": 7,
        "companies": 20,
        "contacts": 40,
        "configuration_items": 30,
        "tickets": 120,
        "ticket_notes": 150,
        "callouts": fast_callouts(),
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
    secret: str = WEBHOOK_SECRET,
    deactivation_url: str | None = None,
    events: tuple[str, ...] = ("Create", "Update", "Delete"),
    **extra: Any,
) -> int:
    """Create an active webhook with fields and exclusions over the REST API; returns its id.

    Bodies carry every field live metadata marks required, as a careful client sends them.
    """
    body: dict[str, Any] = {
        "Name": f"sim test {url[-20:]}",
        "WebhookUrl": url,
        "DeactivationUrl": deactivation_url or url + "-deactivated",
        "SecretKey": secret,
        "IsActive": True,
        "SendThresholdExceededNotification": False,
        **{f"IsSubscribedTo{e}Events": True for e in events},
        **extra,
    }
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
            udf_body = {
                "UdfFieldID": udf_ids[name],
                "IsSubscribedField": True,
                "IsDisplayAlwaysField": False,
            }
            assert (await api.post(f"{root}/{webhook_id}/UdfFields", udf_body)).status == 200
    for resource in excluded:
        reply = await api.post(f"{root}/{webhook_id}/ExcludedResources", {"ResourceID": resource})
        assert reply.status == 200, reply.body
    return webhook_id

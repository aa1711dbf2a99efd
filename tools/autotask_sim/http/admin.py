"""The admin API under ``/_sim``: the truth and the controls, without Autotask auth.

GET    /_sim/state                       summary: zone, URLs, credentials, counts, settings
GET    /_sim/entities/{Entity}           records (``?after=<id>&limit=<n>``)
GET    /_sim/entities/{Entity}/{id}      one record
POST   /_sim/entities/{Entity}           create as a UI user (``?personId=``), fires callouts
PATCH  /_sim/entities/{Entity}/{id}      update as a UI user
DELETE /_sim/entities/{Entity}/{id}      delete as a UI user
GET    /_sim/webhooks                    webhooks with fields, UDF fields, exclusions
GET    /_sim/error-log                   WebhookEventErrorLogs rows, with root and webhookId
GET    /_sim/requests                    counts per endpoint/status, peak concurrency, logins
POST   /_sim/requests/reset              clear counters and the hourly window
POST   /_sim/usage                       ``{"calls": n}``: other integrations' calls, counted now
GET    /_sim/callouts                    delivery log (``?limit=``) and counters
POST   /_sim/callouts/wait               ``{"timeout": seconds}`` → {"idle": bool}
GET    /_sim/faults · PATCH /_sim/faults · DELETE /_sim/faults
GET    /_sim/limits · PATCH /_sim/limits
GET    /_sim/api · PATCH /_sim/api       API behaviour (``{"collection_patch": "html_404"}``)
PUT    /_sim/security                    replace the API user's security level
POST   /_sim/unlock                      clear a locked API user
POST   /_sim/zone                        ``{"zone": 15}``: move the tenant
GET    /_sim/changes                     generator status and its log (``?limit=``)
POST   /_sim/changes/apply               ``{"count": n, "seed"?: s}`` → applied changes
POST   /_sim/changes/start               ``{"rate": r, "count"?, "duration"?, "seed"?}``
POST   /_sim/changes/stop

Durations are numbers of seconds here, in both directions (``PATCH /_sim/faults {"latency":
0.1}``); unit strings such as ``"250ms"`` are accepted too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from tools.autotask_sim.apierror import ApiError
from tools.autotask_sim.config import SecurityLevel
from tools.autotask_sim.http.responses import error_response, json_response, object_body, read_json
from tools.autotask_sim.state import SimulatorState

STATE_KEY = web.AppKey("autotask_sim_state", SimulatorState)
URLS_KEY = web.AppKey("autotask_sim_urls", dict[str, str])

routes = web.RouteTableDef()


def _state(request: web.Request) -> SimulatorState:
    return request.app[STATE_KEY]


def _bad_request(message: str) -> web.Response:
    return json_response({"errors": [message]}, 400)


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Admin-side errors as JSON: validation problems are 400, API errors keep their status."""
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as error:
        return error_response(error)
    except ValidationError as error:
        return _bad_request(str(error))
    except (KeyError, ValueError, TypeError) as error:
        return _bad_request(f"{type(error).__name__}: {error}")
    return response


@routes.get("/state")
async def get_state(request: web.Request) -> web.Response:
    state = _state(request)
    user = state.api_user
    urls: dict[str, str] = request.app[URLS_KEY]
    return json_response(
        {
            **urls,
            "zone": state.zone,
            "username": user.username,
            "secret": user.secret,
            "integrationCode": user.integration_code,
            "apiUserResourceId": user.resource_id,
            "entities": {name: len(t) for name, t in state.tenant.tables.items()},
            "webhooks": len(state.webhook_list()),
            "errorLog": len(state.webhooks.error_log),
            "hourlyUsage": state.limits.usage(),
            "callouts": state.dispatcher.counters,
            "changes": state.changes.status(),
            "config": state.config.model_dump(mode="json"),
        }
    )


@routes.get("/entities/{entity}")
async def list_entities(request: web.Request) -> web.Response:
    table = _state(request).tenant.require(request.match_info["entity"])
    after = int(request.query.get("after", "-1"))
    limit = int(request.query.get("limit", "1000"))
    items = []
    for record_id in table.ids_after(after):
        items.append(table.get(record_id))
        if len(items) >= limit:
            break
    return json_response({"items": items, "total": len(table)})


@routes.get("/entities/{entity}/{id}")
async def get_entity(request: web.Request) -> web.Response:
    table = _state(request).tenant.require(request.match_info["entity"])
    record = table.get(int(request.match_info["id"]))
    if record is None:
        return json_response({"errors": ["not found"]}, 404)
    return json_response({"item": record})


def _person(request: web.Request) -> int:
    state = _state(request)
    default = next(i for i in state.tenant.require("Resources").ids() if i != 4)
    return int(request.query.get("personId", default))


@routes.post("/entities/{entity}")
async def create_entity(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    record = _state(request).tenant.create(request.match_info["entity"], body, _person(request))
    return json_response({"item": record})


@routes.patch("/entities/{entity}/{id}")
async def update_entity(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    record = _state(request).tenant.update(
        request.match_info["entity"],
        body,
        _person(request),
        record_id=int(request.match_info["id"]),
    )
    return json_response({"item": record})


@routes.delete("/entities/{entity}/{id}")
async def delete_entity(request: web.Request) -> web.Response:
    record_id = int(request.match_info["id"])
    _state(request).tenant.delete(request.match_info["entity"], record_id, _person(request))
    return json_response({"itemId": record_id})


@routes.get("/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    return json_response({"items": _state(request).webhook_list(request.query.get("root"))})


@routes.get("/error-log")
async def error_log(request: web.Request) -> web.Response:
    return json_response({"items": _state(request).error_log()})


@routes.get("/requests")
async def requests_stats(request: web.Request) -> web.Response:
    state = _state(request)
    return json_response({**state.requests.to_json(), "hourlyUsage": state.limits.usage()})


@routes.post("/requests/reset")
async def reset_requests(request: web.Request) -> web.Response:
    _state(request).reset_counters()
    return json_response({"ok": True})


@routes.post("/usage")
async def add_usage(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    calls = body.get("calls")
    if not isinstance(calls, int) or isinstance(calls, bool):
        raise ValueError(f"'calls' must be a whole number, not {calls!r}")
    return json_response({"hourlyUsage": _state(request).limits.add_usage(calls)})


@routes.get("/callouts")
async def callouts(request: web.Request) -> web.Response:
    state = _state(request)
    limit = int(request.query.get("limit", "1000"))
    log = state.callout_log
    return json_response({"items": log[-limit:], "counters": state.dispatcher.counters})


@routes.post("/callouts/wait")
async def wait_callouts(request: web.Request) -> web.Response:
    body = await read_json(request, required=False) or {}
    max_wait = timedelta(seconds=float(body.get("timeout", 10)))
    idle = await _state(request).dispatcher.wait_idle(max_wait)
    return json_response({"idle": idle})


@routes.get("/faults")
async def get_faults(request: web.Request) -> web.Response:
    return json_response(_state(request).config.faults.model_dump(mode="json"))


@routes.patch("/faults")
async def patch_faults(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    return json_response(_state(request).set_faults(**body).model_dump(mode="json"))


@routes.delete("/faults")
async def clear_faults(request: web.Request) -> web.Response:
    _state(request).clear_faults()
    return json_response(_state(request).config.faults.model_dump(mode="json"))


@routes.get("/limits")
async def get_limits(request: web.Request) -> web.Response:
    return json_response(_state(request).config.limits.model_dump(mode="json"))


@routes.patch("/limits")
async def patch_limits(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    return json_response(_state(request).set_limits(**body).model_dump(mode="json"))


@routes.get("/api")
async def get_api(request: web.Request) -> web.Response:
    return json_response(_state(request).config.api.model_dump(mode="json"))


@routes.patch("/api")
async def patch_api(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    return json_response(_state(request).set_api(**body).model_dump(mode="json"))


@routes.put("/security")
async def put_security(request: web.Request) -> web.Response:
    state = _state(request)
    body = object_body(await read_json(request))
    username = body.pop("username", None)
    state.set_security(SecurityLevel.model_validate(body), username)
    return json_response(state.config.security.model_dump(mode="json"))


@routes.post("/unlock")
async def unlock(request: web.Request) -> web.Response:
    body = await read_json(request, required=False) or {}
    _state(request).unlock(body.get("username"))
    return json_response({"ok": True})


@routes.post("/zone")
async def move_zone(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    zone = int(body["zone"])
    _state(request).move_zone(zone)
    return json_response({"zone": zone})


@routes.get("/changes")
async def change_status(request: web.Request) -> web.Response:
    changes = _state(request).changes
    limit = int(request.query.get("limit", "100"))
    return json_response({**changes.status(), "items": changes.applied[-limit:]})


@routes.post("/changes/apply")
async def apply_changes(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    changes = _state(request).changes
    if "seed" in body:
        changes.reseed(int(body["seed"]))
    return json_response({"items": changes.apply(int(body.get("count", 1)))})


@routes.post("/changes/start")
async def start_changes(request: web.Request) -> web.Response:
    body = object_body(await read_json(request))
    changes = _state(request).changes
    if "seed" in body:
        changes.reseed(int(body["seed"]))
    count = body.get("count")
    duration = body.get("duration")
    changes.start(
        float(body["rate"]),
        count=None if count is None else int(count),
        duration=None if duration is None else timedelta(seconds=float(duration)),
    )
    return json_response(changes.status())


@routes.post("/changes/stop")
async def stop_changes(request: web.Request) -> web.Response:
    changes = _state(request).changes
    await changes.stop()
    return json_response(changes.status())


def build_admin_app(state: SimulatorState, urls: dict[str, str]) -> web.Application:
    """The admin sub-application, mounted at ``/_sim``."""
    app = web.Application(middlewares=[admin_errors])
    app[STATE_KEY] = state
    app[URLS_KEY] = urls
    app.add_routes(routes)
    return app


__all__ = ["STATE_KEY", "URLS_KEY", "admin_errors", "build_admin_app", "routes"]

"""The aiohttp application: the admin sub-app at ``/_sim`` and the Autotask surface elsewhere."""

from __future__ import annotations

from aiohttp import web

from tools.autotask_sim.http.admin import build_admin_app
from tools.autotask_sim.http.gateway import Gateway
from tools.autotask_sim.state import SimulatorState

GATEWAY_KEY = web.AppKey("autotask_sim_gateway", Gateway)


def build_app(state: SimulatorState, urls: dict[str, str]) -> web.Application:
    """Wire the parts together; ``urls`` are the public URLs shown by ``/_sim/state``."""
    # No client_max_size surprises: query bodies with 500 ``in`` ids stay far below 1 MiB,
    # but webhook payload replays and big PUTs should not hit aiohttp's default cap either.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    gateway = Gateway(state)
    app[GATEWAY_KEY] = gateway
    app.add_subapp("/_sim", build_admin_app(state, urls))
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app


__all__ = ["GATEWAY_KEY", "build_app"]

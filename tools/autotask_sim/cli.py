"""``python -m tools simulator``: run a simulated Autotask tenant until Ctrl-C / SIGTERM.

Prints the URLs and credentials to configure a client with, and the ``autotask-sync`` settings
that point at it (the zone lookup URL first: without it zone discovery asks the real Autotask),
then serves. Any setting of
:class:`SimulatorConfig` can come from a JSON file (``--config``), durations as numbers of seconds
or strings with a unit (``"250ms"``, ``"2m"``); flags override it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from tools.autotask_sim.config import SimulatorConfig
from tools.autotask_sim.server import Simulator, run_simulator

_SIZES = ("resources", "companies", "contacts", "configuration_items", "tickets", "ticket_notes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (called by ``cli.main``)."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 = any)")
    parser.add_argument("--seed", type=int, default=None, help="data and fault seed (default 7)")
    parser.add_argument("--zone", type=int, default=None, help="tenant zone number (default 14)")
    for size in _SIZES:
        flag = "--" + size.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"number of {size}")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="multiply Autotask's durations (callout timeout/retry, usage latency, hourly "
        "window, thread release delay) by this factor, e.g. 0.01",
    )
    parser.add_argument(
        "--change-rate", type=float, default=None, help="generated changes per second (0 = off)"
    )
    parser.add_argument("--username", default=None, help="API username (default: from seed)")
    parser.add_argument("--secret", default=None, help="API secret (default: from seed)")
    parser.add_argument("--integration-code", default=None, help="tracking identifier")
    parser.add_argument("--config", type=Path, default=None, help="SimulatorConfig as JSON")


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """The config the flags (and optional JSON file) describe."""
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = json.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read simulator config {args.config}: {exc}") from exc
    data["host"], data["port"] = args.host, args.port
    for name in ("seed", "zone", "time_scale", "username", "secret", "integration_code", *_SIZES):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    if args.change_rate is not None:
        data.setdefault("changes", {})["rate"] = args.change_rate
    try:
        return SimulatorConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"invalid simulator settings: {exc}") from exc


def describe(sim: Simulator) -> str:
    """What a person needs to point a client at the simulator."""
    counts = ", ".join(f"{len(t)} {name}" for name, t in sim.state.tenant.tables.items() if len(t))
    lookup = f"{sim.zone_lookup_url}/v1.0/zoneInformation?user={sim.username}"
    rows = [
        ("zone lookup", f"GET {lookup}"),
        ("REST root", f"{sim.rest_url}/v1.0/"),
        ("UserName", sim.username),
        ("Secret", sim.secret),
        ("ApiIntegrationCode", sim.integration_code),
        ("API resource id", str(sim.api_user_resource_id)),
        ("admin API", f"{sim.base_url}/_sim/state"),
        ("tenant", counts),
    ]
    lines = [f"  {label:<19} {value}" for label, value in rows]
    # What autotask-sync needs to find the simulated tenant: zone discovery asks here.
    settings = {
        "ZONE_LOOKUP_URL": sim.zone_lookup_url,
        "USERNAME": sim.username,
        "SECRET": sim.secret,
        "INTEGRATION_CODE": sim.integration_code,
    }
    use = [
        "Point autotask-sync at it (zone discovery asks the simulator):",
        *(f"  AUTOTASK_SYNC_AUTOTASK_{name}={shlex.quote(v)}" for name, v in settings.items()),
        "or store it as a connection (asks for the secret and the integration code):",
        f"  autotask-sync connections add NAME --username {shlex.quote(sim.username)} "
        f"--zone-lookup-url {shlex.quote(sim.zone_lookup_url)}",
    ]
    return "\n".join(["Autotask simulator running", *lines, *use, "Press Ctrl-C to stop."])


async def serve(
    config: SimulatorConfig, stop: asyncio.Event | None = None, *, signals: bool = True
) -> None:
    """Run until ``stop`` is set (or, with ``signals``, SIGINT / SIGTERM arrives)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
    for sig in handled:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with run_simulator(config) as sim:
            sys.stdout.write(describe(sim) + "\n")
            sys.stdout.flush()
            await stop.wait()
    finally:
        for sig in handled:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Entry point: serve until interrupted; 0 on a clean stop."""
    try:
        asyncio.run(serve(build_config(args)))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0


__all__ = ["add_arguments", "build_config", "describe", "run", "serve"]

"""``python -m tools dev-infra up|down|env|status``: the local stack for a person.

``up`` is idempotent: when a stack recorded in ``.dev-infra/state.json`` still answers, it is
reused. ``env`` prints shell ``export`` lines (``eval "$(python -m tools dev-infra env)"``).
Test sessions reuse a stack started this way when one is up, and start their own otherwise.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.dev_infra.processes import pid_alive, port_open
from tools.dev_infra.stack import DevStack, StackEnv, StackProcesses, stop_processes

STATE_FILE = Path(__file__).resolve().parents[2] / ".dev-infra" / "state.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "env", "status"])


def run(args: argparse.Namespace) -> int:
    if args.action == "up":
        env, reused = up()
        print(("reusing" if reused else "started") + " the local stack:", file=sys.stderr)
        print(_exports(env))
        return 0
    if args.action == "down":
        print("stopped" if down() else "nothing to stop", file=sys.stderr)
        return 0
    running = running_stack()
    if running is None:
        print(
            "no local stack is running; start one with `python -m tools dev-infra up`",
            file=sys.stderr,
        )
        return 1
    print(_exports(running) if args.action == "env" else json.dumps(running.as_env(), indent=2))
    return 0


def up() -> tuple[StackEnv, bool]:
    """Start the stack unless a recorded one still answers; returns (env, reused)."""
    running = running_stack()
    if running is not None:
        return running, True
    down()  # a stale record: clear whatever is left of it
    stack = DevStack(owned=False)
    env = stack.up()
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    processes = {
        "postgres_pid": stack.processes.postgres_pid,
        "kafka_pid": stack.processes.kafka_pid,
        "data_dirs": stack.processes.data_dirs,
        "container_ids": stack.processes.container_ids,
    }
    STATE_FILE.write_text(
        json.dumps(
            {"env": env.as_env(), "processes": processes, "sources": stack.sources}, indent=2
        )
    )
    return env, False


def down() -> bool:
    state = _read_state()
    if state is None:
        return False
    processes = StackProcesses(**state["processes"])
    stop_processes(processes)
    for container_id in processes.container_ids:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=False)
    STATE_FILE.unlink(missing_ok=True)
    return True


def running_stack() -> StackEnv | None:
    """The recorded stack if every process it started is alive and listening."""
    state = _read_state()
    if state is None:
        return None
    processes = state["processes"]
    for pid in (processes.get("postgres_pid"), processes.get("kafka_pid")):
        if pid and not pid_alive(pid):
            return None
    env = StackEnv(
        database_url=state["env"]["DATABASE_URL"],
        kafka_bootstrap_servers=state["env"]["KAFKA_BOOTSTRAP_SERVERS"],
    )
    kafka_port = int(env.kafka_bootstrap_servers.rsplit(":", 1)[1].split(",")[0])
    if processes.get("kafka_pid") and not port_open(kafka_port):
        return None
    return env


def _read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state


def _exports(env: StackEnv) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.as_env().items())

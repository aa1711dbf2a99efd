"""``python -m tools dev-infra up|down|env|status``: the local stack for a person.

``up`` starts PostgreSQL and Kafka and records them in ``.dev-infra/state.json``
(:mod:`tools.dev_infra.record`). Run again, it reuses the recorded stack while it runs and
repairs it when part of it stopped: what stopped starts again on its port and data, what runs is
left alone, and each server's line says which. It never deletes data; ``down`` does (it stops
the stack). ``status`` shows each server and exits non-zero unless all run. ``env`` prints shell
``export`` lines (``eval "$(python -m tools dev-infra env)"``) for a stack that runs.
Test sessions reuse a stack started this way while it runs, and start their own otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from shared.errors import InfrastructureError
from tools.dev_infra.record import StackRecord, State, repair
from tools.dev_infra.stack import DevStack, StackEnv, stop_processes

STATE_FILE = Path(__file__).resolve().parents[2] / ".dev-infra" / "state.json"
_UP = "`python -m tools dev-infra up`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["up", "down", "env", "status"],
        help="up: start, reuse or repair the stack; down: stop it and delete its data; "
        "env: print its export lines; status: how each server is",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=STATE_FILE,
        metavar="PATH",
        help="where the stack is recorded (default: .dev-infra/state.json in the checkout)",
    )


def run(args: argparse.Namespace) -> int:
    actions = {"up": up, "down": down, "env": env, "status": status}
    return actions[args.action](args.state_file)


def up(state_file: Path = STATE_FILE) -> int:
    """Start the stack, or reuse or repair the recorded one; prints its export lines once it
    runs. Exit 1 when a server could not be brought back (its line says why)."""
    record = StackRecord.load(state_file)
    if record is None:
        stack = DevStack(owned=False)
        record = StackRecord.of(stack, stack.up())
        record.save(state_file)
        _say("started the local stack:", [s.report(State.RUNNING) for s in record.servers])
        print(_exports(record.env))
        return 0
    repairs = [repair(server) for server in record.servers]
    repaired = replace(record, servers=tuple(r.server for r in repairs))
    repaired.save(state_file)
    lines = [f"{r.server.title}: {r.done}" for r in repairs]
    if not all(r.ok for r in repairs):
        _say(f"the local stack is not fully up (recorded in {state_file}):", lines)
        return 1
    _say("reusing the local stack:" if repaired == record else "repaired the local stack:", lines)
    print(_exports(repaired.env))
    return 0


def down(state_file: Path = STATE_FILE) -> int:
    """Stop the recorded stack's servers and delete their data and the record."""
    record = StackRecord.load(state_file)
    if record is None:
        print("nothing to stop", file=sys.stderr)
        return 0
    stop_processes(record.processes())
    for container_id in record.container_ids:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=False)
    state_file.unlink(missing_ok=True)
    print("stopped the local stack and deleted its data", file=sys.stderr)
    return 0


def status(state_file: Path = STATE_FILE) -> int:
    """One line per server (state, address, pid, data folder); exit 0 only when all run."""
    record = StackRecord.load(state_file)
    if record is None:
        print(f"no local stack is recorded in {state_file}; start one with {_UP}", file=sys.stderr)
        return 1
    return _report(record, sys.stdout)


def env(state_file: Path = STATE_FILE) -> int:
    """The export lines of a stack that runs; otherwise what does not run (on stderr, so an
    ``eval`` of the output runs nothing), and exit 1."""
    record = StackRecord.load(state_file)
    if record is None:
        return status(state_file)
    if record.running:
        print(_exports(record.env))
        return 0
    _report(record, sys.stderr)
    return 1


def running_stack(state_file: Path = STATE_FILE) -> StackEnv | None:
    """The recorded stack's addresses if every server of it runs. An unreadable record counts
    as none: a test session or benchmark then starts its own stack."""
    try:
        record = StackRecord.load(state_file)
    except InfrastructureError:
        return None
    return record.env if record is not None and record.running else None


def _report(record: StackRecord, out: TextIO) -> int:
    states = record.states()
    for server, state in states.items():
        print(server.report(state), file=out)
    if all(state is State.RUNNING for state in states.values()):
        return 0
    print(f"{_UP} starts what stopped again, on the same ports and data", file=sys.stderr)
    return 1


def _say(heading: str, lines: list[str]) -> None:
    print("\n".join([heading, *(f"  {line}" for line in lines)]), file=sys.stderr)


def _exports(stack_env: StackEnv) -> str:
    return "\n".join(
        f"export {key}={shlex.quote(value)}" for key, value in stack_env.as_env().items()
    )

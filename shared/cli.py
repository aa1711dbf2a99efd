"""``autotask-sync``: the command line for people.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``autotask-sync
--help`` stays fast and a command's dependencies never load for another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shared.errors import SyncError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "dev-infra": (
        "tools.dev_infra.cli",
        "start, stop or describe local PostgreSQL and Kafka for development and tests",
    ),
    "migrate": ("shared.commands.migrate", "apply pending database migrations"),
    "simulator": ("tools.autotask_sim.cli", "run the built-in Autotask simulator"),
    "topics": ("shared.commands.topics", "list the Kafka topics, or create the missing ones"),
    "test-connection": (
        "shared.commands.test_connection",
        "check Autotask credentials, zone, usage and webhook permission",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotask-sync",
        description="Event-driven sync of Autotask PSA into Kafka and PostgreSQL.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse just the command name first, then let the command's module add its own options.
    known, _rest = parser.parse_known_args(argv[:1] if argv else argv)
    module = importlib.import_module(COMMANDS[known.command][0])
    command_parser = argparse.ArgumentParser(
        prog=f"autotask-sync {known.command}", description=COMMANDS[known.command][1]
    )
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        return int(module.run(args))
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Sub-command dispatch shared by the product CLI (``cli/``) and the development one (``tools``).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``--help`` stays
fast and a command's dependencies never load for another. A :class:`SyncError` is printed as one
line and exits 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.errors import SyncError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Command:
    """A sub-command: the module implementing it and its one-line help."""

    module: str
    help: str


def build_parser(
    prog: str, description: str, commands: Mapping[str, Command]
) -> argparse.ArgumentParser:
    """The top-level parser listing ``commands``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands.items():
        sub.add_parser(name, help=command.help, description=command.help)
    return parser


def dispatch(
    prog: str,
    description: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run the named command and return its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, description, commands)
    # Parse just the command name first, then let the command's module add its own options.
    known, _rest = parser.parse_known_args(args_list[:1])
    command = commands[known.command]
    module = importlib.import_module(command.module)
    command_parser = argparse.ArgumentParser(
        prog=f"{prog} {known.command}", description=command.help
    )
    module.add_arguments(command_parser)
    args = command_parser.parse_args(args_list[1:])
    try:
        return int(module.run(args))
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

"""Sub-command dispatch shared by the product CLI (``cli/``) and the development one (``tools``).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``--help`` stays
fast and a command's dependencies never load for another. A :class:`SyncError` is printed as one
line and exits 2; Ctrl-C exits 130.

A command's output for people goes to standard output; its log lines go to standard error, at
WARNING unless ``-v`` (INFO) or ``-vv`` (DEBUG) is given, anywhere on the command line.
A service logs per its settings (``AUTOTASK_SYNC_LOG_LEVEL``); a command run by hand would drown
its answer in the INFO lines of the parts it uses. The client libraries' own loggers (aiokafka,
asyncpg) speak only with ``-v``: they log each failed connection attempt, which the command
already reports once, as its error, with what to fix.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.errors import SyncError
from shared.logging import configure_logging

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
LOG_LEVELS = ("WARNING", "INFO", "DEBUG")
"""A command's log level by the number of ``-v`` given."""
LIBRARY_LOGGERS = ("aiokafka", "kafka", "asyncpg")
"""Client libraries whose log lines a command shows only with ``-v``."""


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
    add_verbosity(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands.items():
        sub.add_parser(name, help=command.help, description=command.help)
    return parser


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose`` in the parser's help (:func:`verbosity` takes them out before)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log at INFO on standard error (-vv: DEBUG); default WARNING",
    )


def verbosity(args: Sequence[str]) -> tuple[int, list[str]]:
    """How many ``-v`` ``args`` hold wherever they stand (``-vv`` counts two; not after
    ``--``), and the arguments without them: every command and each of its actions takes them."""
    count = 0
    rest: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg == "--verbose":
            count += 1
        elif len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}:
            count += len(arg) - 1
        else:
            rest.append(arg)
    return count, rest


def log_level(verbose: int) -> str:
    """The log level of a command given ``-v`` ``verbose`` times."""
    return LOG_LEVELS[min(verbose, len(LOG_LEVELS) - 1)]


def configure_command_logging(verbose: int) -> None:
    """A command's logging: standard error, at the level ``-v`` asks for; the client libraries
    silent unless ``-v``."""
    configure_logging(log_level(verbose), stream=sys.stderr)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL + 1)


def command_parser(prog: str, name: str, command: Command) -> argparse.ArgumentParser:
    """The parser of one command, with its module's options (the module is imported)."""
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=command.help)
    add_verbosity(parser)
    importlib.import_module(command.module).add_arguments(parser)
    return parser


def dispatch(
    prog: str,
    description: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run the named command and return its exit code."""
    verbose, args_list = verbosity(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(prog, description, commands)
    # Parse just the command name first, then let the command's module add its own options.
    known, _rest = parser.parse_known_args(args_list[:1])
    command = commands[known.command]
    args = command_parser(prog, known.command, command).parse_args(args_list[1:])
    configure_command_logging(verbose)
    try:
        return int(importlib.import_module(command.module).run(args))
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

"""``autotask-sync resync``: clear and resync an entity of a connection.

    autotask-sync resync [--connection C] --entity E [--max-delete-share X] [--restart]

The mirror's live rows of the entity are marked for rebuild, a fresh backfill reads every row
(resumable like ``backfill``), and the marked rows no page returned are confirmed with an ``in``
query and deleted, within the mass-delete guard. Downstream gets change events only for what
really changed. Exit status: 0 when it finished (or was a duplicate), 1 otherwise.
"""

from __future__ import annotations

import argparse

from cli.commands.sweep import add_delete_share_argument, add_target_arguments, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, entity_required=True)
    add_delete_share_argument(parser)
    parser.add_argument(
        "--restart", action="store_true", help="start over instead of resuming an unfinished one"
    )


def run(args: argparse.Namespace) -> int:
    return run_command(args, "resync", restart=args.restart)

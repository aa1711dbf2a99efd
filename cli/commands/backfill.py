"""``autotask-sync backfill``: read every row of an entity into the mirror, resumably.

    autotask-sync backfill [--connection C] [--entity E ...] [--restart]

A full paged read by id cursor (500 rows a call; one ``count`` for the progress bar's total) at
background priority, so webhook-driven fetches go first and it pauses above 90% of the hourly
budget. Killed half-way, it resumes after the last durable id when run again (``--restart``
starts over); the scheduler resumes it too. A finished backfill is recorded and announced on the
control topic (``BackfillFinished``). Exit status: 0 when every backfill finished, 1 otherwise.
"""

from __future__ import annotations

import argparse

from cli.commands.sweep import add_target_arguments, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--restart", action="store_true", help="start over instead of resuming an unfinished one"
    )


def run(args: argparse.Namespace) -> int:
    return run_command(args, "backfill", restart=args.restart)

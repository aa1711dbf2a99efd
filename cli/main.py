"""``autotask-sync``: the command line for people operating the sync.

Each sub-command is a module under ``cli/commands/`` (see :mod:`shared.runtime.commandline`).
Development commands (local infrastructure, the simulator, the demo) are not part of the
product: they run with ``python -m tools`` from a source checkout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shared.runtime.commandline import Command, dispatch

PROG = "autotask-sync"
DESCRIPTION = "Event-driven sync of Autotask PSA into Kafka and PostgreSQL."

COMMANDS: dict[str, Command] = {
    "migrate": Command("cli.commands.migrate", "apply pending database migrations"),
    "topics": Command("cli.commands.topics", "list the Kafka topics, or create the missing ones"),
    "connections": Command(
        "cli.commands.connections",
        "add, list, show, edit, test, enable, disable, remove the Autotask connections; rekey",
    ),
    "companies": Command(
        "cli.commands.companies", "list the tenant's companies (ids for a connection's scope)"
    ),
    "dlq": Command(
        "cli.commands.dlq", "list the dead-lettered callouts, or replay them after a fix"
    ),
    "spool": Command(
        "cli.commands.spool",
        "list, show, retry or drop the callouts in the gateway's spool and those Kafka refused",
    ),
    "status": Command(
        "cli.commands.status",
        "one screen for the person on call, led by a verdict: healthy (exit 0), degraded (1) "
        "or down (2)",
    ),
    "test-connection": Command(
        "cli.commands.test_connection",
        "check Autotask credentials, zone, usage and webhook permission",
    ),
    "provision": Command(
        "cli.commands.provision",
        "plan, apply, status, rotate-secret or tear down the Autotask webhooks",
    ),
    "sweep": Command(
        "cli.commands.sweep", "quick sync now: what changed, or --full, --ids (deletes), --due"
    ),
    "backfill": Command("cli.commands.backfill", "read every row of an entity (resumable)"),
    "resync": Command("cli.commands.resync", "clear and resync an entity of a connection"),
    "refresh-metadata": Command(
        "cli.commands.refresh_metadata", "read the PSA's picklists and UDF definitions now"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``autotask-sync`` with ``argv`` (default: the process arguments)."""
    return dispatch(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

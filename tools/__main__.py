"""``python -m tools``: development commands, from a source checkout only.

They are not part of the product's wheel: local PostgreSQL and Kafka, the Autotask simulator and
the demo. ``make infra-up``, ``make demo`` and the tests use the same modules.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shared.runtime.commandline import Command, dispatch

PROG = "python -m tools"
DESCRIPTION = "Development commands of autotask-sync (not installed with the product)."

COMMANDS: dict[str, Command] = {
    "dev-infra": Command(
        "tools.dev_infra.cli",
        "start, stop or describe local PostgreSQL and Kafka for development and tests",
    ),
    "simulator": Command("tools.autotask_sim.cli", "run the built-in Autotask simulator"),
    "schemas": Command("tools.schemas", "write the topic contracts in schemas/ from the code"),
    "kustomize": Command(
        "tools.dev_infra.kustomize",
        "install the pinned kustomize, or render deploy/k8s with it",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a development command with ``argv`` (default: the process arguments)."""
    return dispatch(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())

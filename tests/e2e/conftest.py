"""The end-to-end suite prints the fault table at the end of the run.

Under pytest-xdist the table is made by the worker that ran the scenarios and printed by the
controller (tests/conftest.py reads it from the worker's output).
"""

from __future__ import annotations

import pytest

from tests.e2e.faults import RESULTS, table

TITLE = "fault-injection suite"
SECTIONS = "autotask_sync_summary_sections"
"""The worker-output key tests/conftest.py reads the sections from."""


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if RESULTS and output is not None:
        output.setdefault(SECTIONS, []).append((TITLE, table(RESULTS)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS and not hasattr(terminalreporter.config, "workerinput"):
        terminalreporter.write_sep("=", TITLE)
        terminalreporter.write_line(table(RESULTS))

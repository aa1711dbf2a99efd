"""The end-to-end suite prints the fault table at the end of the run."""

from __future__ import annotations

import pytest

from tests.e2e.faults import RESULTS, table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.write_sep("=", "fault-injection suite")
        terminalreporter.write_line(table(RESULTS))

"""The end-to-end suite prints the fault table, and the notes on each scenario, at the end.

Under pytest-xdist the sections are made by the worker that ran the scenarios and printed by the
controller (tests/conftest.py reads them from the worker's output).
"""

from __future__ import annotations

import pytest

from tests.e2e.faults import RESULTS, notes, table

TITLE = "fault-injection suite"
NOTES = "fault-injection suite: what the probes and the backlog did"
SECTIONS = "autotask_sync_summary_sections"
"""The worker-output key tests/conftest.py reads the sections from."""


def _sections() -> list[tuple[str, str]]:
    found = [(TITLE, table(RESULTS))] if RESULTS else []
    if noted := notes(RESULTS):
        found.append((NOTES, noted))
    return found


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output.setdefault(SECTIONS, []).extend(_sections())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return
    for title, text in _sections():
        terminalreporter.write_sep("=", title)
        terminalreporter.write_line(text)

"""The options every command takes: ``-v`` wherever it stands, counted into a log level."""

from __future__ import annotations

from shared.runtime.commandline import log_level, verbosity


def test_v_counts_wherever_it_stands_but_not_after_a_double_dash() -> None:
    count, rest = verbosity(["-v", "companies", "list", "-vv", "--search", "x", "--", "-v"])
    assert count == 3
    assert rest == ["companies", "list", "--search", "x", "--", "-v"]
    assert verbosity(["sweep", "--verbose", "--full"]) == (1, ["sweep", "--full"])


def test_commands_log_warnings_unless_asked_for_more() -> None:
    assert [log_level(n) for n in range(4)] == ["WARNING", "INFO", "DEBUG", "DEBUG"]

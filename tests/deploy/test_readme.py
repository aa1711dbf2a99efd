"""deploy/README.md stays true to the code: every command it shows parses as the CLI would
parse it, every variable it names is one a settings class reads, every path it names exists."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.deploy import codebase

README = codebase.ROOT / "deploy" / "README.md"
COMMAND = re.compile(r"(?<!-n )(?<![\w/.-])autotask-sync ((?:[a-z][\w-]*)(?: [^`\n|]*)?)")
"""The CLI name as a command (not the namespace in ``-n autotask-sync``, not a resource name)."""


def commands(text: str) -> list[str]:
    """``autotask-sync ...`` invocations in code spans and code blocks (placeholders skipped)."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", text) + re.findall(r"(?s)```bash\n(.*?)```", text):
        for line in span.replace("\\\n", " ").splitlines():
            for match in COMMAND.finditer(line):
                command = match[1].split(")")[0].strip()
                if "<" not in command and "..." not in command:
                    found.append(command)
    return found


def test_the_readme_shows_commands() -> None:
    assert len(commands(README.read_text())) >= 10


@pytest.mark.parametrize("command", sorted(set(commands(README.read_text()))))
def test_every_command_in_the_readme_parses(command: str) -> None:
    codebase.parse_command(shlex.split(command))


def test_every_variable_in_the_readme_is_read_by_the_settings() -> None:
    named = set(re.findall(r"\bAUTOTASK_SYNC_[A-Z0-9_]*[A-Z0-9]\b", README.read_text()))
    known = codebase.all_variables()
    wildcards = {
        n for n in named if not n.endswith("_") and any(k.startswith(n + "_") for k in known)
    }
    assert sorted(named - known - wildcards) == []


def test_every_repository_path_in_the_readme_exists() -> None:
    paths = re.findall(r"`((?:\.\./)?(?:k8s|deploy|docs)/[\w./-]+)`", README.read_text())
    base = README.parent
    missing = [p for p in paths if not ((base / p).exists() or (codebase.ROOT / p).exists())]
    assert paths
    assert missing == []


def test_a_wrong_command_would_fail() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        codebase.parse_command(["provision", "rotate", "--all"])

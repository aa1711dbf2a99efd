"""The layout's rules, checked on the source: who may import whom, and what the wheel holds.

- ``shared/`` is the bottom layer: it imports neither a service, the CLI nor ``tools/``;
- no service imports another service (what two services share lives in ``shared/``);
- the CLI is a leaf: no product code imports it;
- the product (``shared/``, ``services/``, ``cli/``) never imports ``tools/`` (development only),
  and the wheel contains no ``tools/``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("shared", "services", "cli")


def _imports(path: Path) -> set[str]:
    """Top-level module paths imported by ``path`` (``a.b.c`` for ``from a.b import c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in sorted(_imports(path))
        if name.split(".")[0] in forbidden
    ]


def test_shared_imports_no_service_cli_or_tools() -> None:
    assert _violations("shared", ("services", "cli", "tools")) == []


def test_no_service_imports_another_service_the_cli_or_tools() -> None:
    problems = []
    for service in sorted(p.name for p in (ROOT / "services").iterdir() if p.is_dir()):
        if service.startswith("__"):
            continue
        for path in _modules(f"services/{service}"):
            for name in sorted(_imports(path)):
                parts = name.split(".")
                if parts[0] in ("cli", "tools") or (
                    parts[0] == "services" and len(parts) > 1 and parts[1] != service
                ):
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_the_cli_is_a_leaf_and_the_product_never_imports_tools() -> None:
    assert _violations("cli", ("tools",)) == []
    leaf_users = [
        v for package in ("shared", "services", "tools") for v in _violations(package, ("cli",))
    ]
    assert leaf_users == []


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a file importing tools is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from tools.autotask_sim import Simulator\nimport services.sync_worker\n")
    assert _imports(bad) == {"tools.autotask_sim", "services.sync_worker"}


def test_the_wheel_holds_the_product_and_no_development_tools(tmp_path: Path) -> None:
    # `uv run` (how `make test` runs pytest) names its own binary in UV: the Makefile may have
    # installed uv where PATH does not look (~/.local/bin on a fresh machine).
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (run the suite with `make test`)")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), "--quiet"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if "/" in name}
    assert not {"tools", "tests", "bench"} & top
    assert {"shared", "services", "cli"} <= top
    # The migrations travel with the code that applies them.
    assert any(n.startswith("shared/db/migrations/") and n.endswith(".sql") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "autotask-sync = cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

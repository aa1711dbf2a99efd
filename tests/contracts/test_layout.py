"""The layout's rules, checked on the source: who may import whom, and what the wheel holds.

- ``shared/`` is the bottom layer: it imports neither a service, the CLI nor ``tools/``;
- no service imports another service (what two services share lives in ``shared/``);
- the CLI is a leaf: no product code imports it;
- the product (``shared/``, ``services/``, ``cli/``) never imports ``tools/`` (development only),
  and the wheel contains no ``tools/``;

and one home per concept (docs/adr/0009):

- no import circle between the product's modules (``TYPE_CHECKING`` imports count: a circle
  drawn for the type checker is still two modules that cannot be read one without the other);
- no two modules in ``shared/`` whose names differ only by a suffix (``scope``/``scoping``,
  ``mirror``/``mirroring``): one concept, one name;
- asyncpg is named only in ``shared/db/``, aiokafka's errors only in ``shared/kafka/``: the
  adapters translate their library's errors, and code above catches the project's.
"""

from __future__ import annotations

import ast
import itertools
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("shared", "services", "cli")


def _import_statements(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Each absolute import in ``path``: (line, module, the names taken from it); ``import a.b``
    is ``a.b`` with no names."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def _imports(path: Path) -> set[str]:
    """Module paths imported by ``path`` (``a.b`` for ``from a.b import c``)."""
    return {module for _line, module, _names in _import_statements(path)}


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


# --- one home per concept ---------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(packages: Iterable[str]) -> dict[str, Path]:
    return {
        _module_name(path): path for package in packages for path in (ROOT / package).rglob("*.py")
    }


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The product modules ``path`` imports (``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``)."""
    found: set[str] = set()
    for _line, module, names in _import_statements(path):
        found.add(module)
        found.update(f"{module}.{name}" for name in names)
    return found & known


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _import_graph(packages: Iterable[str]) -> dict[str, set[str]]:
    sources = _sources(packages)
    known = set(sources)
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        targets = _imported_modules(path, known) - {name}
        # A package's __init__ re-exporting its own modules is how a package shows its API; an
        # edge from the package to its own members is not a circle of concepts.
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(name + ".")}
        graph[name] = {t for t in targets if not name.startswith(t + ".") or t == name}
    return graph


def test_no_import_circle_in_the_product() -> None:
    assert _circles(_import_graph(PRODUCT)) == []


def test_the_circle_finder_finds_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


_SUFFIXES = ("ing", "ion", "er", "ed", "es", "s", "r", "e")


def _stem(name: str) -> str:
    """``scoping`` -> ``scop``, ``scope`` -> ``scop``, ``deletion`` -> ``delet``."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 4:
            return _stem(name[: -len(suffix)])
    return name


def _suffix_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    unique = sorted(set(names))
    return [
        (a, b)
        for a, b in itertools.combinations(unique, 2)
        if _stem(a) == _stem(b) or a.startswith(b) or b.startswith(a)
    ]


def _shared_names() -> list[str]:
    shared = ROOT / "shared"
    modules = [p.stem.lstrip("_") for p in shared.rglob("*.py") if p.name != "__init__.py"]
    packages = [p.parent.name for p in shared.rglob("__init__.py") if p.parent != shared]
    return modules + packages


def test_no_two_names_in_shared_differ_only_by_a_suffix() -> None:
    assert _suffix_pairs(_shared_names()) == []


def test_the_suffix_rule_catches_the_old_pairs() -> None:
    assert _suffix_pairs(["scope", "scoping", "mirror", "mirroring", "store", "runs"]) == [
        ("mirror", "mirroring"),
        ("scope", "scoping"),
    ]
    assert _suffix_pairs(["schedule", "scheduler", "deletes", "deletion"]) == [
        ("deletes", "deletion"),
        ("schedule", "scheduler"),
    ]


def _library_uses(path: Path, library: str, *, errors_only: bool, root: Path = ROOT) -> list[str]:
    """Lines of ``path`` that import ``library`` (only its ``errors`` module when
    ``errors_only``)."""
    return [
        f"{path.relative_to(root)}:{line} imports {module}"
        for line, module, _names in _import_statements(path)
        if module.split(".")[0] == library and (not errors_only or "errors" in module.split("."))
    ]


def _outside(adapter: str) -> list[Path]:
    return [
        path
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.is_relative_to(ROOT / adapter)
    ]


def test_asyncpg_is_named_only_in_the_database_adapter() -> None:
    uses = [
        use
        for path in _outside("shared/db")
        for use in _library_uses(path, "asyncpg", errors_only=False)
    ]
    assert uses == []


def test_aiokafka_errors_are_named_only_in_the_kafka_adapter() -> None:
    uses = [
        use
        for path in _outside("shared/kafka")
        for use in _library_uses(path, "aiokafka", errors_only=True)
    ]
    assert uses == []


def test_the_library_rule_catches_a_use(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncpg\nfrom aiokafka.errors import KafkaError\nimport aiokafka\n")
    assert _library_uses(bad, "asyncpg", errors_only=False, root=tmp_path) == [
        "bad.py:1 imports asyncpg"
    ]
    assert _library_uses(bad, "aiokafka", errors_only=True, root=tmp_path) == [
        "bad.py:2 imports aiokafka.errors"
    ]

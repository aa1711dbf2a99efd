"""One home per concept (docs/adr/0009): checked on the source.

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
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("shared", "services", "cli")


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
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
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
    """Lines of ``path`` that import or name ``library`` (only its ``errors`` module when
    ``errors_only``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == library and (not errors_only or "errors" in parts):
                found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    return found


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

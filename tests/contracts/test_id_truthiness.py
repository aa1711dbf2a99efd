"""No id is tested for truth: Autotask's id 0 is real (``Companies/0`` is the tenant's own
company), so ``if company_id:``, ``not parent_id``, ``ticket_id or default``, ``bool(id)`` and
``filter(None, ids)`` each drop it. Test an id with ``is None`` / ``is not None`` (or compare it).

What counts as an id (scalar ids only: a list of ids tested for emptiness is fine):

- a name or attribute named exactly ``id``, or ending in ``_id``, ``ID`` or ``Id``
  (``company_id``, ``self.parent_id``, ``entity.id``, ``companyID``, ``parentId``);
- a subscript or ``.get()`` with such a constant key (``row["companyID"]``,
  ``entity.get("id")``, ``payload.get("ticket_id")``);
- the target of ``:=`` when it is named like an id;
- the element of a comprehension over a list named like ids (``ids``, ``*_ids``, ``*IDs``,
  ``*Ids``): ``[i for i in company_ids if i]``.

Where it is tested for truth:

- the test of an ``if``, ``while``, conditional expression (``a if t else b``), ``assert``, a
  comprehension's ``if`` or a ``case`` guard;
- the operand of ``not``;
- an operand of ``and``/``or`` that the operator tests: every operand but the last one, which is
  the expression's value (``x_id or default`` tests ``x_id``; ``default or x_id`` does not, unless
  the whole expression is itself tested for truth);
- the argument of ``bool()``;
- ``filter(None, xs)`` where ``xs`` is named like a list of ids.

Opt-out: a genuine non-id case (a collection named like an id, such as a ``by_id`` mapping; a
string token that is never an Autotask id and never 0) is kept by writing
``# id-truthiness: ok <reason>`` on the line of the flagged expression; the reason is required,
a bare marker does not count.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("shared", "services", "cli", "tools")
MARKER = re.compile(r"#\s*id-truthiness:\s*ok\s+\S")

_SCALAR_ID = re.compile(r"(?:^id$|_id$|ID$|Id$)")
_ID_LIST = re.compile(r"(?:^ids$|_ids$|IDs$|Ids$)")


def _is_id_name(name: str) -> bool:
    return bool(_SCALAR_ID.search(name))


def _id_label(expr: ast.expr, element_ids: frozenset[str]) -> str | None:
    """How ``expr`` reads when it is an id (``company_id``, ``row["companyID"]``), else None."""
    if isinstance(expr, ast.NamedExpr):
        return _id_label(expr.target, element_ids)
    if isinstance(expr, ast.Name):
        return expr.id if _is_id_name(expr.id) or expr.id in element_ids else None
    if isinstance(expr, ast.Attribute):
        return ast.unparse(expr) if _is_id_name(expr.attr) else None
    if isinstance(expr, ast.Subscript):
        key = expr.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and _is_id_name(key.value):
            return ast.unparse(expr)
        return None
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "get"
        and expr.args
        and isinstance(expr.args[0], ast.Constant)
        and isinstance(expr.args[0].value, str)
        and _is_id_name(expr.args[0].value)
    ):
        return ast.unparse(expr)
    return None


def _tested(expr: ast.expr, *, whole: bool) -> Iterator[ast.expr]:
    """The expressions whose truth ``expr`` decides; ``whole``: ``expr`` itself is tested."""
    if isinstance(expr, ast.BoolOp):
        last = len(expr.values) - 1
        for index, value in enumerate(expr.values):
            if whole or index < last:
                yield from _tested(value, whole=True)
    elif isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
        yield from _tested(expr.operand, whole=True)
    elif whole:
        yield expr


def _is_id_list(expr: ast.expr) -> bool:
    name = expr.id if isinstance(expr, ast.Name) else getattr(expr, "attr", None)
    return isinstance(name, str) and bool(_ID_LIST.search(name))


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: dict[tuple[int, int], str] = {}
        self._element_ids: frozenset[str] = frozenset()

    def _check(self, expr: ast.expr, *, whole: bool) -> None:
        for tested in _tested(expr, whole=whole):
            label = _id_label(tested, self._element_ids)
            if label is not None:
                self.found[(tested.lineno, tested.col_offset)] = label

    def visit_If(self, node: ast.If) -> None:
        self._check(node.test, whole=True)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._check(node.test, whole=True)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._check(node.test, whole=True)
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        self._check(node.test, whole=True)
        self.generic_visit(node)

    def visit_match_case(self, node: ast.match_case) -> None:
        if node.guard is not None:
            self._check(node.guard, whole=True)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self._check(node, whole=False)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._check(node, whole=True)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.args:
            if node.func.id == "bool":
                self._check(node.args[0], whole=True)
            elif (
                node.func.id == "filter"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value is None
                and _is_id_list(node.args[1])
            ):
                self.found[(node.lineno, node.col_offset)] = ast.unparse(node)
        self.generic_visit(node)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        outer = self._element_ids
        for generator in node.generators:
            if _is_id_list(generator.iter) and isinstance(generator.target, ast.Name):
                self._element_ids |= {generator.target.id}
            for test in generator.ifs:
                self._check(test, whole=True)
        self.generic_visit(node)
        self._element_ids = outer

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension


def truthy_ids(source: str) -> list[tuple[int, str]]:
    """Each id tested for truth in ``source``, as (line, expression), minus the lines that carry
    the opt-out marker with a reason."""
    checker = _Checker()
    checker.visit(ast.parse(source))
    lines = source.splitlines()
    return sorted(
        (line, label)
        for (line, _col), label in checker.found.items()
        if not MARKER.search(lines[line - 1])
    )


def test_no_id_is_tested_for_truth() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {label} is tested for truth"
        for package in SCANNED
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, label in truthy_ids(path.read_text())
    ]
    assert problems == [], (
        "id 0 is a real Autotask id (Companies/0 is the tenant's own company): test ids with "
        "`is None` / `is not None`, or, where the value is not an Autotask id, add "
        "`# id-truthiness: ok <reason>` on the line\n" + "\n".join(problems)
    )


BAD = [
    ("if company_id:\n    pass\n", "company_id"),
    ("if not parent_id:\n    pass\n", "parent_id"),
    ("x = ticket_id or default\n", "ticket_id"),
    ("x = bool(ticket_id)\n", "ticket_id"),
    ("x = list(filter(None, ids))\n", "filter(None, ids)"),
    ("x = list(filter(None, company_ids))\n", "filter(None, company_ids)"),
    ("while self.parent_id:\n    pass\n", "self.parent_id"),
    ("x = a if entity.id else b\n", "entity.id"),
    ("assert companyID\n", "companyID"),
    ("if row['companyID']:\n    pass\n", "row['companyID']"),
    ("if entity.get('id'):\n    pass\n", "entity.get('id')"),
    ("if payload.get('parentId') and ok:\n    pass\n", "payload.get('parentId')"),
    ("x = [c for c in rows if c.parent_id]\n", "c.parent_id"),
    ("x = [i for i in company_ids if i]\n", "i"),
    ("if ok and not contact_id:\n    pass\n", "contact_id"),
    ("if ok or resource_id:\n    pass\n", "resource_id"),
    ("if (new_id := make()):\n    pass\n", "new_id"),
    ("match x:\n    case _ if row.get('ticketID'):\n        pass\n", "row.get('ticketID')"),
    (
        "if ok:  # id-truthiness: ok\n    pass\nif company_id:  # id-truthiness: ok\n    pass\n",
        "company_id",
    ),
]
GOOD = [
    "if company_id is None:\n    pass\n",
    "if parent_id is not None:\n    pass\n",
    "if ticket_id == 0:\n    pass\n",
    "x = ticket_id if ticket_id is not None else default\n",
    "x = default if ticket_id is None else ticket_id\n",
    "if company_ids:\n    pass\n",
    "if not ids:\n    pass\n",
    "x = ok or company_id\n",
    "x = ok and entity.id\n",
    "x = [c for c in rows if c.parent_id is not None]\n",
    "x = [i for i in company_ids if i is not None]\n",
    "if valid and paid:\n    pass\n",
    "if request_id:  # id-truthiness: ok a request id is a string, never 0\n    pass\n",
    "x = list(filter(None, names))\n",
]


@pytest.mark.parametrize(("source", "label"), BAD, ids=[label for _s, label in BAD])
def test_the_check_reports_an_id_tested_for_truth(source: str, label: str) -> None:
    assert [found for _line, found in truthy_ids(source)] == [label]


@pytest.mark.parametrize("source", GOOD)
def test_the_check_accepts_an_id_compared_or_marked(source: str) -> None:
    assert truthy_ids(source) == []

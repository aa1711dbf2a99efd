"""The series a PromQL expression selects, read from its syntax tree (promql-parser, a PromQL
parser; not a pattern match over the text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser

GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
GRAFANA_SAMPLE_VALUES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
"""What Grafana substitutes for its built-in variables; template variables become ``.*``."""


@dataclass(frozen=True, slots=True)
class Selector:
    metric: str | None
    labels: frozenset[str]


class PromQLError(ValueError):
    pass


def parse(expr: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except Exception as exc:  # the binding raises its own error types
        raise PromQLError(f"{expr!r} does not parse: {exc}") from exc


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr``, with the label names it matches on."""
    found: list[Selector] = []
    _walk(parse(expr), found)
    return found


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Grafana would send it, with its variables substituted."""
    return GRAFANA_VARIABLE.sub(lambda m: GRAFANA_SAMPLE_VALUES.get(m[1], ".*"), expr)


def _walk(node: object, found: list[Selector]) -> None:
    if isinstance(node, promql_parser.VectorSelector):
        matchers = node.matchers.matchers
        names = {m.name for m in matchers}
        metric = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
        found.append(Selector(metric, frozenset(names - {"__name__"})))
        return
    if isinstance(node, promql_parser.MatrixSelector):
        _walk(node.vector_selector, found)
        return
    for attribute in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            _walk(child, found)
    for arg in getattr(node, "args", None) or ():
        _walk(arg, found)

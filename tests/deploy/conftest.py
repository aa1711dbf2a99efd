"""Renders deploy/k8s once per test process (each xdist worker) with the pinned upstream kustomize.

The binary is built on first use (``python -m tools kustomize install``; Go and the Go module
proxy needed, a minute or two). Where it cannot be provided, every test that needs it fails and
says how to install it: none of them passes, or is skipped, without a real rendering. Every test
here is marked ``deploy``: ``make test-unit`` leaves them out, ``make test-deploy`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shared.errors import SyncError
from tests.deploy.manifests import Obj, load
from tools.dev_infra import kustomize

BUILD_TIMEOUT = 1800
"""Seconds the first test may take when it builds kustomize."""

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.deploy)
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def kustomize_binary() -> Path:
    try:
        return kustomize.ensure_kustomize()
    except SyncError as exc:
        pytest.fail(
            f"kustomize {kustomize.KUSTOMIZE_VERSION} is needed to render deploy/k8s: {exc}. "
            "Install it with `python -m tools kustomize install` (or `make manifests`), which "
            "builds it with Go from the Go module proxy",
            pytrace=False,
        )


Render = Callable[[str], list[Obj]]


@pytest.fixture(scope="session")
def render(kustomize_binary: Path) -> Render:
    """``render(variant)``: the objects of one variant (see kustomize.VARIANTS), cached."""
    cache: dict[str, list[Obj]] = {}

    def _render(name: str) -> list[Obj]:
        if name not in cache:
            variant = kustomize.VARIANTS[name]
            cache[name] = load(kustomize.build_variant(variant, kustomize_binary))
        return cache[name]

    return _render

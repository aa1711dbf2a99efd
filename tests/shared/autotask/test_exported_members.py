"""The client's public surface is exactly ``shared.autotask.__all__``; everything else is private.

Modules inside the package are private (``_name.py``), so callers import from the package and
the internals can move freely. The list below is the contract: changing it is a deliberate act.
"""

from __future__ import annotations

import importlib
import pkgutil

import shared.autotask

EXPECTED = {
    "DEFAULT_SHARE",
    "SYSTEM_CLOCK",
    "AutotaskClient",
    "BatchResult",
    "BudgetConfig",
    "BudgetStore",
    "BudgetTracker",
    "BudgetView",
    "Child",
    "ClientConfig",
    "Clock",
    "Connection",
    "Coordination",
    "Coordinator",
    "Entity",
    "EntityInfo",
    "F",
    "FieldInfo",
    "Limiter",
    "LimiterConfig",
    "LocalCoordinator",
    "LocalLockout",
    "Lockout",
    "LockoutPolicy",
    "LockoutStore",
    "ManualClock",
    "Op",
    "Page",
    "PicklistValue",
    "Priority",
    "Query",
    "RetryPolicy",
    "SlotLease",
    "SlotProvider",
    "SystemClock",
    "Target",
    "ThresholdInfo",
    "Throttle",
    "UdfDefinition",
    "ZoneInfo",
    "and_",
    "chunked",
    "format_timestamp",
    "normalize_root",
    "or_",
    "parse_timestamp",
    "udf",
}


def test_the_public_names_are_the_curated_list() -> None:
    assert set(shared.autotask.__all__) == EXPECTED


def test_every_exported_name_exists_and_every_public_module_member_is_exported() -> None:
    for name in shared.autotask.__all__:
        assert hasattr(shared.autotask, name), name
    public = {
        name
        for name in vars(shared.autotask)
        if not name.startswith("_") and name not in {"annotations"}
    }
    assert public == set(shared.autotask.__all__)


def test_every_module_of_the_package_is_private() -> None:
    modules = [m.name for m in pkgutil.iter_modules(shared.autotask.__path__)]
    assert modules, "the package has modules"
    assert [m for m in modules if not m.startswith("_")] == []
    for name in modules:
        importlib.import_module(f"shared.autotask.{name}")  # each imports on its own

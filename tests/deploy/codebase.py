"""What the code declares, read from the code itself: the deployment tests check the manifests
against these, never against lists copied into the tests.

- the entry points: ``python -m services.<name>`` (its ``__main__`` names the settings class) and
  ``autotask-sync <command>`` (``cli.main.COMMANDS``; the command module's ``load_settings``);
- the variables each settings class reads (``model_fields`` and ``shared.settings.env_names``);
- the HTTP routes every service serves (``shared.runtime.ops.add_ops_routes``);
- the Prometheus metrics (``shared.metrics`` in ``prometheus_client.REGISTRY``);
- the Kafka topics (``shared.messages.topics.Topics().declarations()``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from shared.settings import BaseServiceSettings, env_names

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
CLI_SCRIPT = "autotask-sync"

SettingsClass = type[BaseServiceSettings]


# --- Entry points and their settings ----------------------------------------------------------


def service_names() -> list[str]:
    """Every ``services/<name>`` that runs as ``python -m services.<name>``."""
    return sorted(p.parent.name for p in SERVICES.glob("*/__main__.py"))


@cache
def service_settings(name: str) -> SettingsClass:
    """The settings class ``python -m services.<name>`` loads: the second argument of its
    ``main(...)`` call, resolved through the ``__main__`` module's imports."""
    path = SERVICES / name / "__main__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = _imported_names(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "main"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Name)
        ):
            module_name = imported[node.args[1].id]
            cls = getattr(importlib.import_module(module_name), node.args[1].id)
            return _settings_class(cls, f"services/{name}/__main__.py")
    raise AssertionError(f"services/{name}/__main__.py calls no main(name, SettingsClass, start)")


def cli_commands() -> dict[str, str]:
    """``autotask-sync`` sub-commands and the module implementing each."""
    from cli.main import COMMANDS

    return {name: command.module for name, command in COMMANDS.items()}


@cache
def command_settings(command: str) -> SettingsClass:
    """The settings class ``autotask-sync <command>`` loads (``load_settings(X)`` in its module,
    or in the ``cli.commands`` modules it delegates to). The most derived one when several."""
    module_name = cli_commands()[command]
    found = _load_settings_calls(module_name, seen=set())
    if not found:
        raise AssertionError(f"cannot tell which settings `{CLI_SCRIPT} {command}` reads")
    most_derived = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(most_derived) != 1:
        raise AssertionError(f"`{CLI_SCRIPT} {command}` loads unrelated settings: {found}")
    return most_derived[0]


def parse_command(argv: list[str]) -> None:
    """Parse ``autotask-sync`` arguments exactly as the CLI would, without running anything."""
    commands = cli_commands()
    if not argv or argv[0] not in commands:
        raise ValueError(f"{argv[:1]} is not an {CLI_SCRIPT} command ({', '.join(commands)})")
    module = importlib.import_module(commands[argv[0]])
    parser = argparse.ArgumentParser(prog=f"{CLI_SCRIPT} {argv[0]}", exit_on_error=False)
    module.add_arguments(parser)
    try:
        parser.parse_args(argv[1:])
    except (argparse.ArgumentError, SystemExit) as exc:  # sub-parsers exit regardless
        raise ValueError(f"`{CLI_SCRIPT} {' '.join(argv)}` does not parse") from exc


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """What a container runs: a long-running service or a one-shot CLI command."""

    kind: typing.Literal["service", "command"]
    name: str
    settings: SettingsClass


def entry_point(command: list[str]) -> EntryPoint:
    """The entry point a container's ``command`` runs; ``ValueError`` if it is none of ours."""
    if command[:2] == ["python", "-m"] and len(command) == 3:
        module = command[2]
        prefix, _, name = module.partition(".")
        if prefix == "services" and name in service_names():
            return EntryPoint("service", name, service_settings(name))
        raise ValueError(f"python -m {module} is not a service ({', '.join(service_names())})")
    if command[:1] == [CLI_SCRIPT]:
        parse_command(command[1:])
        return EntryPoint("command", command[1], command_settings(command[1]))
    raise ValueError(f"{command} runs neither `python -m services.<name>` nor `{CLI_SCRIPT}`")


# --- Settings and their variables -------------------------------------------------------------


def settings_classes() -> list[SettingsClass]:
    """Every settings class: BaseServiceSettings and all its subclasses, once each settings
    module of shared/ and services/ is imported."""
    for path in sorted([*ROOT.glob("shared/**/settings.py"), *SERVICES.glob("*/settings.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        importlib.import_module(module)
    found: list[SettingsClass] = []
    pending: list[SettingsClass] = [BaseServiceSettings]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def variables(cls: SettingsClass) -> dict[str, str]:
    """Every variable ``cls`` reads, mapped to its field name."""
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        for name in env_names(field_name):
            names[name] = field_name
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names[choice.upper()] = field_name
    return names


def all_variables() -> set[str]:
    """Every variable some settings class reads."""
    return {name for cls in settings_classes() for name in variables(cls)}


def is_secret(field: FieldInfo) -> bool:
    """Whether a field holds a secret (``SecretStr``, possibly optional)."""
    annotation = field.annotation
    if annotation is SecretStr:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return SecretStr in typing.get_args(annotation)
    return False


def loopback_defaults(cls: SettingsClass) -> list[str]:
    """Fields whose default points at this machine (127.0.0.1, localhost): fine for
    development, never right in a cluster, so a deployment must set them."""
    fields = []
    for field_name, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        text = default.get_secret_value() if isinstance(default, SecretStr) else default
        if isinstance(text, str) and ("127.0.0.1" in text or "localhost" in text):
            fields.append(field_name)
    return fields


def default_of(cls: SettingsClass, field_name: str) -> object:
    return cls.model_fields[field_name].get_default(call_default_factory=True)


# --- HTTP, metrics, topics ----------------------------------------------------------------------


def ops_routes() -> set[str]:
    """The paths every service serves on its HTTP port (``add_ops_routes``)."""
    from shared.runtime.ops import add_ops_routes

    app = web.Application()
    add_ops_routes(app, {})
    return {resource.canonical for resource in app.router.resources()}


def gateway_route_prefixes() -> set[str]:
    """The static prefixes of the gateway's Autotask-facing routes (``/v1/callouts/`` ...)."""
    from services.webhook_gateway import app

    paths = [value for name, value in vars(app).items() if name.endswith("_PATH")]
    assert paths, "services/webhook_gateway/app.py declares no *_PATH routes"
    return {path.split("{", 1)[0] for path in paths}


@dataclass(frozen=True, slots=True)
class MetricFamily:
    name: str
    type: str
    labels: frozenset[str] | None
    """None where the metric is not defined in shared.metrics (its labels are not known)."""


@cache
def metric_families() -> dict[str, MetricFamily]:
    """Every metric the project registers (``prometheus_client.REGISTRY`` once shared.metrics
    is imported, names under its namespace), by family name, with its label names."""
    import prometheus_client
    from prometheus_client.metrics import MetricWrapperBase

    import shared.metrics as metrics_module

    prefix = metrics_module.NAMESPACE + "_"
    labels: dict[str, frozenset[str]] = {}
    for value in vars(metrics_module).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                # No public accessor for a metric's label names; _labelnames is what
                # labels() validates against.
                labels[family.name] = frozenset(value._labelnames)
    return {
        family.name: MetricFamily(family.name, family.type, labels.get(family.name))
        for family in prometheus_client.REGISTRY.collect()
        if family.name.startswith(prefix)
    }


SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


@cache
def metric_samples() -> dict[str, MetricFamily]:
    """Every series name a query may use (``x_total``, ``x_bucket``...), with its family."""
    samples = {}
    for family in metric_families().values():
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)):
            samples[family.name + suffix] = family
    return samples


def topic_declarations(prefix: str) -> dict[str, tuple[int, dict[str, str], int]]:
    """Topic name -> (partitions, config, replication factor) as the code declares them."""
    from shared.messages.topics import Topics

    return {
        spec.name: (spec.partitions, dict(spec.config), spec.replication_factor)
        for spec in Topics(prefix=prefix).declarations()
    }


def callouts_topic(prefix: str) -> str:
    from shared.messages.topics import Topics

    return Topics(prefix=prefix).callouts


def topic_default_partitions() -> int:
    from shared.messages.topics import Topics

    return Topics().partitions


# --- internals ----------------------------------------------------------------------------------


def _imported_names(tree: ast.AST) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def _load_settings_calls(module_name: str, *, seen: set[str]) -> list[SettingsClass]:
    if module_name in seen:
        return []
    seen.add(module_name)
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found: list[SettingsClass] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "load_settings"
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            cls = _settings_class(getattr(module, node.args[0].id), module_name)
            if cls not in found:
                found.append(cls)
    if not found:  # delegated, e.g. backfill -> sweep.run_command
        for imported in set(_imported_names(tree).values()):
            if imported.startswith("cli.commands."):
                found += [c for c in _load_settings_calls(imported, seen=seen) if c not in found]
    return found


def _settings_class(value: object, where: str) -> SettingsClass:
    if not (isinstance(value, type) and issubclass(value, BaseServiceSettings)):
        raise AssertionError(f"{where}: {value!r} is not a BaseServiceSettings class")
    return value

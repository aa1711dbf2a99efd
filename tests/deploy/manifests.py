"""Reading rendered manifests: the objects kustomize printed, their pods, containers and the
environment each container really gets (env, envFrom ConfigMaps, Secret references).

The rendering is always the upstream kustomize's (tools/dev_infra/kustomize.py); nothing here
renders or patches anything.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Obj = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def load(text: str) -> list[Obj]:
    """The objects of a rendered YAML stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def named(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)
    ]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = named(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS]


def pod_template(workload: Obj) -> Obj:
    """The pod template of a workload (a CronJob's is two levels down)."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Obj = spec["template"]
    return template


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = pod_template(workload)["spec"]
    return spec


def containers(workload: Obj, *, init: bool = True) -> list[Obj]:
    spec = pod_spec(workload)
    found = list(spec.get("containers", []))
    if init:
        found += spec.get("initContainers", [])
    return found


def pods(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container of every workload."""
    for workload in workloads(objects):
        for container in containers(workload):
            yield workload, container


def labels_of_pods(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = pod_template(workload).get("metadata", {}).get("labels", {})
    return labels


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions) selects ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def mutated(objects: list[Obj]) -> list[Obj]:
    """A deep copy to break in a negative test."""
    return copy.deepcopy(objects)


# --- The environment a container gets ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvSource:
    """Where one variable's value comes from."""

    kind: Literal["literal", "configmap", "secret", "field"]
    name: str = ""
    key: str = ""
    value: str | None = None
    optional: bool = False


@dataclass
class ContainerEnv:
    """The variables a container gets, by name, and what could not be resolved."""

    variables: dict[str, EnvSource] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        source = self.variables.get(name)
        return source.value if source else None


def container_env(container: Obj, objects: list[Obj]) -> ContainerEnv:
    """Resolve ``envFrom`` (in order, later wins) and then ``env`` (wins over envFrom), as the
    kubelet does, against the rendered ConfigMaps."""
    env = ContainerEnv()
    configmaps = {o["metadata"]["name"]: o for o in named(objects, "ConfigMap")}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            configmap = configmaps.get(name)
            if configmap is None:
                env.problems.append(f"envFrom ConfigMap {name} is not in the manifests")
                continue
            for key, value in configmap.get("data", {}).items():
                env.variables[prefix + key] = EnvSource("configmap", name, key, str(value))
        elif "secretRef" in source:
            env.problems.append(
                f"envFrom Secret {source['secretRef']['name']}: the variables it sets cannot be "
                "checked; reference each key with secretKeyRef"
            )
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env.variables[name] = EnvSource("literal", value=str(item["value"]))
            continue
        value_from = item.get("valueFrom", {})
        if "secretKeyRef" in value_from:
            ref_ = value_from["secretKeyRef"]
            env.variables[name] = EnvSource(
                "secret", ref_["name"], ref_["key"], optional=bool(ref_.get("optional", False))
            )
        elif "configMapKeyRef" in value_from:
            ref_ = value_from["configMapKeyRef"]
            data = configmaps.get(ref_["name"], {}).get("data", {})
            if ref_["key"] not in data:
                env.problems.append(f"{name}: ConfigMap {ref_['name']} has no key {ref_['key']}")
            env.variables[name] = EnvSource(
                "configmap", ref_["name"], ref_["key"], data.get(ref_["key"])
            )
        else:
            env.variables[name] = EnvSource("field")
    return env


def container_port(container: Obj, port: int | str) -> int | None:
    """A probe's or policy's port (a number or a container port name) as a number."""
    if isinstance(port, int):
        return port
    for item in container.get("ports", []):
        if item.get("name") == port:
            number: int = item["containerPort"]
            return number
    return None

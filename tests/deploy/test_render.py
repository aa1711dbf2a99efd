"""Every variant of deploy/k8s renders with the pinned upstream kustomize, and every rendered
object validates offline: Kubernetes kinds against the Kubernetes JSON schemas bundled by
kubernetes-validate (strict: unknown fields fail), for the oldest and the newest version
supported; the custom resources against strict structural schemas (tests/deploy/crd_schemas.py).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes_validate import utils as kv

from shared.errors import MissingToolError
from tests.deploy.conftest import Render
from tests.deploy.crd_schemas import SCHEMAS
from tests.deploy.manifests import Obj, containers, mutated, named, one, ref
from tools.dev_infra import kustomize

VERSIONS = ("1.31.0", kv.latest_version())
"""Kubernetes releases the manifests must be valid for: the oldest one supported and the newest
one kubernetes-validate knows."""

VARIANTS = list(kustomize.VARIANTS)


def problems_of(obj: Obj) -> list[str]:
    """Why ``obj`` is not a valid object of its kind (empty when it is)."""
    schema = SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{ref(obj)}: {e.json_path}: {e.message}" for e in validator.iter_errors(obj)]
    found = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kv.SchemaNotFoundError:
            return [f"{obj.get('apiVersion')} {obj.get('kind')}: no schema to validate it with"]
        except kv.ValidationError as exc:
            found.append(f"{ref(obj)} (Kubernetes {version}): {exc.message}")
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_against_its_schema(render: Render, variant: str) -> None:
    objects = render(variant)
    assert objects
    assert [p for obj in objects for p in problems_of(obj)] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_objects_are_unique_and_namespaced_by_the_overlay(render: Render, variant: str) -> None:
    objects = render(variant)
    keys = Counter(
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects
    )
    assert [k for k, n in keys.items() if n > 1] == []
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert len(namespaces) == 1
    assert None not in namespaces
    assert "default" not in namespaces


def test_kustomize_is_the_pinned_upstream_binary(kustomize_binary: Path) -> None:
    if os.environ.get(kustomize.OVERRIDE_VARIABLE):
        pytest.skip(f"{kustomize.OVERRIDE_VARIABLE} chose another binary")
    assert kustomize_binary == kustomize.binary_path()
    assert kustomize._version(kustomize_binary) == kustomize.KUSTOMIZE_VERSION


# --- The validation can fail


def test_an_unknown_field_fails_kubernetes_validation(render: Render) -> None:
    objects = mutated(render("prod"))
    deployment = one(objects, "Deployment", "autotask-sync-gateway")
    containers(deployment)[0]["livenessProbe"]["httpGett"] = {"path": "/healthz"}
    assert problems_of(deployment) != []


def test_a_wrong_type_fails_kubernetes_validation(render: Render) -> None:
    objects = mutated(render("prod"))
    hpa = named(objects, "HorizontalPodAutoscaler")[0]
    hpa["spec"]["maxReplicas"] = "twelve"
    assert problems_of(hpa) != []


@pytest.mark.parametrize(
    ("variant", "kind", "breakage"),
    [
        ("prod-kafka-topics", "KafkaTopic", ("spec", "partitions", "12")),
        ("prod-kafka-topics", "KafkaTopic", ("spec", "retention", "7d")),
        ("prod", "ServiceMonitor", ("spec", "endpoints", [{"port": "http", "interval": "30"}])),
        ("prod", "PrometheusRule", ("spec", "groups", [{"name": "g", "rules": [{"for": "5m"}]}])),
        ("prod-options", "ScaledObject", ("spec", "maxReplicaCount", "12")),
    ],
)
def test_a_broken_custom_resource_fails_its_schema(
    render: Render, variant: str, kind: str, breakage: tuple[str, str, object]
) -> None:
    obj = mutated(named(render(variant), kind))[0]
    section, key, value = breakage
    obj[section][key] = value
    assert problems_of(obj) != []


def test_a_kind_without_a_schema_is_a_failure() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert problems_of(unknown) == ["example.com/v1 Widget: no schema to validate it with"]


# --- Installing kustomize -------------------------------------------------------------------------


def _fake_go(folder: Path, version: str) -> Path:
    go = folder / "go"
    go.write_text(f"#!/bin/sh\necho 'go version go{version} linux/amd64'\n")
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return go


def test_without_a_new_enough_go_the_installer_says_what_to_install(tmp_path: Path) -> None:
    old = _fake_go(tmp_path, "1.19.8")
    with pytest.raises(MissingToolError) as caught:
        kustomize.find_go([old, tmp_path / "missing" / "go"])
    message = str(caught.value)
    assert "Go >= 1.22.7" in message
    assert "golang" in message
    assert "1.19.8" in message


def test_the_installer_takes_the_first_go_that_is_new_enough(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old, new = _fake_go(tmp_path / "a", "1.21.0"), _fake_go(tmp_path / "b", "1.26.8")
    assert kustomize.find_go([old, new]) == new

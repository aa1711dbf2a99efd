"""The pinned upstream Kustomize, built from the Go module proxy into a cache folder.

``python -m tools kustomize install`` builds ``sigs.k8s.io/kustomize/kustomize/v5`` at
:data:`KUSTOMIZE_VERSION` with ``go install`` into ``<cache>/bin/kustomize-<version>/`` (the cache
is ``$AUTOTASK_SYNC_CACHE_DIR`` or ``~/.cache/autotask-sync``) and prints its path; ``build`` and
``render`` run it over ``deploy/k8s``; ``topics`` writes the Strimzi KafkaTopic resources from the
code's topic declarations. The deployment tests and ``make lint`` (which scans the
rendered manifests) install it the same way on first use. Nothing here renders manifests itself:
every rendering is the upstream binary's.

``AUTOTASK_SYNC_KUSTOMIZE`` may name an existing kustomize v5 binary to use instead.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from shared.errors import InfrastructureError, MissingToolError
from tools.dev_infra.maven import cache_root

KUSTOMIZE_VERSION = "v5.7.1"
"""Pinned kustomize. Its go.mod asks for Go 1.22.7, so current Go (1.26) and Debian 12's
bookworm-backports golang-1.23 both build it (v5.8.1 needs Go 1.24, v5.8.2 Go 1.26)."""
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
GO_NEEDED = (1, 22, 7)
"""The ``go`` directive of that version's go.mod."""
OVERRIDE_VARIABLE = "AUTOTASK_SYNC_KUSTOMIZE"

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"

_INSTALL_GO = (
    "Go >= {need} (`apt-get install golang-go` where Debian's is new enough, or "
    "golang-1.23-go from bookworm-backports; .ci/run does this), or point "
    f"{OVERRIDE_VARIABLE} at a kustomize v5 binary"
)
_GO_VERSION = re.compile(r"\bgo(\d+)\.(\d+)(?:\.(\d+))?\b")


@dataclass(frozen=True, slots=True)
class Variant:
    """One rendering of deploy/k8s: an overlay, optionally with extra components."""

    overlay: str
    components: tuple[str, ...] = ()


VARIANTS: dict[str, Variant] = {
    "dev": Variant("overlays/dev"),
    "prod": Variant("overlays/prod"),
    "dev-kafka-topics": Variant("overlays/dev/kafka-topics"),
    "prod-kafka-topics": Variant("overlays/prod/kafka-topics"),
    # The optional parts (KEDA autoscaling, sweeps as CronJobs) on top of prod.
    "prod-options": Variant(
        "overlays/prod", ("components/keda-worker", "components/reconciler-cronjobs")
    ),
    "prod-reconciler": Variant("overlays/prod", ("components/reconciler-service",)),
    # KEDA reading the lag of a Kafka reached over SASL_SSL.
    "prod-kafka-auth": Variant(
        "overlays/prod", ("components/keda-worker", "components/keda-worker-kafka-auth")
    ),
}
"""What the tests validate and the scanner scans: every overlay and every optional component."""


def binary_path(cache_dir: Path | None = None) -> Path:
    """Where the pinned kustomize lives once built (one folder per version)."""
    return (cache_dir or cache_root()) / "bin" / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"


def ensure_kustomize(cache_dir: Path | None = None) -> Path:
    """The kustomize binary to use, building the pinned one on first use."""
    override = os.environ.get(OVERRIDE_VARIABLE)
    if override:
        path = Path(override)
        if not _reports_v5(path):
            raise MissingToolError(f"{OVERRIDE_VARIABLE}={override} is not a kustomize v5 binary")
        return path
    target = binary_path(cache_dir)
    if target.is_file() and _version(target) == KUSTOMIZE_VERSION:
        return target
    go = find_go()
    target.parent.mkdir(parents=True, exist_ok=True)
    log = target.parent / "go-install.log"
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        env = {
            **os.environ,
            "GOBIN": gobin,
            "GOTOOLCHAIN": "local",  # never fetch another Go: fail with the hint instead
            "CGO_ENABLED": "0",
            "GOFLAGS": "-mod=mod",
        }
        with log.open("wb") as out:
            result = subprocess.run(
                [str(go), "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                cwd=gobin,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=1200,
            )
        built = Path(gobin) / "kustomize"
        if result.returncode != 0 or not built.is_file():
            raise InfrastructureError(
                f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` failed (see {log}); it "
                "needs the Go module proxy"
            )
        os.replace(built, target)
    if _version(target) != KUSTOMIZE_VERSION:
        raise InfrastructureError(f"{target} does not report {KUSTOMIZE_VERSION}")
    return target


def go_candidates() -> list[Path]:
    """Where a Go toolchain may be: PATH first, then the official tarball's and Debian's homes."""
    candidates = [Path(p) for p in [shutil.which("go")] if p]
    candidates.append(Path("/usr/local/go/bin/go"))
    candidates += sorted(Path("/usr/lib").glob("go-1.*/bin/go"), key=_go_dir_key, reverse=True)
    return candidates


def find_go(candidates: list[Path] | None = None) -> Path:
    """A Go toolchain new enough for the pinned kustomize, or a MissingToolError saying how to
    get one."""
    need = ".".join(map(str, GO_NEEDED))
    candidates = go_candidates() if candidates is None else candidates
    seen: list[str] = []
    for go in candidates:
        if not (go.is_file() and os.access(go, os.X_OK)):
            continue
        version = _go_version(go)
        if version is not None and version >= GO_NEEDED:
            return go
        seen.append(f"{go} ({'.'.join(map(str, version)) if version else 'unknown'})")
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise MissingToolError(
        f"building kustomize {KUSTOMIZE_VERSION} needs {_INSTALL_GO.format(need=need)}{found}"
    )


def build(directory: Path, kustomize: Path | None = None) -> str:
    """``kustomize build directory``: the rendered YAML stream."""
    binary = kustomize or ensure_kustomize()
    result = subprocess.run(
        [str(binary), "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise InfrastructureError(f"kustomize build {directory} failed:\n{result.stderr.strip()}")
    return result.stdout


def build_variant(
    variant: Variant, kustomize: Path | None = None, *, deploy_dir: Path = DEPLOY
) -> str:
    """Render ``variant``. Extra components are added the way a user would add them, to the
    overlay's own ``components:`` (so its namespace and image settings apply to them too), in a
    scratch copy of ``deploy_dir``."""
    if not variant.components:
        return build(deploy_dir / variant.overlay, kustomize)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / deploy_dir.name
        shutil.copytree(deploy_dir, copy)
        overlay = copy / variant.overlay
        kustomization = overlay / "kustomization.yaml"
        data = yaml.safe_load(kustomization.read_text())
        data.setdefault("components", []).extend(
            os.path.relpath(copy / component, overlay) for component in variant.components
        )
        kustomization.write_text(yaml.safe_dump(data, sort_keys=False))
        return build(overlay, kustomize)


def render(out_dir: Path, kustomize: Path | None = None) -> dict[str, Path]:
    """Write every variant to ``out_dir/<name>.yaml``; returns the files by variant name."""
    binary = kustomize or ensure_kustomize()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.yaml"):
        stale.unlink()
    written = {}
    for name, variant in VARIANTS.items():
        path = out_dir / f"{name}.yaml"
        path.write_text(build_variant(variant, binary))
        written[name] = path
    return written


TOPICS_FILE = DEPLOY / "kafka-topics" / "topics.yaml"
_TOPICS_HEADER = """\
# Every topic the services declare (shared/messages/topics.py, `autotask-sync topics list`), as
# Strimzi KafkaTopic resources. Written by `python -m tools kustomize topics` from the code: do not
# edit by hand. Overlays set the namespace (the one the topic operator watches), the
# strimzi.io/cluster label and the replicas; tests/deploy checks the result against the code.
"""


def kafka_topics_yaml() -> str:
    """The KafkaTopic resources for the code's topic declarations (default prefix and
    partitions; the replication factor is left to the overlays)."""
    from shared.messages.topics import Topics

    documents = [spec.kafka_topic(cluster="kafka") for spec in Topics().declarations()]
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
    return _TOPICS_HEADER + body


def _version(binary: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, check=False, timeout=30
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _reports_v5(binary: Path) -> bool:
    version = _version(binary) or ""
    return bool(re.search(r"\bv5\.\d+", version))


def _go_version(go: Path) -> tuple[int, int, int] | None:
    try:
        result = subprocess.run(
            [str(go), "version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        )
    except OSError:
        return None
    match = _GO_VERSION.search(result.stdout)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def _go_dir_key(path: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", path.parent.parent.name)
    return tuple(int(d) for d in digits)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("install", help=f"build kustomize {KUSTOMIZE_VERSION}; print its path")
    build_parser = actions.add_parser("build", help="render one variant (or directory) to stdout")
    build_parser.add_argument("target", help=f"a variant ({', '.join(VARIANTS)}) or a directory")
    render_parser = actions.add_parser("render", help="write every variant to a folder")
    render_parser.add_argument("--out", type=Path, default=ROOT / "build" / "k8s")
    actions.add_parser(
        "topics", help=f"write {TOPICS_FILE.relative_to(ROOT)} from the code's topic declarations"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        print(ensure_kustomize())
        return 0
    if args.action == "build":
        variant = VARIANTS.get(args.target)
        sys.stdout.write(build_variant(variant) if variant else build(Path(args.target)))
        return 0
    if args.action == "topics":
        TOPICS_FILE.write_text(kafka_topics_yaml())
        print(f"wrote {TOPICS_FILE.relative_to(ROOT)}")
        return 0
    for name, path in render(args.out).items():
        print(f"{name}: {path}")
    return 0


__all__ = [
    "KUSTOMIZE_VERSION",
    "VARIANTS",
    "Variant",
    "build",
    "build_variant",
    "ensure_kustomize",
    "find_go",
    "kafka_topics_yaml",
    "render",
]

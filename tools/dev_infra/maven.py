"""Jars from Maven Central, resolved by Maven into a cache folder outside the repository.

The local Kafka broker and the Kafka Connect worker run from jars, not from a distribution
download (docs/adr/0001-local-kafka-from-maven-jars.md): a small POM names what to run, Maven's
``copy-dependencies`` puts it and its runtime dependencies into one folder, and a marker file
records that the folder is complete, so later runs use it without asking Maven anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from shared.errors import InfrastructureError
from tools.dev_infra.processes import require_tool

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_INSTALL_MAVEN = "Apache Maven, e.g. `apt-get install maven`"


def cache_root() -> Path:
    """Where downloads are cached: ``$AUTOTASK_SYNC_CACHE_DIR`` or ``~/.cache/autotask-sync``."""
    configured = os.environ.get("AUTOTASK_SYNC_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autotask-sync"


def dependency(
    group: str, artifact: str, version: str, *, exclusions: Iterable[tuple[str, str]] = ()
) -> str:
    """A POM ``<dependency>`` element; ``exclusions`` are (group, artifact) pairs, ``*`` allowed."""
    excluded = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>"
        for g, a in exclusions
    )
    return (
        f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version>"
        + (f"<exclusions>{excluded}</exclusions>" if excluded else "")
        + "</dependency>"
    )


def pom(
    artifact: str, version: str, dependencies: Iterable[str], *, managed: Iterable[str] = ()
) -> str:
    """A POM naming what to fetch: its ``dependencies`` (:func:`dependency` elements), with the
    versions of transitive ones pinned by ``managed``."""
    management = "".join(managed)
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        f"  <groupId>local.autotask-sync</groupId><artifactId>{artifact}</artifactId>\n"
        f"  <version>{version}</version><packaging>pom</packaging>\n"
        + (
            f"  <dependencyManagement><dependencies>{management}</dependencies>"
            "</dependencyManagement>\n"
            if management
            else ""
        )
        + f"  <dependencies>{''.join(dependencies)}</dependencies>\n"
        "</project>\n"
    )


def copy_dependencies(
    folder: Path,
    pom: str,
    *,
    expect: str,
    what: str,
    advice: str = "check network access to Maven Central",
) -> Path:
    """``folder/lib`` holding every runtime jar ``pom`` depends on, fetched on first use.

    ``expect`` is a glob that must match in the result (the main jar): Maven can succeed and
    still copy nothing useful. ``what`` names the download and ``advice`` the way out in the
    error."""
    jar_dir = folder / "lib"
    done_marker = folder / ".complete"
    if done_marker.exists():
        return jar_dir
    mvn = require_tool("mvn", [], _INSTALL_MAVEN)
    folder.mkdir(parents=True, exist_ok=True)
    pom_file = folder / "pom.xml"
    pom_file.write_text(pom)
    log = folder / "maven.log"
    with log.open("wb") as out:
        result = subprocess.run(
            [
                str(mvn),
                "-B",
                "-q",
                "-f",
                str(pom_file),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={jar_dir}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=900,
        )
    if result.returncode != 0 or not any(jar_dir.glob(expect)):
        raise InfrastructureError(
            f"Maven could not fetch {what} from Maven Central (see {log}); {advice}"
        )
    done_marker.write_text(what)
    return jar_dir

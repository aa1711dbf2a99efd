"""The Dockerfile and .dockerignore, checked without a Docker engine: a small parser of
instructions (continuations, stages, ARG defaults) and the rules the image must keep."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy import codebase
from tests.deploy.conftest import Render
from tests.deploy.manifests import pod_spec, pods

ROOT = codebase.ROOT
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

BUILD_TOOLS = {"uv", "uvx", "pip", "pip3", "gcc", "cc", "make", "apt-get", "apt", "apk", "poetry"}
MUST_STAY_OUT = [
    ".git",
    ".venv",
    "tests",
    "tools",
    "bench/results",
    "bench",
    "build",
    "deploy",
    "docs",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "shared/__pycache__/settings.cpython-311.pyc",
]
OCI_LABELS = ("title", "description", "version", "revision", "licenses")


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    def flags(self) -> dict[str, str]:
        return dict(re.findall(r"--([\w-]+)=(\S+)", self.arguments))

    def words(self) -> list[str]:
        """The arguments without --flags, exec (JSON) form or shell form."""
        text = re.sub(r"^(\s*--[\w-]+=\S+\s+)+", "", self.arguments).strip()
        if text.startswith("["):
            return [w.strip().strip('"') for w in text.strip("[]").split(",")]
        return shlex.split(text)


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, ARG references in FROM resolved."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        instruction = Instruction(keyword.upper(), rest.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.words()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(image, name))
        elif not stages and instruction.keyword == "ARG":
            key, _, default = instruction.arguments.partition("=")
            args[key.strip()] = default.strip()
        elif stages:
            stages[-1].instructions.append(instruction)
    return args, stages


# --- .dockerignore


def _pattern(pattern: str) -> re.Pattern[str]:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + "$")


def ignored(path: str, dockerignore: str) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern wins, and a
    pattern that matches a folder matches everything under it (Docker's rules)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in dockerignore.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = _pattern(line.lstrip("!").strip("/"))
        if any(pattern.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


# --- The rules -----------------------------------------------------------------------------------


def _commands(run: Instruction) -> list[list[str]]:
    text = re.sub(r"^(\s*--[\w-]+=\S+\s+)+", "", run.arguments)
    return [shlex.split(part) for part in re.split(r"&&|\|\||;|\|", text) if part.strip()]


def problems(dockerfile: str, dockerignore: str) -> list[str]:
    found = []
    _, stages = parse(dockerfile)
    names = [s.name for s in stages]
    if len(stages) < 2:
        return ["not a multi-stage build"]
    final = stages[-1]
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    allowed_sources = {"pyproject.toml", "uv.lock", PYPROJECT["project"]["readme"], *wheel}
    copied_product = False
    dependencies_first = False
    compiled = False
    for stage in stages:
        for instruction in stage.instructions:
            flags = instruction.flags()
            sources: list[str] = []
            if instruction.keyword in ("COPY", "ADD") and "from" not in flags:
                sources = instruction.words()[:-1]
            if instruction.keyword == "RUN":
                for mount in re.findall(r"--mount=(\S+)", instruction.arguments):
                    options = dict(o.split("=", 1) for o in mount.split(",") if "=" in o)
                    if options.get("type") == "bind" and "from" not in options:
                        sources.append(options.get("source", "."))
            for source in sources:
                where = f"line {instruction.line}: {source}"
                if not (ROOT / source).exists():
                    found.append(f"{where} does not exist")
                elif ignored(source, dockerignore):
                    found.append(f"{where} is excluded by .dockerignore")
                if source.rstrip("/") not in allowed_sources:
                    found.append(f"{where} is not part of the product's wheel")
                if source.rstrip("/") in wheel:
                    copied_product = True
            if instruction.keyword == "COPY" and "from" in flags:
                origin = flags["from"]
                if origin not in names[: names.index(stage.name)] and "/" not in origin:
                    found.append(f"line {instruction.line}: COPY --from={origin} names no stage")
            if instruction.keyword == "RUN":
                for words in _commands(instruction):
                    if words[:2] == ["uv", "sync"]:
                        if "--no-install-project" in words and not copied_product:
                            dependencies_first = True
                        for needed in ("--locked", "--no-dev"):
                            if needed not in words:
                                found.append(f"line {instruction.line}: uv sync without {needed}")
                        if "--no-install-project" not in words and "--no-editable" not in words:
                            found.append(
                                f"line {instruction.line}: the product is installed editable"
                            )
                    if "--compile-bytecode" in words or words[:3] == ["python", "-m", "compileall"]:
                        compiled = compiled or stage is not final
            if instruction.keyword == "ENV" and "UV_COMPILE_BYTECODE=1" in instruction.arguments:
                compiled = compiled or stage is not final
    if not dependencies_first:
        found.append("no dependencies-only layer (uv sync --no-install-project) before the source")
    if not compiled:
        found.append("bytecode is not compiled at build time")
    for instruction in final.instructions:
        if instruction.keyword == "RUN":
            for words in _commands(instruction):
                if words and words[0] in BUILD_TOOLS:
                    found.append(f"line {instruction.line}: the final stage runs {words[0]}")
        if instruction.keyword == "COPY" and instruction.flags().get("from") == stages[0].name:
            found.append(f"line {instruction.line}: the final stage copies in {stages[0].name}")
    removes_pip = any(
        words[:1] == ["rm"] and any("site-packages/pip" in w for w in words)
        for run in final.all("RUN")
        for words in _commands(run)
    )
    if not removes_pip:
        found.append("the final stage keeps the base image's pip")
    users = final.all("USER")
    user = users[-1].words()[0] if users else ""
    uid = user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        found.append(f"the final stage's USER {user!r} is not a numeric non-root uid")
    labels = dict(
        re.findall(
            r'(org\.opencontainers\.image\.[\w.]+)="([^"]*)"',
            " ".join(i.arguments for i in final.all("LABEL")),
        )
    )
    for label in OCI_LABELS:
        if f"org.opencontainers.image.{label}" not in labels:
            found.append(f"no org.opencontainers.image.{label} label")
    if labels.get("org.opencontainers.image.licenses") != PYPROJECT["project"]["license"]["text"]:
        found.append("the licenses label is not pyproject.toml's license")
    version_args = [i for i in final.all("ARG") if i.arguments.startswith("VERSION=")]
    if [a.arguments.split("=", 1)[1] for a in version_args] != [PYPROJECT["project"]["version"]]:
        found.append("ARG VERSION does not default to pyproject.toml's version")
    if final.all("ENTRYPOINT"):
        found.append("an ENTRYPOINT would stand in front of both `python -m` and autotask-sync")
    environment = " ".join(i.arguments for i in final.all("ENV"))
    venvs = {
        m for s in stages[:-1] for i in s.all("ENV")
        for m in re.findall(r"UV_PROJECT_ENVIRONMENT=(\S+)", i.arguments)
    }  # fmt: skip
    if len(venvs) != 1:
        found.append("no single UV_PROJECT_ENVIRONMENT in the build stage")
    else:
        venv = venvs.pop()
        copied = [i for i in final.all("COPY") if i.words()[:1] == [venv]]
        if not copied:
            found.append(f"the final stage does not copy {venv}")
        if not re.search(rf'PATH="?{re.escape(venv)}/bin:', environment):
            found.append(f"{venv}/bin (python, autotask-sync) is not first on PATH")
    images = {s.image for s in stages[1:]}
    if len(images) != 1:
        found.append(f"build and runtime use different Python images {sorted(images)}")
    for stage in stages:
        tag = stage.image.rsplit("/", 1)[-1].partition(":")[2]
        if stage.image not in names and not re.match(r"\d+\.\d+", tag):
            found.append(f"{stage.image} is not pinned to a versioned tag")
    cmd = final.all("CMD")
    if not cmd or not cmd[-1].arguments.startswith("["):
        found.append("CMD is not in exec form")
    return found


def test_the_dockerfile_keeps_every_rule() -> None:
    assert problems(DOCKERFILE.read_text(), DOCKERIGNORE.read_text()) == []


def test_the_build_context_leaves_out_what_the_image_never_needs() -> None:
    dockerignore = DOCKERIGNORE.read_text()
    assert [p for p in MUST_STAY_OUT if not ignored(p, dockerignore)] == []
    assert not ignored("shared/settings.py", dockerignore)
    assert not ignored("shared/db/migrations/0001_state_tables.sql", dockerignore)


def test_both_entry_points_exist_in_what_the_image_installs() -> None:
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert PYPROJECT["project"]["scripts"]["autotask-sync"] == "cli.main:main"
    assert "cli" in wheel
    assert "services" in wheel
    assert codebase.service_names()
    assert "tools" not in wheel


def test_the_manifests_run_as_the_image_user(render: Render) -> None:
    _, stages = parse(DOCKERFILE.read_text())
    user, _, group = stages[-1].all("USER")[-1].words()[0].partition(":")
    for workload, container in pods(render("prod")):
        pod = pod_spec(workload).get("securityContext", {})
        sc = {**pod, **container.get("securityContext", {})}
        assert str(sc["runAsUser"]) == user, workload["metadata"]["name"]
        assert str(sc["runAsGroup"]) == group, workload["metadata"]["name"]


# --- Each rule can fail ---------------------------------------------------------------------------

BREAKAGES: dict[str, tuple[str, str] | list[tuple[str, str]]] = {
    "root user": ("USER 10001:10001", "USER root"),
    "named user": ("USER 10001:10001", "USER autotask-sync"),
    "no bytecode": [("--compile-bytecode", ""), ("UV_COMPILE_BYTECODE=1", "UV_NO_CACHE=1")],
    "editable install": (
        "uv sync --locked --no-dev --no-editable --compile-bytecode",
        "uv sync --locked --no-dev",
    ),
    "unlocked": (
        "uv sync --locked --no-dev --no-install-project",
        "uv sync --no-dev --no-install-project",
    ),
    "tools copied": ("COPY cli ./cli", "COPY cli ./cli\nCOPY tools ./tools"),
    "missing source": ("COPY cli ./cli", "COPY cli ./cli\nCOPY missing.txt ./"),
    "source before dependencies": (
        "COPY pyproject.toml uv.lock ./",
        "COPY pyproject.toml uv.lock ./\nCOPY shared ./shared",
    ),
    "pip in the final stage": (
        "COPY --from=build /opt",
        "RUN pip install requests\nCOPY --from=build /opt",
    ),
    "uv in the final stage": (
        "COPY --from=build /opt",
        "COPY --from=uv /uv /usr/local/bin/uv\nCOPY --from=build /opt",
    ),
    "pip kept": ("site-packages/pip", "site-packages/other"),
    "no OCI version label": ('org.opencontainers.image.version="${VERSION}"', 'x.version="1"'),
    "entrypoint": (
        'CMD ["autotask-sync", "--help"]',
        'ENTRYPOINT ["autotask-sync"]\nCMD ["--help"]',
    ),
    "venv off PATH": ('PATH="/opt/autotask-sync/bin:${PATH}"', 'PATH="${PATH}"'),
    "unpinned base": ("ARG PYTHON_VERSION=3.12", "ARG PYTHON_VERSION=latest"),
    "single stage": ("FROM python:${PYTHON_VERSION}-slim-trixie AS runtime", ""),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_dockerfile_rule_catches_a_breakage(breakage: str) -> None:
    replacements = BREAKAGES[breakage]
    broken = DOCKERFILE.read_text()
    for old, new in replacements if isinstance(replacements, list) else [replacements]:
        assert old in broken, f"the breakage {breakage!r} no longer applies to the Dockerfile"
        broken = broken.replace(old, new)
    if breakage == "single stage":
        broken = re.sub(r"(?s)FROM ghcr.*?AS uv\n", "", broken)
        broken = re.sub(r"(?s)# --- runtime.*", "", broken)
    assert problems(broken, DOCKERIGNORE.read_text()) != []


def test_the_context_rule_catches_a_copied_folder_left_out() -> None:
    dockerignore = DOCKERIGNORE.read_text().replace("!services/", "")
    assert problems(DOCKERFILE.read_text(), dockerignore) != []


def test_dockerignore_matching_follows_dockers_rules() -> None:
    rules = "*\n!src/\nsrc/**/*.tmp\n**/__pycache__\n"
    assert ignored("README.md", rules)
    assert not ignored("src/a.py", rules)
    assert ignored("src/deep/x.tmp", rules)
    assert ignored("src/pkg/__pycache__/a.pyc", rules)
    assert not ignored("x", "")


def test_the_parser_joins_continuations_and_resolves_from_arguments() -> None:
    args, stages = parse("ARG V=3\nFROM img:${V} AS a\nRUN a \\\n  # note\n  && b\nFROM a\n")
    assert args == {"V": "3"}
    assert [(s.image, s.name) for s in stages] == [("img:3", "a"), ("a", "1")]
    assert stages[0].all("RUN")[0].arguments == "a  && b"


def test_readme_exists_for_the_wheel_build() -> None:
    assert (ROOT / PYPROJECT["project"]["readme"]).is_file()
    assert isinstance(Path(PYPROJECT["project"]["readme"]), Path)


# --- The build stage, run as written (without Docker) ---------------------------------------------


def _context_files(dockerignore: str) -> list[str]:
    """What the build context holds: every file of the repository .dockerignore lets through
    (a folder is skipped whole when it is left out and no ``!`` pattern reaches into it)."""
    reincluded = [
        line.strip()[1:].strip("/") for line in dockerignore.splitlines() if line.startswith("!")
    ]

    def may_hold_files(relative: str) -> bool:
        return not ignored(relative, dockerignore) or any(
            r == relative or r.startswith(relative + "/") for r in reincluded
        )

    files = []
    for folder, subfolders, names in os.walk(ROOT):
        base = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else base + "/"
        subfolders[:] = [d for d in subfolders if d != ".git" and may_hold_files(prefix + d)]
        files += [prefix + n for n in names if not ignored(prefix + n, dockerignore)]
    return files


def test_the_build_stage_gives_working_entry_points_without_tools(tmp_path: Path) -> None:
    """Run the build stage's RUN commands, with its ENV, against a copy of the build context
    (the virtual environment redirected into tmp_path, this machine's Python instead of the
    image's): both entry points start, the wheel holds no tools/ and no dev dependencies, and
    the bytecode is compiled."""
    _, stages = parse(DOCKERFILE.read_text())
    build = stages[-2]
    context = tmp_path / "context"
    for relative in _context_files(DOCKERIGNORE.read_text()):
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    for instruction in build.all("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", instruction.arguments):
            env[key] = value
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    env["UV_PYTHON"] = sys.executable
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    runs = [w for i in build.all("RUN") for w in _commands(i)]
    assert runs, "the build stage runs nothing"
    for words in runs:
        command = [uv if words[0] == "uv" else words[0], *words[1:]]
        result = subprocess.run(
            command, cwd=context, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, f"{' '.join(words)}:\n{result.stderr[-2000:]}"
    run_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    cli = subprocess.run(
        ["autotask-sync", "--help"], env=run_env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    for name in codebase.service_names():
        # A malformed setting stops a service before it opens anything: proof that the module
        # entry point loads from the installed wheel, without starting it.
        started = subprocess.run(
            ["python", "-m", f"services.{name}"],
            env={**run_env, "AUTOTASK_SYNC_HTTP_PORT": "not-a-port"},
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert started.returncode == 2, (name, started.stderr)
        assert "AUTOTASK_SYNC_HTTP_PORT" in started.stderr
    probe = subprocess.run(
        ["python", "-c", "import importlib.util as u; "
         "print(u.find_spec('tools') is None, u.find_spec('pytest') is None)"],
        env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.stdout.split() == ["True", "True"], probe.stderr
    site = next(venv.glob("lib/python*/site-packages"))
    assert list((site / "shared" / "db" / "migrations").glob("*.sql"))
    assert list((site / "shared" / "__pycache__").glob("settings.*.pyc"))

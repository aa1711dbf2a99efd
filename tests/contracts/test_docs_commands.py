"""Every command the documentation shows runs as written.

``tests/helpers/doc_commands.py`` reads the commands from README.md, docs/*.md (not the decision
records), deploy/README.md and tools/autotask_sim/README.md, and says how each is checked:
parsed by its program's real parser and its ``--help`` run (``autotask-sync``, ``python -m
tools``, the demo), ``--help`` run as a process (the services, other modules), ``make -n``
(targets) and the Makefile's variables, the paths given to pytest and kubectl, the workloads
kubectl names. What cannot run here (a cluster, Docker) is listed in ``NOT_RUN_HERE`` with the
reason. The commands safe to run are also run for real against the local stack and a simulated
tenant (:data:`RUN_HERE`). A failure names each command by file and line.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from cli.main import PROG
from shared.secrets import SecretBox
from tests.deploy.codebase import ROOT
from tests.helpers.doc_commands import (
    SAMPLE_CONNECTION,
    Help,
    Invocation,
    ParseError,
    Written,
    documents,
    help_of,
    invocations,
    modules_run_for_help,
    parse,
    problems,
    written_commands,
)
from tests.helpers.pipeline import create_topics
from tests.helpers.processes import run_cli
from tests.helpers.tenants import small_tenant, store_connection, tenants
from tests.helpers.waiting import eventually
from tools.autotask_sim import Simulator

RUN_HERE: dict[tuple[str, ...], frozenset[int]] = {
    ("migrate",): frozenset({0}),
    ("topics", "list"): frozenset({0}),
    ("topics", "ensure"): frozenset({0}),
    ("status",): frozenset({0, 1}),  # healthy, or degraded: no worker consumes here
    ("connections", "list"): frozenset({0}),
    ("connections", "show"): frozenset({0}),
    ("connections", "test"): frozenset({0}),
    ("connections", "generate-key"): frozenset({0}),
    ("test-connection",): frozenset({0}),
    ("companies", "list"): frozenset({0}),
    ("dlq", "list"): frozenset({0}),
    ("spool", "list"): frozenset({0}),
    ("provision", "status"): frozenset({0}),
    ("provision", "plan"): frozenset({0}),
}
"""``autotask-sync`` commands run for real (by their first words), with the exit codes that say
they did their job. They read, or do again what the set-up did (``migrate``, ``topics
ensure``), quickly. The others change the tenant or the mirror, prompt for secrets or run for
long: they are parsed, and their ``--help`` run, only."""

ENVIRONMENT_CONNECTION = "AUTOTASK_SYNC_AUTOTASK_"
"""The environment connection's variables, named in the prose around a command ("set ... and
run", "a single-tenant set-up, configured by AUTOTASK_SYNC_AUTOTASK_*"): the command runs with
the environment connection configured too, as the text says."""

RUN_DEADLINE = timedelta(seconds=60)
OUTPUT_SHOWN = 8
"""Lines of a failed command's output the report shows (its end: the error and its fix)."""
KEY = SecretBox.generate_key()


def _all_invocations() -> list[Invocation]:
    return [i for doc in documents() for w in written_commands(doc) for i in invocations(w)]


def _report(found: list[Invocation], helps: Mapping[str, Help]) -> list[str]:
    """One line per problem: where the command is written, the command, what is wrong."""
    return [
        f"{i.written.where}: `{i.written.text}`: {problem}"
        for i in found
        for problem in problems(i, helps)
    ]


def _read(document: Path) -> list[Invocation]:
    return [i for w in written_commands(document) for i in invocations(w)]


@pytest.fixture(scope="module")
async def helps() -> Mapping[str, Help]:
    """``python -m MODULE --help`` of every module the docs run without a parser here, all at
    once (a service that starts instead of answering costs the deadline once, not per doc)."""
    return await help_of(modules_run_for_help(_all_invocations()))


# --- The documents ------------------------------------------------------------------------------


def test_the_docs_show_commands_of_every_kind() -> None:
    programs = {i.program for i in _all_invocations()}
    expected = {PROG, "python -m tools", "python -m tools.demo", "make", "pytest", "kubectl"}
    assert expected <= programs
    assert any(p.startswith("python -m services.") for p in programs)


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_command_runs_as_written(document: Path, helps: Mapping[str, Help]) -> None:
    report = _report(_read(document), helps)
    assert not report, "\n".join(report)


# --- The checks catch what is wrong -------------------------------------------------------------


def test_a_wrong_command_in_a_copy_of_the_readme_is_reported_with_its_line(
    tmp_path: Path, helps: Mapping[str, Help]
) -> None:
    copy = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", copy)
    text = copy.read_text()
    wrong = {
        "autotask-sync dlq list ": "autotask-sync dlq lisst ",
        "--rate 20": "--rate fast",
        "`make bench`": "`make benchmark`",
    }
    for right, mistake in wrong.items():
        assert right in text
        text = text.replace(right, mistake, 1)
    copy.write_text(text)
    lines = text.splitlines()
    expected = {
        f"{copy}:{next(n for n, line in enumerate(lines, 1) if mistake in line)}"
        for mistake in wrong.values()
    }
    report = _report(_read(copy), helps)
    assert {line.split(": ")[0] for line in report} == expected, "\n".join(report)


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        ("`autotask-sync status --colour`", "has no option --colour"),
        ("```bash\nautotask-sync connections purge acme\n```", "has no sub-command 'purge'"),
        ("Run `connections purge` first.", "has no sub-command 'purge'"),
        ("```bash\nautotask-sync connections add\n```", "arguments are required: name"),
        ('`make demo DEMO_ARGS="--scale medium"`', "'medium' is not one of"),
        ('`make demo DEMO_ARGS="--rate 1"` (`--scale medium`)', "'medium' is not one of"),
        ("`python -m tools simulator [--ports 1]`", "has no option --ports"),
        ("`make tests`", "the Makefile has no target 'tests'"),
        ("`make test PYTEST_ARG=tests/cli`", "the Makefile never reads PYTEST_ARG"),
        ('`make test PYTEST_ARGS="tests/nowhere.py"`', "tests/nowhere.py does not exist"),
        ("`uv run pytest tests/nowhere.py -k x`", "tests/nowhere.py does not exist"),
        ("`kubectl apply -k deploy/k8s/overlays/staging`", "is not a kustomize directory"),
        ("`kubectl rollout restart deployment/gateway`", "no Deployment 'gateway'"),
        (
            "```bash\nkubectl exec deploy/autotask-sync-worker -- autotask-sync sweep --every\n```",
            "autotask-sync sweep has no option --every",
        ),
        ("```bash\nKEY=$(autotask-sync connections make-key)\n```", "no sub-command 'make-key'"),
        ("`uv run python -m tools.nothing`", "no such module to run"),
        ("```bash\nterraform apply\n```", "no check knows `terraform`"),
    ],
)
async def test_each_kind_of_mistake_is_reported(
    markdown: str, problem: str, tmp_path: Path
) -> None:
    document = tmp_path / "doc.md"
    document.write_text(f"# A document\n\n{markdown}\n")
    found = _read(document)
    report = _report(found, await help_of(modules_run_for_help(found)))
    line = 4 if markdown.startswith("```") else 3  # a code block's command is on its 2nd line
    assert len(report) == 1, report
    assert report[0].startswith(f"{document}:{line}: ")
    assert problem in report[0]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (Help(None, ""), "`python -m services.sync_worker --help` was still running after 20 s"),
        (Help(2, "usage: ...\nerror: unrecognized arguments: --x"), "exits 2: error: unrecog"),
        (Help(0, "usage: sync_worker [-h]"), "names no option --x"),
    ],
)
def test_a_module_that_does_not_describe_itself_is_reported(answer: Help, problem: str) -> None:
    written = Written(ROOT / "doc.md", 1, "python -m services.sync_worker --x", in_prose=True)
    invocation = Invocation(written, "python -m services.sync_worker", ("--x",), False)
    found = problems(invocation, {"services.sync_worker": answer})
    assert len(found) == 1, found
    assert problem in found[0]


def test_commands_are_read_as_the_docs_write_them(tmp_path: Path) -> None:
    scope = '{"companies": {"company_ids": [0]}}'  # written over two lines below
    document = tmp_path / "doc.md"
    document.write_text(
        "```bash\n"
        "# a comment\n"
        "NS=autotask-sync\n"
        'KEY=$(uv run autotask-sync connections generate-key) kubectl -n "$NS" \\\n'
        "  exec deploy/autotask-sync-worker -- autotask-sync status | head -3\n"
        "```\n"
        "\n"
        "```console\n"
        '$ autotask-sync connections edit acme --scope \'{"companies":\n'
        '    {"company_ids": [0]}}\'\n'
        "updated connection 'acme'\n"
        "```\n"
        "\n"
        "```json\n"
        '{"make": "demo"}\n'
        "```\n"
        "\n"
        "Use `autotask-sync dlq list|replay [--since\n"
        '2h]` or `make demo DEMO_ARGS="--rate 1"` (`--scale small`). Then `--drop-rate 0`;\n'
        "`connections show NAME`.\n"
    )
    read = [
        (i.written.line, i.program, i.argv, i.synopsis)
        for w in written_commands(document)
        for i in invocations(w)
    ]
    assert read == [
        (4, PROG, ("connections", "generate-key"), False),
        (4, "kubectl", ("-n", "$NS", "exec", "deploy/autotask-sync-worker"), False),
        (4, PROG, ("status",), False),
        (4, "head", ("-3",), False),
        (9, PROG, ("connections", "edit", "acme", "--scope", scope), False),
        (18, PROG, ("dlq", "list", "--since", "2h"), True),
        (18, PROG, ("dlq", "replay", "--since", "2h"), True),
        (19, "make", ("demo", "DEMO_ARGS=--rate 1"), False),
        (19, "python -m tools.demo", ("--rate", "1"), False),
        (19, "python -m tools.demo", ("--scale", "small"), True),
        (20, PROG, ("connections", "show", "NAME"), True),
    ]


def test_placeholders_get_sample_values() -> None:
    written = Written(ROOT / "doc.md", 1, "autotask-sync x", in_prose=True)
    invocation = Invocation(written, PROG, ("status", "--connection", "C", "--x=<n>", "ID"), False)
    assert invocation.sampled() == ["status", "--connection", SAMPLE_CONNECTION, "--x=1", "1"]


# --- Run for real ---------------------------------------------------------------------------------


def _first_words(argv: tuple[str, ...]) -> tuple[str, ...]:
    return argv[:2] if len(argv) > 1 and not argv[1].startswith("-") else argv[:1]


def _safe_to_run(invocation: Invocation) -> bool:
    if invocation.program != PROG or invocation.synopsis or not invocation.argv:
        return False
    if _first_words(invocation.argv) not in RUN_HERE:
        return False
    try:
        parse(PROG, invocation.sampled())
    except ParseError:  # a mention without its arguments; a wrong one is reported above
        return False
    return True


@dataclass(frozen=True, slots=True)
class Run:
    """A command to run, and whether the environment connection is configured for it."""

    argv: tuple[str, ...]
    environment_connection: bool


def _runs() -> dict[Run, list[str]]:
    """One run per command (first words) and set-up, with the most options any doc gives it
    (the shorter forms are parsed above); each with where the docs write it."""
    longest: dict[tuple[tuple[str, ...], bool], Run] = {}
    wheres: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for invocation in filter(_safe_to_run, _all_invocations()):
        run = Run(
            tuple(invocation.sampled()),
            ENVIRONMENT_CONNECTION in invocation.written.paragraph,
        )
        key = (_first_words(run.argv), run.environment_connection)
        if key not in longest or len(run.argv) > len(longest[key].argv):
            longest[key] = run
        wheres.setdefault(key, []).append(invocation.written.where)
    return {run: wheres[key] for key, run in longest.items()}


async def _group_coordinator_up(bootstrap: str, group: str) -> None:
    """A fresh broker sets up its group coordinator on the first request for one, refusing
    group requests meanwhile; a deployment's broker has had one for long."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()

    async def found() -> bool:
        await admin.find_coordinator(group)
        return True

    try:
        # mypy cannot solve eventually's "T or an awaitable of T" for a coroutine function.
        await eventually(found, within=timedelta(seconds=30), what="the group coordinator")  # type: ignore[arg-type]
    finally:
        await admin.close()


@pytest.mark.integration
async def test_the_commands_safe_to_run_succeed_against_the_local_stack(
    migrated_database: str, kafka_bootstrap: str, unique: str
) -> None:
    """The docs' read-only commands against a deployment of the test's own: its database and
    topics, and a stored connection (``acme``, the docs' example name) to a simulated tenant, as
    a multi-tenant deployment has them; the environment connection to the same tenant where the
    text around the command configures one."""
    runs = _runs()
    assert len(runs) >= 10, list(runs)
    prefix = f"d{unique}"
    await create_topics(kafka_bootstrap, prefix, partitions=1)
    await _group_coordinator_up(kafka_bootstrap, f"{prefix}-worker")
    at_once = asyncio.Semaphore(3)  # the machine's cores are shared with the other tests

    async def failure(run: Run, sim: Simulator) -> str | None:
        env = {
            "DATABASE_URL": migrated_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": prefix,
            "AUTOTASK_SYNC_CONSUMER_GROUP": f"{prefix}-worker",
            "AUTOTASK_SYNC_CONTROL_GROUP": f"{prefix}-control",
            "AUTOTASK_SYNC_PROVISIONER_GROUP_ID": f"{prefix}-provisioner",
            "AUTOTASK_SYNC_SECRET_KEYS": KEY,
            "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL": "https://hooks.example.com",
        }
        if run.environment_connection:
            env |= {
                "AUTOTASK_SYNC_AUTOTASK_USERNAME": sim.username,
                "AUTOTASK_SYNC_AUTOTASK_SECRET": sim.secret,
                "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE": sim.integration_code,
                "AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL": sim.zone_lookup_url,
            }
        async with at_once:
            result = await run_cli(*run.argv, env=env, within=RUN_DEADLINE)
        if result.code in RUN_HERE[_first_words(run.argv)]:
            return None
        shown = " ".join([PROG, *run.argv])
        said = "\n    ".join(result.output.strip().splitlines()[-OUTPUT_SHOWN:])
        return f"{', '.join(runs[run])}: `{shown}` exits {result.code}:\n    {said}"

    async with tenants(small_tenant(3)) as (sim,):
        await store_connection(migrated_database, SecretBox([KEY]), SAMPLE_CONNECTION, sim)
        failures = await asyncio.gather(*(failure(run, sim) for run in runs))
    report = [line for line in failures if line is not None]
    assert not report, "\n".join(report)

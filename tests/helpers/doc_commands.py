"""The commands the documentation shows, read from the Markdown, and how each one is checked.

What counts as a command:

- every line of a shell code block (``bash``, ``sh``, ``shell``); in ``console`` and ``text``
  blocks the lines after a ``$`` prompt; in an unlabelled block the lines that start like a
  command (below). A trailing backslash or an open quote continues a line;
- every code span in the prose that starts like a command: ``autotask-sync``, ``python -m``,
  ``uv run``, ``make``, ``pytest``, ``kubectl`` or ``docker``, possibly after ``NAME=value``
  assignments;
- a code span of options alone (``--scale small``) completes the command before it in its
  sentence; a code span naming one of ``autotask-sync``'s commands without the program's name
  (``connections add``, ``dlq replay``) is that command.

``$(...)`` is a command of its own; ``uv run``, ``kubectl ... -- COMMAND`` and ``docker run
IMAGE COMMAND`` are unwrapped to the command they run; ``make``'s ``DEMO_ARGS``,
``PYTEST_ARGS`` and ``BENCH_ARGS`` are the arguments of the command they feed.

How the docs write what varies: upper-case words (``NAME``, ``C``, ``FILE``), ``<...>`` and
``$VARIABLE`` are placeholders, checked with a sample value (:func:`sample`). A usage synopsis
(``[--option]``, ``a|b``, ``...``) is checked for the names it uses (sub-commands, options,
choices), not as a complete command line; so is a command the prose names without its
arguments (``autotask-sync spool``, ``connections add --zone-lookup-url``). The decision
records (docs/adr/) are left out: they record what was decided then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import io
import itertools
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import NoReturn

import yaml

import tools.__main__ as tools_main
from cli import main as cli_main
from shared.runtime.commandline import Command, add_verbosity
from tests.deploy.codebase import ROOT, service_names
from tools import demo
from tools.deployment import ChildProcess, clean_environment

CONNECTION_PLACEHOLDERS = frozenset({"NAME", "C"})
"""Placeholders for a connection's name: their sample is the connection the checks store."""
SAMPLE_CONNECTION = "acme"

NOT_RUN_HERE: dict[str, str] = {
    "kubectl": "needs a Kubernetes cluster; checked: the command after `--`, the kustomize "
    "directories and the workloads it names",
    "docker": "needs a Docker engine and the image; checked: the command it runs in the image",
    "git": "prints this checkout's revision for an image label",
    "base64": "decodes what a kubectl command before it in the pipeline read",
    "eval": "evaluates the output of a command checked on its own",
}
"""Programs the checks do not run, and why; what their command lines hold of ours is checked."""

MAKE_ARGUMENTS: dict[str, str] = {
    "DEMO_ARGS": "python -m tools.demo",
    "PYTEST_ARGS": "pytest",
    "BENCH_ARGS": "python -m bench",
}
"""Makefile variables that carry the arguments of a command (see the Makefile's targets)."""

PYTEST_VALUE_OPTIONS = frozenset({"-k", "-m", "-n", "-p", "-o", "--dist"})
UV_VALUE_OPTIONS = frozenset({"--group", "--with", "--from", "--extra", "--package"})
DOCKER_VALUE_OPTIONS = frozenset({"-e", "--env", "-v", "--volume", "--name", "-p", "-w", "-u"})
WORKLOAD_KINDS = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "job": "Job",
    "cronjob": "CronJob",
}
"""kubectl's names for the kinds of workload deploy/k8s declares."""

SYNOPSIS_MARKS = ("[", "]", "|", "...", "<")
"""What makes a command in the prose a synopsis: optional parts, alternatives, repetition,
``<placeholders>`` (``python -m services.<name>``)."""

HELP_DEADLINE = timedelta(seconds=20)
HELP_ENVIRONMENT = {"AUTOTASK_SYNC_HTTP_PORT": "0", "AUTOTASK_SYNC_OPS_PORT": "0"}
"""Should ``--help`` start a service instead of describing it, it takes no port another test
uses."""

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_COMMAND_START = re.compile(
    r"(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"
    r"(?:autotask-sync|python3? -m|uv run|make|pytest|kubectl|docker)(?:\s|$)"
)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_PARAGRAPH_START = re.compile(r"\s*(?:$|#|\||[-*] |\d+\. )")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*|.*<[^>]+>.*|\$\{?\w+\}?")
_SHELL_SEPARATORS = frozenset({"|", "||", "&&", ";", "&"})
_REDIRECTIONS = frozenset({">", ">>", "<", "2>", "2>>"})
_UNFINISHED = ("arguments are required", "expected one argument", "expected at least one")
"""argparse's words for a command line that stops short of its arguments."""
_SHELL_FENCES = frozenset({"bash", "sh", "shell"})
_PROMPT_FENCES = frozenset({"console", "text"})


# --- Reading the documents ----------------------------------------------------------------------


def documents() -> list[Path]:
    """The documents whose commands must run as written."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "deploy" / "README.md",
        ROOT / "tools" / "autotask_sim" / "README.md",
    ]


@dataclass(frozen=True, slots=True)
class Written:
    """A command as a document writes it: one logical line, continuations joined."""

    path: Path
    line: int
    text: str
    in_prose: bool
    """A code span in the text (a mention), not a line of a code block."""
    completes: Written | None = None
    """For options alone: the command before them in their sentence."""
    paragraph: str = ""
    """The prose around a code span (what it is said of: "set X and run ...")."""

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def written_commands(path: Path) -> list[Written]:
    """Every command ``path`` shows, in the order it shows them."""
    lines = path.read_text().splitlines()
    found: list[Written] = []
    prose: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        end = next(
            (i for i in range(index + 1, len(lines)) if lines[i].strip().startswith(fence[1])),
            len(lines),
        )
        found += _block_commands(path, fence[2].lower(), index + 2, lines[index + 1 : end])
        prose.append((index + 1, ""))  # a code block ends the paragraph before it
        index = end + 1
    found += _span_commands(path, prose)
    return sorted(found, key=lambda written: written.line)


def _block_commands(path: Path, language: str, first: int, body: list[str]) -> list[Written]:
    if language not in _SHELL_FENCES | _PROMPT_FENCES | {""}:
        return []
    found = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(body, first):
        if pending is not None:
            start, text = pending
            text = text.removesuffix("\\") + " " + line.strip()
        elif language in _PROMPT_FENCES:
            if not line.lstrip().startswith("$ "):
                continue
            start, text = number, line.lstrip()[2:].strip()
        elif (language == "" and _COMMAND_START.match(line.strip())) or (
            language in _SHELL_FENCES and line.strip() and not line.lstrip().startswith("#")
        ):
            start, text = number, line.strip()
        else:
            continue
        pending = (start, text) if _continued(text) else None
        if pending is None:
            found.append(Written(path, start, text, in_prose=False))
    return found


def _continued(text: str) -> bool:
    """Whether a command goes on on the next line: a trailing backslash, or an open quote."""
    if text.endswith("\\"):
        return True
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def _span_commands(path: Path, prose: list[tuple[int, str]]) -> list[Written]:
    found = []
    for paragraph in _paragraphs(prose):
        text = "\n".join(line for _, line in paragraph)
        command: Written | None = None
        command_end = 0
        for match in _SPAN.finditer(text):
            line = paragraph[0][0] + text.count("\n", 0, match.start())
            code = " ".join(match[1].split())
            if _COMMAND_START.match(code) or _names_a_cli_command(code):
                command = Written(path, line, code, in_prose=True, paragraph=text)
                command_end = match.end()
                found.append(command)
            elif code.startswith("--") and command is not None:
                between = _SPAN.sub("", text[command_end : match.start()])
                if not _SENTENCE_END.search(between):
                    found.append(replace(command, line=line, text=code, completes=command))
    return found


def _names_a_cli_command(code: str) -> bool:
    """``connections add``, ``dlq replay``: a command of ours without its program's name (two
    words at least, so that ``status`` alone, as a word, is not taken for one)."""
    words = code.split()
    return len(words) > 1 and words[0] in cli_main.COMMANDS


def _paragraphs(prose: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Runs of consecutive prose lines; a blank line, a heading, a table row or a list item
    starts a new one."""
    paragraph: list[tuple[int, str]] = []
    for number, line in prose:
        starts = _PARAGRAPH_START.match(line) is not None
        consecutive = bool(paragraph) and paragraph[-1][0] == number - 1
        if starts or not consecutive:
            if paragraph:
                yield paragraph
            paragraph = []
        if line.strip():
            paragraph.append((number, line))
    if paragraph:
        yield paragraph


# --- What a written command runs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invocation:
    """One program and its arguments, as a written command runs it (placeholders kept)."""

    written: Written
    program: str
    """``autotask-sync``, ``python -m MODULE``, ``make``, ``pytest``, or another program."""
    argv: tuple[str, ...]
    synopsis: bool
    """A usage synopsis or options alone: check the names it uses, not a whole command line."""

    def sampled(self) -> list[str]:
        """The arguments with a sample value in place of each placeholder."""
        return [_sampled_word(word) for word in self.argv]


def invocations(written: Written) -> list[Invocation]:
    """What ``written`` runs: each command of a pipeline or a substitution, each alternative of
    a synopsis, each wrapped command (``uv run``, ``kubectl exec ... --``, ``make DEMO_ARGS``)."""
    if written.completes is not None:
        return _completions(written)
    found = []
    for inner in _SUBSTITUTION.findall(written.text):
        found += invocations(replace(written, text=inner))
    try:
        words = shlex.split(_SUBSTITUTION.sub("$SUBSTITUTED", written.text), comments=True)
    except ValueError as exc:  # an unbalanced quote: say where
        raise ValueError(f"{written.where}: `{written.text}` is no shell command: {exc}") from exc
    for command, synopsis in _simple_commands(words, in_prose=written.in_prose):
        found += _resolve(written, command, synopsis)
    return found


def is_placeholder(word: str) -> bool:
    return _PLACEHOLDER.fullmatch(word) is not None


def sample(placeholder: str) -> str:
    """A value that stands for ``placeholder``: any value type the options take reads ``1``."""
    return SAMPLE_CONNECTION if placeholder in CONNECTION_PLACEHOLDERS else "1"


def _sampled_word(word: str) -> str:
    option, equals, value = word.partition("=")
    if word.startswith("--") and equals:
        return f"{option}={sample(value)}" if is_placeholder(value) else word
    return sample(word) if is_placeholder(word) else word


def _simple_commands(words: list[str], *, in_prose: bool) -> list[tuple[list[str], bool]]:
    """A code block's line split at ``|``, ``&&``, ``;``, ``&`` (redirections dropped); a
    synopsis in the prose expanded into its alternatives (``a|b``, ``[--option]``, ``...``
    dropped)."""
    if not in_prose:
        return [(command, False) for command in _pipeline(words)]
    synopsis = any(mark in word for word in words for mark in SYNOPSIS_MARKS)
    kept: list[str] = []
    for word in (word.strip("[]") for word in words):
        if kept and (word == "|" or kept[-1].endswith("|")):  # `a | b`: as `a|b`
            kept[-1] += word
        elif word and not word.endswith("..."):
            kept.append(word)
    choices = itertools.product(*(word.strip("|").split("|") for word in kept))
    return [(list(choice), synopsis) for choice in choices]


def _pipeline(words: list[str]) -> Iterator[list[str]]:
    command: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in _SHELL_SEPARATORS:
            yield command
            command = []
        elif word in _REDIRECTIONS:
            skip = True
        elif not word.startswith((">", "2>")):
            command.append(word)
    yield command


def _resolve(written: Written, words: list[str], synopsis: bool) -> list[Invocation]:
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return []
    head, rest = words[0], words[1:]
    if written.in_prose and head in cli_main.COMMANDS:
        return [Invocation(written, cli_main.PROG, tuple(words), synopsis=True)]
    if head == "uv" and rest[:1] == ["run"]:
        return _resolve(written, _without_options(rest[1:], UV_VALUE_OPTIONS), synopsis)
    if head in ("python", "python3") and rest[:1] == ["-m"] and len(rest) > 1:
        module, arguments = rest[1], tuple(rest[2:])
        modules = (
            [f"services.{name}" for name in service_names()]
            if module.startswith("services.") and is_placeholder(module)
            else [module]
        )
        return [Invocation(written, f"python -m {m}", arguments, synopsis) for m in modules]
    if head == "make":
        fed = [
            Invocation(written, MAKE_ARGUMENTS[name], tuple(shlex.split(value)), synopsis)
            for name, value in _assignments(rest).items()
            if name in MAKE_ARGUMENTS
        ]
        return [Invocation(written, "make", tuple(rest), synopsis), *fed]
    if head == "kubectl" and "--" in rest:
        cut = rest.index("--")
        wrapped = _resolve(written, rest[cut + 1 :], synopsis)
        return [Invocation(written, "kubectl", tuple(rest[:cut]), synopsis), *wrapped]
    if head == "docker" and rest[:1] == ["run"]:
        image_and_command = _without_options(rest[1:], DOCKER_VALUE_OPTIONS)
        wrapped = _resolve(written, image_and_command[1:], synopsis)
        return [Invocation(written, "docker", tuple(rest), synopsis), *wrapped]
    return [Invocation(written, head, tuple(rest), synopsis)]


def _without_options(words: list[str], taking_values: frozenset[str]) -> list[str]:
    """``words`` from the first one that is not an option (or an option's value)."""
    index = 0
    while index < len(words) and words[index].startswith("-"):
        index += 2 if words[index] in taking_values else 1
    return words[index:]


def _assignments(words: Iterable[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in words if _ASSIGNMENT.match(word))


def _completions(written: Written) -> list[Invocation]:
    """Options alone, as arguments of the command before them in their sentence (the last
    program it runs that has a parser here: the demo, for ``make demo DEMO_ARGS=...``)."""
    assert written.completes is not None
    context = [i for i in invocations(written.completes) if i.program in PROGRAMS]
    if not context:
        return []
    command = context[-1]
    path = command_path(command.program, command.argv)
    words = shlex.split(written.text)
    return [
        Invocation(written, command.program, (*path, *choice), synopsis=True)
        for choice, _ in _simple_commands(words, in_prose=True)
    ]


# --- The parsers of our programs ------------------------------------------------------------------


class ParseError(Exception):
    """A command line the parser refuses, with argparse's reason."""


class _Parser(argparse.ArgumentParser):
    """argparse as the programs build it, raising instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ParseError(f"{self.prog}: {message}")


@dataclass(frozen=True, slots=True)
class Program:
    """A program of ours built on argparse: how to build its parser, and its entry point."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[list[str]], int]


def _dispatched(commands: Mapping[str, Command]) -> Callable[[argparse.ArgumentParser], None]:
    """All sub-commands of a :func:`shared.runtime.commandline.dispatch` program in one parser,
    built as dispatch builds the one it runs (on demand, from the same modules)."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_verbosity(parser)
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name, command in commands.items():
            command_parser = sub.add_parser(name, help=command.help)
            add_verbosity(command_parser)
            importlib.import_module(command.module).add_arguments(command_parser)

    return add_arguments


PROGRAMS: dict[str, Program] = {
    cli_main.PROG: Program(_dispatched(cli_main.COMMANDS), cli_main.main),
    tools_main.PROG: Program(_dispatched(tools_main.COMMANDS), tools_main.main),
    "python -m tools.demo": Program(demo.add_arguments, demo.main),
}


@cache
def parser_for(program: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=program)
    PROGRAMS[program].add_arguments(parser)
    return parser


def _sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:  # argparse keeps its actions private
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def command_path(program: str, argv: Sequence[str]) -> tuple[str, ...]:
    """The leading words of ``argv`` that choose a sub-command (``connections add``)."""
    parser, path = parser_for(program), []
    for word in argv:
        subs = _sub_parsers(parser)
        if subs is None or word not in subs:
            break
        path.append(word)
        parser = subs[word]
    return tuple(path)


def parse(program: str, argv: Sequence[str]) -> None:
    """Parse ``argv`` as ``program`` would, running nothing; :class:`ParseError` if refused."""
    try:
        parser_for(program).parse_args(list(argv))
    except SystemExit as exc:  # --help in the docs: argparse prints and exits 0
        if exc.code not in (0, None):
            raise ParseError(f"{program}: exits {exc.code}") from exc


def unknown_names(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """What ``words`` name that ``parser`` does not know: sub-commands, options, choices, values
    of the wrong type. Missing arguments are fine: a synopsis names a command in part."""
    problems: list[str] = []
    positionals = [action for action in parser._actions if not action.option_strings]
    pending = list(words)
    while pending:
        word = pending.pop(0)
        if word.startswith("-") and word != "-":
            option, equals, value = word.partition("=")
            action = parser._option_string_actions.get(option)
            if action is None:
                problems.append(f"{parser.prog} has no option {option}")
                if not equals and pending and not pending[0].startswith("-"):
                    pending.pop(0)  # its value, most likely
            elif action.nargs != 0 and (equals or (pending and not pending[0].startswith("-"))):
                problems += _bad_value(parser, action, value if equals else pending.pop(0))
            continue
        if not positionals:
            problems.append(f"{parser.prog} takes no argument {word!r}")
            continue
        action = positionals[0]
        if isinstance(action, argparse._SubParsersAction):
            if is_placeholder(word):
                return problems
            if word not in action.choices:
                known = ", ".join(action.choices)
                return [*problems, f"{parser.prog} has no sub-command {word!r} ({known})"]
            return problems + unknown_names(action.choices[word], pending)
        problems += _bad_value(parser, action, word)
        if action.nargs not in ("*", "+", argparse.REMAINDER):
            positionals.pop(0)
    return problems


def _bad_value(parser: argparse.ArgumentParser, action: argparse.Action, value: str) -> list[str]:
    if is_placeholder(value):
        return []
    name = "/".join(action.option_strings) or action.dest
    if action.choices is not None and value not in action.choices:
        return [f"{parser.prog} {name}: {value!r} is not one of {', '.join(action.choices)}"]
    if callable(action.type):
        try:
            action.type(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            return [f"{parser.prog} {name}: {value!r} is not a valid value"]
    return []


@cache
def help_exit_code(program: str, path: tuple[str, ...]) -> int:
    """What ``PROGRAM PATH --help`` exits with, through the program's own entry point."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return PROGRAMS[program].main([*path, "--help"])
        except SystemExit as exc:
            return 0 if exc.code is None else int(exc.code)


# --- Other modules: ``python -m MODULE --help`` as a process -----------------------------------


@dataclass(frozen=True, slots=True)
class Help:
    """What ``python -m MODULE --help`` did: its exit code (None: still running at the
    deadline, then killed) and what it printed."""

    code: int | None
    output: str


def modules_run_for_help(found: Iterable[Invocation]) -> set[str]:
    """The modules whose ``--help`` the checks of ``found`` need (those without a parser here)."""
    return {
        i.program.removeprefix("python -m ")
        for i in found
        if i.program.startswith("python -m ") and i.program not in PROGRAMS
    }


async def help_of(modules: Iterable[str]) -> dict[str, Help]:
    """``python -m MODULE --help`` for each module at once, each in a clean environment."""
    names = [m for m in modules if _runnable(m)]
    helps = await asyncio.gather(*(_help_of(module) for module in names))
    return dict(zip(names, helps, strict=True))


async def _help_of(module: str) -> Help:
    child = await ChildProcess.start(
        module,
        "--help",
        env=clean_environment(HELP_ENVIRONMENT),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await child.communicate(within=HELP_DEADLINE)
    except TimeoutError:
        return Help(None, "")
    return Help(child.returncode, out.decode(errors="replace"))


def _runnable(module: str) -> bool:
    """Whether ``python -m module`` finds something to run."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(f"{module}.__main__")
    except ModuleNotFoundError:
        return False
    return spec is not None


# --- The checks ---------------------------------------------------------------------------------


def problems(invocation: Invocation, helps: Mapping[str, Help]) -> list[str]:
    """Why ``invocation`` would not run as written (empty when nothing says so). ``helps``:
    :func:`help_of` the modules :func:`modules_run_for_help` names."""
    program = invocation.program
    if program in PROGRAMS:
        return _argparse_problems(invocation)
    if program.startswith("python -m "):
        return _module_problems(invocation, helps)
    if program == "make":
        return _make_problems(invocation)
    if program == "pytest":
        return _pytest_problems(invocation.argv)
    if program == "kubectl":
        return _kubectl_problems(invocation.argv)
    if program in NOT_RUN_HERE:
        return []
    return [f"no check knows `{program}`: say in NOT_RUN_HERE why it cannot run here"]


def _argparse_problems(invocation: Invocation) -> list[str]:
    program, argv = invocation.program, invocation.sampled()
    found = unknown_names(parser_for(program), invocation.argv)
    if not invocation.synopsis and not found:
        try:
            parse(program, argv)
        except ParseError as exc:
            mention = invocation.written.in_prose and any(m in str(exc) for m in _UNFINISHED)
            if not mention:  # the prose may name a command or option without its arguments
                found.append(str(exc))
    path = command_path(program, invocation.argv)
    if not found and help_exit_code(program, path) != 0:
        shown = " ".join([program, *path, "--help"])
        found.append(f"`{shown}` exits {help_exit_code(program, path)}")
    return found


def _module_problems(invocation: Invocation, helps: Mapping[str, Help]) -> list[str]:
    module = invocation.program.removeprefix("python -m ")
    if module not in helps:
        return [f"`python -m {module}`: no such module to run"]
    shown = f"`python -m {module} --help`"
    help_ = helps[module]
    if help_.code is None:
        waited = HELP_DEADLINE.seconds
        return [f"{shown} was still running after {waited} s (it must describe itself and exit)"]
    if help_.code != 0:
        return [f"{shown} exits {help_.code}: {_last_line(help_.output)}"]
    options = [word.split("=")[0] for word in invocation.argv if word.startswith("--")]
    return [f"{shown} names no option {option}" for option in options if option not in help_.output]


def _make_problems(invocation: Invocation) -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    variables = _assignments(invocation.argv)
    targets = [word for word in invocation.argv if not word.startswith("-") and "=" not in word]
    found = [
        f"the Makefile has no target {target!r}"
        for target in targets
        if not re.search(rf"^{re.escape(target)}\s*:(?!=)", makefile, re.MULTILINE)
    ]
    found += [
        f"the Makefile never reads {name}"
        for name in variables
        if not re.search(rf"\$\({name}\)|^{name}\s*[?:]?=", makefile, re.MULTILINE)
    ]
    dry_run = _make_dry_run(tuple(invocation.argv))
    if dry_run:
        found.append(dry_run)
    return found


@cache
def _make_dry_run(argv: tuple[str, ...]) -> str:
    """Why ``make -n ARGV`` fails (empty when it succeeds): an unknown target, say."""
    # Under `make test`, the outer make's flags (its jobserver) are not this make's.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    command = ["make", "-n", *argv]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return "" if result.returncode == 0 else f"`make -n` fails: {_last_line(result.stderr)}"


def _pytest_problems(argv: Sequence[str]) -> list[str]:
    found = []
    values = {i + 1 for i, word in enumerate(argv) if word in PYTEST_VALUE_OPTIONS}
    for index, word in enumerate(argv):
        if index in values or word.startswith("-") or "<" in word:
            continue
        path = word.split("::")[0]
        if not (ROOT / path).exists():
            found.append(f"{path} does not exist")
    return found


def _kubectl_problems(argv: Sequence[str]) -> list[str]:
    found = []
    for index, word in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else ""
        directory = following if word in ("-k", "--kustomize", "kustomize") else ""
        if directory and not (ROOT / directory / "kustomization.yaml").exists():
            found.append(f"{directory} is not a kustomize directory")
        kind, slash, name = word.partition("/")
        if not slash and kind in WORKLOAD_KINDS and following and not following.startswith("-"):
            name = following
        if "/" in name:  # a path (deploy/k8s/...), not a workload
            continue
        if kind in WORKLOAD_KINDS and name and name not in workloads(WORKLOAD_KINDS[kind]):
            known = ", ".join(sorted(workloads(WORKLOAD_KINDS[kind])))
            found.append(f"deploy/k8s declares no {WORKLOAD_KINDS[kind]} {name!r} ({known})")
    return found


@cache
def workloads(kind: str) -> frozenset[str]:
    """The names of the objects of ``kind`` deploy/k8s declares."""
    names = set()
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == kind:
                names.add(document["metadata"]["name"])
    return frozenset(names)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing printed)"

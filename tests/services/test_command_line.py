"""``python -m services.<name> --help`` says what the service does, how it is configured and
where it listens, without starting it; any other argument is refused, named."""

from __future__ import annotations

import runpy
import subprocess
import sys
from datetime import timedelta

import pytest

from shared.settings import OPS_PORTS
from tools.deployment import ChildProcess, clean_environment

BROKEN = {"AUTOTASK_SYNC_HTTP_PORT": "not-a-port", "DATABASE_URL": "postgresql://db:x/sync"}
"""An environment no service could start with: ``--help`` does not read it."""


def _run_main(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[object, str, str]:
    """``python -m services.<service> ARGS`` in this process: its exit status and output."""
    for name, value in BROKEN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", [f"services/{service}/__main__.py", *args])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module(f"services.{service}", run_name="__main__")
    out, err = capsys.readouterr()
    return exited.value.code, out, err


@pytest.mark.parametrize("service", sorted(OPS_PORTS))
def test_help_says_what_the_service_does_and_where_it_listens_without_starting_it(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main(service, monkeypatch, capsys, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: python -m services.{service} [-h]\n\n")
    about = sys.modules[f"services.{service}"].__doc__
    assert about
    assert about in out
    assert "environment variables" in out
    assert "docs/configuration.md" in out
    assert f"/healthz, /readyz, /metrics: {OPS_PORTS[service]} (AUTOTASK_SYNC_OPS_PORT)" in out
    public = "Autotask's callouts (/v1/callouts/, /v1/deactivations/): 8080 (AUTOTASK_SYNC_HTTP"
    assert (public in out) == (service == "webhook_gateway")


def test_any_other_argument_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main("provisioner", monkeypatch, capsys, "--port", "9000")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "python -m services.provisioner: error: unrecognized arguments: --port 9000"
    )


async def test_the_command_an_operator_types_answers_help() -> None:
    child = await ChildProcess.start(
        "services.webhook_gateway",
        "-h",
        env=clean_environment(BROKEN),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await child.communicate(within=timedelta(seconds=60))
    assert (child.returncode, err) == (0, b"")
    assert out.startswith(b"usage: python -m services.webhook_gateway [-h]")

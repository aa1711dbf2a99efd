"""Processes a test starts cannot outlive it: SIGKILL the process that started a service or a
command (as a CI time-out kills pytest) and the watchdog stops what it started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.secrets import SecretBox
from tests.helpers.waiting import eventually
from tools.deployment import ROOT
from tools.dev_infra.processes import pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

_OWNER = """
import asyncio, json, sys
from tests.helpers.processes import ServiceProcess, start_cli

async def main():
    spec = json.loads(sys.argv[1])
    if spec["kind"] == "service":
        service = await ServiceProcess("webhook_gateway", spec["env"]).start()
        pid = service.process.pid
    else:
        quiet = asyncio.subprocess.DEVNULL
        command = await start_cli(*spec["args"], env=spec["env"], stdout=quiet, stderr=quiet)
        pid = command.pid
    print(json.dumps({"pid": pid}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until killed

asyncio.run(main())
"""


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server takes connections and never answers: a command calling it hangs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/atservicesrest"


def _gateway(migrated_database: str, kafka_bootstrap: str, unique: str) -> dict[str, Any]:
    return {
        "kind": "service",
        "env": {
            "DATABASE_URL": migrated_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AUTOTASK_SYNC_TOPIC_PREFIX": f"wd{unique}",
            "AUTOTASK_SYNC_SECRET_KEYS": SecretBox.generate_key(),
        },
    }


def _hanging_command(silent_url: str) -> dict[str, Any]:
    return {
        "kind": "command",
        "args": ["test-connection", "--timeout", "600"],
        "env": {
            "AUTOTASK_SYNC_AUTOTASK_USERNAME": "api@example.com",
            "AUTOTASK_SYNC_AUTOTASK_SECRET": "not-a-secret",
            "AUTOTASK_SYNC_AUTOTASK_INTEGRATION_CODE": "NOCODE",
            "AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL": silent_url,
        },
    }


@pytest.mark.parametrize("started", ["service", "command"])
async def test_a_killed_owner_leaves_no_service_or_command_running(
    started: str, migrated_database: str, kafka_bootstrap: str, unique: str, silent_server: str
) -> None:
    spec = (
        _gateway(migrated_database, kafka_bootstrap, unique)
        if started == "service"
        else _hanging_command(silent_server)
    )
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OWNER, json.dumps(spec),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    child = 0
    try:
        assert owner.stdout is not None
        line = await asyncio.wait_for(owner.stdout.readline(), 60)
        child = json.loads(line)["pid"]
        await asyncio.sleep(1)
        assert pid_alive(child)  # started, and not failed at once
        owner.send_signal(signal.SIGKILL)
        await owner.wait()
        # The watchdog notices within half a second and stops it: gone in a second or two.
        # Without it, the service runs on and the command waits out its 10 minutes.
        await eventually(
            lambda: not pid_alive(child),
            within=timedelta(seconds=30),
            interval=timedelta(milliseconds=100),
            what=f"the {started} the killed owner started (pid {child}) to be gone",
        )
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
        if child and pid_alive(child):
            os.kill(child, signal.SIGKILL)

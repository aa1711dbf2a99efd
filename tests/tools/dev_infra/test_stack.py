"""The local stack of a test session: nothing is left behind by a killed owner (the CLI's stack:
test_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.waiting import eventually
from tools.dev_infra.processes import pid_alive, port_open

pytestmark = pytest.mark.integration

_OWNER = """
import json, sys
from tools.dev_infra.stack import DevStack
stack = DevStack(owned=True, kafka=False)
env = stack.up()
print(json.dumps({"pid": stack.processes.postgres_pid, "dirs": stack.processes.data_dirs,
                  "dsn": env.database_url}), flush=True)
sys.stdin.read()  # wait to be killed
"""


def _wait_gone(pid: int, paths: list[str]) -> None:
    waited = eventually(
        lambda: not pid_alive(pid) and not any(Path(p).exists() for p in paths),
        within=timedelta(seconds=15),
        interval=timedelta(milliseconds=100),
        what=f"pid {pid} stopped and {paths} removed",
    )
    asyncio.run(waited)


def test_killed_owner_leaves_no_server_or_data() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())
        port = int(started["dsn"].rsplit(":", 1)[1].split("/")[0])
        assert port_open(port)  # it really serves
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        _wait_gone(started["pid"], started["dirs"])
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdin.close()  # type: ignore[union-attr]
        owner.stdout.close()  # type: ignore[union-attr]

"""Run ``autotask-sync`` as a real process, the way an operator does."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Variables the test process may have that must not leak into the command under test.
_CLEARED_PREFIXES = ("AUTOTASK_SYNC_",)
_CLEARED = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


async def run_cli(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> CliResult:
    """``python -m cli ARGS`` with a clean environment plus ``env``; empty values are unset."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_CLEARED_PREFIXES) and k not in _CLEARED
    }
    base |= {"AUTOTASK_SYNC_LOG_LEVEL": "WARNING", "AUTOTASK_SYNC_LOG_FORMAT": "json"}
    base |= dict(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args,
        cwd=ROOT, env={k: v for k, v in base.items() if v != ""},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(
        process.communicate(None if stdin is None else stdin.encode()), 90
    )
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())

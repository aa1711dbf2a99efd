"""The ``python -m tools simulator`` command: options, and a real start / print / stop cycle."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from shared.errors import ConfigError
from tests.helpers.waiting import eventually
from tools.autotask_sim import cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"seed": 3, "tickets": 10, "faults": {"rate_500": 0.5}}))
    config = cli.build_config(
        _parse(
            "--config", str(path), "--tickets", "25", "--time-scale", "0.01", "--change-rate", "2"
        )
    )
    assert (config.seed, config.tickets, config.time_scale) == (3, 25, 0.01)
    assert config.faults.rate_500 == 0.5
    assert config.changes.rate == 2
    assert (config.host, config.port) == ("127.0.0.1", 8089)


def test_durations_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    settings = {"callouts": {"timeout": "500ms", "retry_delay": 2}, "limits": {"retry_after": "1m"}}
    path.write_text(json.dumps(settings))
    config = cli.build_config(_parse("--config", str(path)))
    assert config.callouts.timeout == timedelta(milliseconds=500)
    assert config.callouts.retry_delay == timedelta(seconds=2)
    assert config.limits.retry_after == timedelta(minutes=1)


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        cli.build_config(_parse("--tickets", "-5"))
    with pytest.raises(ConfigError):
        cli.build_config(_parse("--config", str(tmp_path / "missing.json")))
    old_name = tmp_path / "old.json"
    old_name.write_text(json.dumps({"callouts": {"timeout_s": 2}}))
    with pytest.raises(ConfigError, match="timeout_s"):
        cli.build_config(_parse("--config", str(old_name)))


async def test_serve_prints_working_credentials_and_stops(
    capsys: pytest.CaptureFixture[str], session: aiohttp.ClientSession
) -> None:
    config = cli.build_config(_parse("--port", "0", "--tickets", "5", "--seed", "4"))
    stop = asyncio.Event()
    task = asyncio.create_task(cli.serve(config, stop, signals=False))
    out = ""

    def serving() -> bool:
        nonlocal out
        out += capsys.readouterr().out
        return "Press Ctrl-C" in out

    await eventually(serving, within=timedelta(seconds=10))
    fields = dict(
        re.findall(r"^  (UserName|Secret|ApiIntegrationCode|REST root)\s+(\S+)", out, re.M)
    )
    headers = {k: fields[k] for k in ("UserName", "Secret", "ApiIntegrationCode")}
    async with session.get(fields["REST root"] + "Tickets/entityInformation", headers=headers) as r:
        assert r.status == 200
    # The value to give autotask-sync, shell-quoted: zone discovery there finds this tenant.
    [lookup] = re.findall(r"^  AUTOTASK_SYNC_AUTOTASK_ZONE_LOOKUP_URL=(\S+)$", out, re.M)
    assert f"--zone-lookup-url {lookup}" in out
    [secret] = re.findall(r"^  AUTOTASK_SYNC_AUTOTASK_SECRET=(\S+)$", out, re.M)
    assert shlex.split(secret) == [fields["Secret"]]
    user = {"user": fields["UserName"]}
    async with session.get(f"{lookup}/v1.0/zoneInformation", params=user) as r:
        assert r.status == 200
        assert (await r.json())["url"].rstrip("/") + "/v1.0/" == fields["REST root"]
    stop.set()
    await asyncio.wait_for(task, 5)

"""Wires the sync_worker's parts together; the parts themselves hold no wiring."""

from __future__ import annotations

from shared.runner import ServiceRunner
from shared.service import open_base_resources, serve_ops
from shared.settings import BaseServiceSettings


async def start(runner: ServiceRunner, settings: BaseServiceSettings) -> None:
    resources = await open_base_resources(runner, settings, kafka=True)
    await serve_ops(runner, settings, resources.readiness_checks())

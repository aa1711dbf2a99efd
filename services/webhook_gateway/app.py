"""Wires the webhook_gateway's parts together; the parts themselves hold no wiring."""

from __future__ import annotations

from shared.runner import ServiceRunner
from shared.service import kafka_check, open_base_resources, postgres_check, serve_ops
from shared.settings import BaseServiceSettings


async def start(runner: ServiceRunner, settings: BaseServiceSettings) -> None:
    resources = await open_base_resources(runner, settings, kafka=True)
    checks = {"postgres": postgres_check(resources.pool)}
    if resources.producer is not None:
        checks["kafka"] = kafka_check(resources.producer)
    await serve_ops(runner, settings, checks)

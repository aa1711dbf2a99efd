"""The provisioner as a real process (``python -m services.provisioner``, through
:mod:`tests.helpers.processes`): its environment for a test deployment, and its passes as its
``/metrics`` count them."""

from __future__ import annotations

from tests.helpers.processes import ServiceProcess
from tests.services.provisioner.harness import KEY

PASSES = "autotask_sync_provisioner_passes_total"


def provisioner_env(dsn: str, kafka: str, prefix: str, gateway: str) -> dict[str, str]:
    """The provisioner's environment for a test deployment (stored connections only)."""
    return {
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "AUTOTASK_SYNC_SECRET_KEYS": KEY,
        "AUTOTASK_SYNC_TOPIC_PREFIX": prefix,
        "AUTOTASK_SYNC_PROVISIONER_GROUP_ID": f"provisioner-{prefix}",
        "AUTOTASK_SYNC_GATEWAY_PUBLIC_URL": gateway,
        "AUTOTASK_SYNC_PRODUCTION_MODE": "false",
        "AUTOTASK_SYNC_PROVISIONER_INTERVAL": "1h",
    }


async def passes(provisioner: ServiceProcess, trigger: str, connection: str = "acme") -> int:
    """Successful passes of ``connection`` with ``trigger``, from the service's ``/metrics``."""
    total = 0.0
    for outcome in ("applied", "in_sync"):
        total += await provisioner.metric(
            PASSES, connection=connection, trigger=trigger, outcome=outcome
        )
    return int(total)

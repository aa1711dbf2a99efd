"""A faithful Autotask PSA simulator: a real HTTP server for tests, the demo and benchmarks.

Zone lookup, authentication, the REST entity and query surface with paging, the webhook
entities, signed callouts with Autotask's retry / error-log / deactivation behaviour, thread and
hourly limits, fault injection and a seeded change generator. See ``server.py`` for the API and
``http/admin.py`` for the admin endpoints.
"""

from tools.autotask_sim.config import (
    ApiBehaviour,
    CalloutConfig,
    ChangeGeneratorConfig,
    EntityPermission,
    FaultConfig,
    LimitsConfig,
    SecurityLevel,
    SimulatorConfig,
    WebhookConfig,
)
from tools.autotask_sim.server import Simulator, run_simulator

__all__ = [
    "ApiBehaviour",
    "CalloutConfig",
    "ChangeGeneratorConfig",
    "EntityPermission",
    "FaultConfig",
    "LimitsConfig",
    "SecurityLevel",
    "Simulator",
    "SimulatorConfig",
    "WebhookConfig",
    "run_simulator",
]

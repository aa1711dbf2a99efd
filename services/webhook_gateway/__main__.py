"""``python -m services.webhook_gateway`` (``--help``: what it does, how to configure it)."""

import sys

import services.webhook_gateway
from services.webhook_gateway.app import start
from services.webhook_gateway.settings import GatewaySettings
from shared.runtime.bootstrap import main

sys.exit(
    main(
        "webhook_gateway",
        GatewaySettings,
        start,
        about=services.webhook_gateway.__doc__,
        public="Autotask's callouts (/v1/callouts/, /v1/deactivations/)",
    )
)

"""``python -m services.webhook_gateway``"""

import sys

from services.webhook_gateway.app import start
from services.webhook_gateway.settings import GatewaySettings
from shared.runtime.bootstrap import main

sys.exit(main("webhook_gateway", GatewaySettings, start))

"""``python -m services.webhook_gateway``"""

import sys

from services.webhook_gateway.app import start
from shared.service import main
from shared.settings import BaseServiceSettings

sys.exit(main("webhook_gateway", BaseServiceSettings, start))

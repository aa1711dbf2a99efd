"""``python -m services.sync_worker``"""

import sys

from services.sync_worker.app import start
from shared.service import main
from shared.settings import BaseServiceSettings

sys.exit(main("sync_worker", BaseServiceSettings, start))

"""``python -m services.sync_worker``"""

import sys

from services.sync_worker.app import start
from services.sync_worker.settings import WorkerSettings
from shared.runtime.bootstrap import main

sys.exit(main("sync_worker", WorkerSettings, start))

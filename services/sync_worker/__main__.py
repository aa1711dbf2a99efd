"""``python -m services.sync_worker`` (``--help``: what it does, how to configure it)."""

import sys

import services.sync_worker
from services.sync_worker.app import start
from services.sync_worker.settings import WorkerSettings
from shared.runtime.bootstrap import main

sys.exit(main("sync_worker", WorkerSettings, start, about=services.sync_worker.__doc__))

"""``python -m services.reconciler``"""

import sys

from services.reconciler.app import start
from services.reconciler.settings import ReconcilerSettings
from shared.runtime.bootstrap import main

sys.exit(main("reconciler", ReconcilerSettings, start))

"""``python -m services.reconciler`` (``--help``: what it does, how to configure it)."""

import sys

import services.reconciler
from services.reconciler.app import start
from services.reconciler.settings import ReconcilerSettings
from shared.runtime.bootstrap import main

sys.exit(main("reconciler", ReconcilerSettings, start, about=services.reconciler.__doc__))

"""``python -m services.provisioner`` (``--help``: what it does, how to configure it)."""

import sys

import services.provisioner
from services.provisioner.app import start
from services.provisioner.settings import ProvisionerSettings
from shared.runtime.bootstrap import main

sys.exit(main("provisioner", ProvisionerSettings, start, about=services.provisioner.__doc__))

"""``python -m services.provisioner``"""

import sys

from services.provisioner.app import start
from services.provisioner.settings import ProvisionerSettings
from shared.runtime.bootstrap import main

sys.exit(main("provisioner", ProvisionerSettings, start))

"""``python -m services.provisioner``"""

import sys

from services.provisioner.app import start
from shared.service import main
from shared.settings import BaseServiceSettings

sys.exit(main("provisioner", BaseServiceSettings, start))

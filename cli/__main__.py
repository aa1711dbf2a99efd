"""``python -m cli``: the same as the ``autotask-sync`` console script."""

import sys

from cli.main import main

sys.exit(main())

"""``python -m vivace.cli``."""

import sys

from . import main

sys.exit(main())

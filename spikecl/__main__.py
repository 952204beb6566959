"""``python -m spikecl …``: the command line, as ``spikecl …``."""

import sys

from spikecl.cli import main

sys.exit(main())

"""``python -m tools.bench`` (``make bench``): measure what a request costs (see command.py)."""

import sys

from tools.bench.command import main

sys.exit(main())

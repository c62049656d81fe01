"""``python -m tools.bench`` (``make bench``): measure what a request costs (see figures.py)."""

import sys

from tools.bench.figures import main

sys.exit(main())

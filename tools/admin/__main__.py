"""``python -m tools.admin``: the operator's tool (see command.py)."""

import sys

from tools.admin.command import main

sys.exit(main())

"""``python -m tools.import_accounts``: import accounts from a Mobile Services export (see command.py)."""

import sys

from tools.import_accounts.command import main

sys.exit(main())

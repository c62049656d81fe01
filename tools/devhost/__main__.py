"""``python -m tools.devhost``: serve the function app as the Functions host does (see host.py)."""

from tools.devhost.host import main

main()

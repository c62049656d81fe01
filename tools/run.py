"""``make run``: Azurite plus the functions on http://localhost:7071, until Ctrl-C.

Uses ``func start`` when Azure Functions Core Tools are installed, else the
local host (``python -m tools.devhost``). Azurite keeps its data in
``.azurite/`` (git-ignored). Ctrl-C stops everything this started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tools.azurite import PROJECT_ROOT, Azurite
from tools.local_settings import create_local_settings


def main() -> int:
    if create_local_settings():
        print("Created local.settings.json with a new random AUTH_SIGNING_KEY", flush=True)
    azurite = Azurite(table_port=10002, location=PROJECT_ROOT / ".azurite", all_services=True)
    print("Starting Azurite (blob 10000, queue 10001, table 10002) in .azurite/", flush=True)
    azurite.start()
    if shutil.which("func"):
        command = ["func", "start"]
    else:
        print("Azure Functions Core Tools not found: serving with python -m tools.devhost", flush=True)
        command = [sys.executable, "-m", "tools.devhost"]
    host = subprocess.Popen(command, cwd=PROJECT_ROOT, env=os.environ.copy())
    try:
        return host.wait()
    except KeyboardInterrupt:
        host.send_signal(signal.SIGINT)
        try:
            host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.kill()
        return 0
    finally:
        azurite.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

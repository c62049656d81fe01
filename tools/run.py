"""``make run``: Azurite plus the functions on http://localhost:7071, until Ctrl-C.

Uses ``func start`` when Azure Functions Core Tools are installed, else the
local host (``python -m tools.devhost``). Azurite keeps its data in
``.azurite/`` (git-ignored). Ctrl-C (or SIGTERM) stops everything this started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tools.azurite import PROJECT_ROOT, Azurite
from tools.local_settings import create_local_settings


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def host_command(port: int, settings: Path) -> list[str]:
    """``func start`` where Core Tools are installed, else the local host."""
    default_settings = settings == PROJECT_ROOT / "local.settings.json"
    if shutil.which("func") and default_settings:
        return ["func", "start", "--port", str(port)]
    if not default_settings:
        print("A settings file other than local.settings.json: serving with the local host", flush=True)
    else:
        print("Azure Functions Core Tools not found: serving with python -m tools.devhost", flush=True)
    return [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.run", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="functions port (default 7071)")
    parser.add_argument("--table-port", type=int, default=10002, help="Azurite Table port (default 10002)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / ".azurite", help="Azurite data folder")
    parser.add_argument("--settings", type=Path, default=PROJECT_ROOT / "local.settings.json")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # an IDE's stop button: clean up as for Ctrl-C

    if create_local_settings(args.settings):
        print(f"Created {args.settings.name} with a new random AUTH_SIGNING_KEY", flush=True)
    azurite = Azurite(table_port=args.table_port, location=args.data, all_services=True)
    print(
        f"Starting Azurite (table {azurite.table_port}, blob {azurite.blob_port}, "
        f"queue {azurite.queue_port}) in {args.data}",
        flush=True,
    )
    azurite.start()
    host = subprocess.Popen(host_command(args.port, args.settings), cwd=PROJECT_ROOT, env=os.environ.copy())
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

"""Headless Chromium driven by a Node script (playwright-core), as the browser tests run it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.emulators.azurite import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node") or "/usr/bin/node"

#: Browser tests skip, saying why, where Chromium could not be installed.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed and could not be (make test installs Debian's chromium with apt-get)",
)


def run_script(script: Path, url: str, *arguments: str, timeout: float) -> dict[str, Any]:
    """Run ``script`` on ``url`` with Chromium's path after ``arguments``; the ``{"result", "logs"}`` it
    prints, which must hold a result."""
    completed = subprocess.run(
        [NODE, str(script), url, *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    outcome: dict[str, Any] = json.loads(completed.stdout)
    assert outcome["result"] is not None, outcome["logs"]
    return outcome

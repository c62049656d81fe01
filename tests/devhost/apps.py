"""Small function apps that tests write into a folder and serve with ``python -m tools.devhost``.

The local host's own tests (HTTP, queue and timer triggers) use these rather
than the product's functions, so each behaviour is checked on a function
written for it. Here is what they share: writing the app's folders, starting
and stopping its host, reading what its functions recorded, and waiting on it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tools.devhost import host as devhost
from tools.emulators.azurite import free_port

T = TypeVar("T")

#: The start of a function that records what it sees as JSON lines in the app's ``records.jsonl``:
#: ``_record(**fields)`` writes one; ``with _invocation() as running`` counts those running at once.
RECORDING = """
import contextlib
import json
import threading
import time
from pathlib import Path

import azure.functions as func

RECORDS = Path(__file__).resolve().parent.parent / "records.jsonl"
_lock = threading.Lock()
_running = 0


def _record(**fields):
    with _lock, RECORDS.open("a", encoding="utf-8") as records:
        records.write(json.dumps(fields) + "\\n")


@contextlib.contextmanager
def _invocation():
    global _running
    with _lock:
        _running += 1
        running = _running
    try:
        yield running
    finally:
        with _lock:
            _running -= 1
"""


def never_imported(parameter: str) -> str:
    """A function that must never be imported (the host refuses it first): it leaves a mark if it is."""
    return f"""
from pathlib import Path

(Path(__file__).resolve().parent.parent / "imported").write_text("imported")


def main({parameter}):
    raise AssertionError("never runs")
"""


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def write_app(
    root: Path, host_json: dict[str, Any], settings: dict[str, Any], functions: dict[str, tuple[Any, str]]
) -> None:
    """Write ``host.json``, ``local.settings.json`` and each function (``name: (function.json, source)``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "host.json").write_text(json.dumps(host_json))
    (root / "local.settings.json").write_text(json.dumps(settings))
    for name, (config, source) in functions.items():
        (root / name).mkdir()
        (root / name / "function.json").write_text(json.dumps(config))
        (root / name / "__init__.py").write_text(source)


@dataclass
class ThrowawayApp:
    """A function app in ``root``, served by the local host as a child process logging to ``host.log``."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def spawn(self, environment: dict[str, str]) -> None:
        """Start the host on a free port with exactly this environment."""
        self.port = free_port()
        with (self.root / "host.log").open("wb") as log:
            self.process = devhost.spawn(
                self.port,
                self.root / "local.settings.json",
                environment,
                root=self.root,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def stop(self) -> int:
        """Stop the host as a service manager would (SIGTERM); return its exit status."""
        if self.process is None:
            return 0
        self.process.terminate()
        status = self.process.wait(timeout=30)
        self.process = None
        return status

    @property
    def log(self) -> str:
        return (self.root / "host.log").read_text("utf-8", "replace")

    def all_records(self) -> list[dict[str, Any]]:
        """What the app's functions wrote to ``records.jsonl``, one JSON object a line."""
        path = self.root / "records.jsonl"
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []

    def records(self, function: str, event: str = "start") -> list[dict[str, Any]]:
        return [r for r in self.all_records() if r.get("function") == function and r.get("event") == event]

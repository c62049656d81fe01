"""Small function apps that tests write into a folder and serve with ``python -m tools.devhost``.

The local host's own tests (HTTP, queue and timer triggers) use these rather
than the product's functions, so each behaviour is checked on a function
written for it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.devhost import host as devhost
from tools.emulators.azurite import free_port


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

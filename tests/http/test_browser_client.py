"""The real Azure Mobile Apps JavaScript client SDK, in headless Chromium, against the local host."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import app_settings_for, start_local_host
from tools.emulators.azurite import BIN, PROJECT_ROOT, Azurite

BROWSER_FILES = Path(__file__).parent / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed and could not be (make test installs Debian's chromium with apt-get)",
)
NODE = shutil.which("node") or "/usr/bin/node"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No access log."""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """The test page and the SDK bundled for the browser, served from their own origin."""
    subprocess.run(
        [
            str(BIN / "esbuild"),
            str(BROWSER_FILES / "client.js"),
            "--bundle",
            "--platform=browser",
            # Node built-ins the SDK's dependencies use, polyfilled as the SDK's own build did.
            "--alias:stream=stream-browserify",
            f"--inject:{BROWSER_FILES / 'node-globals.js'}",
            "--define:global=window",
            "--log-level=error",
            f"--outfile={tmp_path / 'client.bundle.js'}",
        ],
        cwd=PROJECT_ROOT,
        check=True,
    )
    shutil.copy(BROWSER_FILES / "journey.html", tmp_path / "journey.html")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sdk_registers_logs_in_and_calls_me(azurite: Azurite, tmp_path: Path, page_origin: str) -> None:
    """invokeApi register and login, set currentUser, and GET /api/me through invokeApi with X-ZUMO-AUTH."""
    host = start_local_host(tmp_path, app_settings_for(azurite.connection_string), cors=page_origin)
    try:
        query = urlencode(
            {"backend": host.base_url, "email": "sdk@example.com", "password": "correct horse battery"}
        )
        completed = subprocess.run(
            [
                NODE,
                str(BROWSER_FILES / "run-journey.mjs"),
                f"{page_origin}/journey.html?{query}",
                str(CHROMIUM),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        logged = host.stop()
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout)
    result = outcome["result"]
    assert result is not None, outcome["logs"]
    assert "error" not in result, (result, outcome["logs"], logged)
    assert result["registered"]["email"] == "sdk@example.com"
    user_id = result["registered"]["userId"]
    assert result["currentUser"] == user_id
    assert result["me"]["userId"] == user_id
    assert result["me"]["email"] == "sdk@example.com"
    assert result["wrongPassword"] == 401
    assert "GET /api/me -> 200" in logged, "the SDK sent the token in X-ZUMO-AUTH and the gate took it"

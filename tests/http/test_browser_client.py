"""The real Azure Mobile Apps JavaScript client SDK, in headless Chromium, against the local host."""

from __future__ import annotations

import functools
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
from tests.http.chromium import CHROMIUM, needs_chromium, run_script
from tools.emulators.azurite import BIN, PROJECT_ROOT, Azurite

BROWSER_FILES = Path(__file__).parent / "browser"

pytestmark = needs_chromium


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
        outcome = run_script(
            BROWSER_FILES / "run-journey.mjs",
            f"{page_origin}/journey.html?{query}",
            str(CHROMIUM),
            timeout=120,
        )
    finally:
        logged = host.stop()
    result = outcome["result"]
    assert "error" not in result, (result, outcome["logs"], logged)
    assert result["registered"]["email"] == "sdk@example.com"
    user_id = result["registered"]["userId"]
    assert result["currentUser"] == user_id
    assert result["me"]["userId"] == user_id
    assert result["me"]["email"] == "sdk@example.com"
    assert result["wrongPassword"] == 401
    assert "GET /api/me -> 200" in logged, "the SDK sent the token in X-ZUMO-AUTH and the gate took it"

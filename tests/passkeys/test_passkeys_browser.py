"""Chromium adds a passkey and signs in with it (a CDP virtual authenticator), against the local host."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import LocalHost, app_settings_for
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port

BROWSER_FILES = Path(__file__).parent / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node") or "/usr/bin/node"

pytestmark = [
    pytest.mark.through_host,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (make test installs Debian's chromium with apt-get)",
    ),
]


def test_chromium_adds_a_passkey_and_signs_in_with_it(azurite: Azurite, tmp_path: Path) -> None:
    """navigator.credentials.create and .get with the options as served; the answers as toJSON() gives."""
    port = free_port()
    origin = f"http://localhost:{port}"
    settings = app_settings_for(azurite.connection_string) | {
        "AUTH_PASSKEY_RP_ID": "localhost",
        "AUTH_PASSKEY_ORIGINS": origin,
        "AUTH_APP_NAME": "Browser test",
    }
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {}, "Host": {}}))
    host = LocalHost(settings_file, settings)
    host.port, host.base_url = port, origin
    host.start()
    try:
        query = urlencode({"email": "chromium@example.com", "password": "correct horse battery"})
        completed = subprocess.run(
            [
                NODE,
                str(BROWSER_FILES / "run-passkey.mjs"),
                f"{origin}/passkey.html?{query}",
                str(BROWSER_FILES / "passkey.html"),
                str(CHROMIUM),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        logged = host.stop()
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout)
    result = outcome["result"]
    assert result is not None, outcome["logs"]
    assert "error" not in result, (result, outcome["logs"], logged)
    assert result["creationStatus"] == 200
    assert (result["addedStatus"], result["added"]["name"]) == (201, "Chromium")
    assert result["rpId"] == "localhost"
    assert result["signInStatus"] == 200, (result, logged)
    assert result["signedIn"]["userId"] == result["userId"]
    assert result["me"]["email"] == "chromium@example.com"
    assert result["me"]["passkeys"] == 1
    assert [p["id"] for p in result["passkeys"]["passkeys"]] == [result["added"]["id"]]
    assert result["authenticatorCredentials"][0]["isResidentCredential"] is True
    assert "POST /api/passkeys/authentication -> 200" in logged

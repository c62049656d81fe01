"""Chromium adds a passkey and signs in with it (a CDP virtual authenticator), against the local host."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import LocalHost, app_settings_for
from tests.http.chromium import CHROMIUM, needs_chromium, run_script
from tools.emulators.azurite import Azurite, free_port

BROWSER_FILES = Path(__file__).parent / "browser"

pytestmark = [pytest.mark.through_host, needs_chromium]


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
        outcome = run_script(
            BROWSER_FILES / "run-passkey.mjs",
            f"{origin}/passkey.html?{query}",
            str(BROWSER_FILES / "passkey.html"),
            str(CHROMIUM),
            timeout=180,
        )
    finally:
        logged = host.stop()
    result = outcome["result"]
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

"""The reset link of a real mail, opened in headless Chromium against the local host."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LocalHost, app_settings_for
from tests.mailtest import Inbox, mail_settings
from tools.azurite import PROJECT_ROOT, Azurite

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node") or "/usr/bin/node"
SCRIPT = Path(__file__).parent / "browser" / "open-link.mjs"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed and could not be (make test installs Debian's chromium with apt-get)",
)


def open_link(url: str, actions: dict[str, Any] | None = None) -> dict[str, Any]:
    completed = subprocess.run(
        [NODE, str(SCRIPT), url, str(CHROMIUM), json.dumps(actions or {})],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    outcome: dict[str, Any] = json.loads(completed.stdout)
    assert outcome["result"] is not None, outcome["logs"]
    return outcome


@pytest.fixture
def host(azurite: Azurite, inbox: Inbox, tmp_path: Path) -> Iterator[LocalHost]:
    """The app on the local host, its links pointing at itself, mail through ``inbox``."""
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {}, "Host": {}}))
    server = LocalHost(settings_file, {})
    server.environment = (
        app_settings_for(azurite.connection_string)
        | mail_settings(azurite, inbox)
        | {"AUTH_PUBLIC_BASE_URL": server.base_url}
    )
    server.start()
    yield server
    server.stop()


def test_the_reset_link_opens_a_page_that_resets_only_on_its_button(host: LocalHost, inbox: Inbox) -> None:
    """Opening the link (as a scanner would) leaves the code usable; the button resets the password."""
    email = f"page-{secrets.token_hex(4)}@example.com"
    assert host.post("register", {"email": email, "password": PASSWORD}).status_code == 201
    assert host.post("password/forgot", {"email": email}).status_code == 202
    mail = next(m for m in inbox.wait_for(email, 2) if "reset" in m.subject.lower())
    link = mail.link
    assert link is not None, mail.text
    assert link.startswith(f"{host.base_url}/api/password/reset#")

    scanned = open_link(link)
    opened = scanned["result"]["opened"]
    assert opened["email"] == email
    assert opened["code"] == mail.code
    assert "#" not in opened["address"], "the code left the address bar"
    assert not [r for r in scanned["requests"] if r.startswith("POST")], "opening sends nothing"
    assert not [line for line in scanned["logs"] if "Content Security Policy" in line], scanned["logs"]

    wrong = link.replace(f"code={mail.code}", f"code={(int(mail.code) + 1) % 10**8:08d}")
    refused = open_link(
        wrong, {"fill": {"#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD}, "submit": True}
    )
    assert "not valid" in refused["result"]["shown"]["error"]

    done = open_link(
        link, {"fill": {"#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD}, "submit": True}
    )
    assert "password was changed" in done["result"]["shown"]["result"]
    assert host.post("login", {"email": email, "password": NEW_PASSWORD}).status_code == 200
    assert host.post("login", {"email": email, "password": PASSWORD}).status_code == 401

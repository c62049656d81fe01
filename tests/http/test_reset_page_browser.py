"""The links of real mails, opened in headless Chromium against the local host."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LocalHost, app_settings_for
from tests.http.chromium import CHROMIUM, needs_chromium, run_script
from tests.mailtest import Inbox, ReceivedMail, mail_settings
from tools.emulators.azurite import Azurite

SCRIPT = Path(__file__).parent / "browser" / "open-link.mjs"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
GENERIC = "Something went wrong"
INVALID_CODE = "This code is not valid any more. Ask for a new one in the app."

pytestmark = needs_chromium


def open_link(url: str, actions: dict[str, Any] | list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Open ``url`` in a fresh headless Chromium, do ``actions`` (see open-link.mjs), return what it saw."""
    outcome = run_script(SCRIPT, url, str(CHROMIUM), json.dumps(actions or {}), timeout=120)
    assert not [line for line in outcome["logs"] if "Content Security Policy" in line], outcome["logs"]
    assert not [line for line in outcome["logs"] if line.startswith("page error")], outcome["logs"]
    return outcome


def posts(outcome: dict[str, Any]) -> list[str]:
    """The POST requests the page made."""
    return [request for request in outcome["requests"] if request.startswith("POST ")]


def assert_page_headers(headers: dict[str, str]) -> None:
    """The headers the browser got with a page (names in lower case, as Chromium reports them)."""
    assert headers["content-type"].replace(" ", "").lower() == "text/html;charset=utf-8"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "form-action 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


def mail_with(inbox: Inbox, email: str, count: int, subject_word: str) -> ReceivedMail:
    """The mail to ``email`` whose subject has ``subject_word``, once ``email`` has ``count`` mails."""
    return next(m for m in inbox.wait_for(email, count, timeout=15) if subject_word in m.subject.lower())


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
    mail = mail_with(inbox, email, 2, "reset")
    link = mail.link
    assert link is not None, mail.text
    assert link.startswith(f"{host.base_url}/api/password/reset#")

    scanned = open_link(link)
    assert scanned["result"]["status"] == 200
    assert_page_headers(scanned["result"]["headers"])
    opened = scanned["result"]["opened"]
    assert opened["email"] == email
    assert opened["code"] == mail.code, "the script ran under the policy and read the fragment"
    assert opened["address"] == f"{host.base_url}/api/password/reset", "the code left the address bar"
    assert posts(scanned) == [], "opening sends nothing"

    wrong = link.replace(f"code={mail.code}", f"code={(int(mail.code) + 1) % 10**8:08d}")
    refused = open_link(
        wrong, {"fill": {"#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD}, "submit": True}
    )
    assert (
        refused["result"]["shown"]["error"]
        == "This code is not valid any more. Ask for a new one in the app."
    )
    assert refused["result"]["shown"]["formVisible"]

    done = open_link(
        link,
        [
            {"fill": {"#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD + "!"}, "submit": True},
            {"fill": {"#password": "short", "#confirmation": "short"}, "submit": True},
            {"fill": {"#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD}, "submit": True},
        ],
    )
    differ, weak, changed = done["result"]["steps"]
    assert differ["error"] == "The two passwords differ."
    assert weak["error"] is not None
    assert weak["error"].startswith("The password must have at least"), "the problem's own detail"
    assert changed == {
        "result": "Your password was changed. Go back to the app and sign in with your new password.",
        "error": None,
        "formVisible": False,
    }
    assert posts(done) == [f"POST {host.base_url}/api/password/reset"] * 2, "the mismatch never left the page"
    assert host.post("login", {"email": email, "password": NEW_PASSWORD}).status_code == 200
    assert host.post("login", {"email": email, "password": PASSWORD}).status_code == 401


def test_the_verification_link_verifies_only_on_its_button(host: LocalHost, inbox: Inbox) -> None:
    """A percent-encoded email survives the fragment; a network failure, success and reuse each show."""
    email = f"page+{secrets.token_hex(4)}@example.com"
    registered = host.post("register", {"email": email, "password": PASSWORD})
    assert registered.status_code == 201
    token = registered.json()["token"]
    mail = mail_with(inbox, email, 1, "confirm")
    link = mail.link
    assert link is not None, mail.text
    assert link.startswith(f"{host.base_url}/api/email/verify#email=page%2B")

    scanned = open_link(link)
    assert_page_headers(scanned["result"]["headers"])
    assert scanned["result"]["opened"] == {
        "address": f"{host.base_url}/api/email/verify",
        "email": email,
        "code": mail.code,
    }
    assert posts(scanned) == []
    assert host.call("GET", "me", token=token).json()["emailVerified"] is False, "opening verified nothing"

    offline = open_link(link, {"failNetwork": True, "submit": True})
    assert offline["result"]["shown"]["error"].startswith(GENERIC)
    assert offline["result"]["shown"]["formVisible"]

    verified = open_link(link, {"submit": True})
    assert verified["result"]["shown"] == {
        "result": "Your email is verified. You can go back to the app.",
        "error": None,
        "formVisible": False,
    }
    assert host.call("GET", "me", token=token).json()["emailVerified"] is True

    again = open_link(link, {"submit": True})
    assert again["result"]["shown"]["error"] == INVALID_CODE


def test_a_link_without_a_code_leaves_the_code_to_type(host: LocalHost) -> None:
    """A hand-built fragment with the email only: the email is filled, the code is left to type."""
    outcome = open_link(
        f"{host.base_url}/api/password/reset#email=someone%40example.com",
        {"fill": {"#code": "12345678", "#password": NEW_PASSWORD, "#confirmation": NEW_PASSWORD}},
    )
    assert outcome["result"]["opened"] == {
        "address": f"{host.base_url}/api/password/reset",
        "email": "someone@example.com",
        "code": "",
    }
    assert posts(outcome) == []

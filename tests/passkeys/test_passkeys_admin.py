"""The operator's tool shows an account's passkeys and removes one for a user who lost the device."""

from __future__ import annotations

import json

import pytest

from tests.conftest import AppEnvironment
from tests.mailtest import mail_queue
from tests.operations.test_admin import run, run_json
from tests.passkeys.conftest import WEB_ORIGIN, Client, authentication_options, passkey_settings, sign_in
from tools.software_authenticator import SoftwareAuthenticator


def test_list_and_remove_a_lost_passkey(mail_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """passkeys lists them; remove-passkey takes one away at once, mails the owner, and logs it."""
    mail_env.set(**passkey_settings())
    user = Client()
    phone = SoftwareAuthenticator(WEB_ORIGIN)
    assert user.add(phone, name="Lost phone").status_code == 201
    listed = run_json(capsys, "passkeys", user.email)["passkeys"]
    assert [p["name"] for p in listed] == ["Lost phone"]
    assert run_json(capsys, "show", user.email)["passkeys"] == 1
    exported = run_json(capsys, "export", user.email)["passkeys"]
    assert [(p["id"], p["name"]) for p in exported] == [(listed[0]["id"], "Lost phone")]
    assert "publicKey" not in exported[0]
    status, out, _ = run(capsys, "passkeys", user.email)
    assert status == 0
    assert "Lost phone" in out
    assert "iCloud Keychain" in out

    status, out, err = run(capsys, "remove-passkey", user.email, "--passkey", listed[0]["id"])
    assert status == 0, err
    assert "event=admin_remove_passkey" in err
    assert sign_in(phone.get(authentication_options())).status_code == 401
    assert user.list() == []
    status, _, err = run(capsys, "remove-passkey", user.email, "--passkey", listed[0]["id"])
    assert status == 1
    assert "no passkey" in err
    queued = [json.loads(m.content) for m in mail_queue(mail_env).peek_messages(max_messages=32)]
    assert [m["kind"] for m in queued].count("passkey_removed") == 1


def test_passkeys_off(app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """Without AUTH_PASSKEY_RP_ID the tool says so."""
    user = Client()
    status, _, err = run(capsys, "passkeys", user.email)
    assert status == 1
    assert "AUTH_PASSKEY_RP_ID" in err

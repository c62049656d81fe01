"""The operator tool (python -m tools.admin), end to end against Azurite and the real functions."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import jwt
import pyotp
import pytest

import login
import me
import mfa_totp
import mfa_totp_confirm
import register
from shared.accounts.mobile_services import legacy_stored_hash
from shared.accounts.service import account_service
from shared.accounts.store import AccountStore
from shared.mfa.encryption import key_id
from shared.operations.admin import WITHHELD, AccountAdmin
from shared.recovery.codes import CodePurpose
from shared.settings import get_settings
from tests.conftest import APP_SETTINGS, AppEnvironment, problem, start_local_host
from tests.mailtest import mail_queue
from tools.admin import command as admin
from tools.emulators.azurite import PROJECT_ROOT, free_port, table_connection_string

PASSWORD = "correct horse battery"
#: No local.settings.json: the tests' settings are in the environment.
NO_FILE = "/nonexistent/local.settings.json"


def call(
    function: Any,
    body: Any = None,
    *,
    token: str | None = None,
    method: str = "POST",
    user_agent: str = "TestApp/1.0",
) -> func.HttpResponse:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": user_agent}
    if token:
        headers["X-ZUMO-AUTH"] = token
    request = func.HttpRequest(method, "http://localhost/api/x", headers=headers, body=raw, params={})
    response: func.HttpResponse = function.main(request)
    return response


def body_of(response: func.HttpResponse) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def register_account(email: str, user_agent: str = "TestApp/1.0") -> tuple[str, str]:
    """Register; return the user id and the first session's token."""
    response = call(register, {"email": email, "password": PASSWORD}, user_agent=user_agent)
    assert response.status_code == 201, response.get_body()
    return str(body_of(response)["userId"]), str(body_of(response)["token"])


def log_in(email: str, password: str = PASSWORD, user_agent: str = "TestApp/1.0") -> func.HttpResponse:
    return call(login, {"email": email, "password": password}, user_agent=user_agent)


def token_of(response: func.HttpResponse) -> str:
    assert response.status_code == 200, response.get_body()
    return str(body_of(response)["token"])


def works(token: str) -> bool:
    status: int = call(me, token=token, method="GET").status_code
    assert status in (200, 401)
    return status == 200


def sid(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sid"])


def enrol(email: str) -> tuple[str, str, pyotp.TOTP, list[str]]:
    """Register with TOTP on; return the user id, the enrolling session's token, the app, the codes."""
    user_id, token = register_account(email)
    started = call(mfa_totp, {"password": PASSWORD}, token=token)
    assert started.status_code == 200, started.get_body()
    app = pyotp.TOTP(body_of(started)["secret"])
    confirmed = call(mfa_totp_confirm, {"code": app.now()}, token=token)
    assert confirmed.status_code == 200, confirmed.get_body()
    return user_id, str(body_of(confirmed)["token"]), app, list(body_of(confirmed)["recoveryCodes"])


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The tool in this process; returns its exit status, stdout and stderr."""
    status = admin.main([*args, "--settings", NO_FILE])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out, err = run(capsys, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def events(err: str, name: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"event={name} ")]


def row_texts(app_env: AppEnvironment) -> Iterator[str]:
    """Every key and text value of every row of the table, one string per row."""
    for entity in app_env.entities():
        yield " ".join(str(value) for value in entity.values())


def test_show_as_a_table_and_as_json(app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """show names the account by email (any case) or user id; the table and --json agree."""
    user_id, _ = register_account("show@example.com")
    status, out, err = run(capsys, "show", "Show@Example.COM")
    assert (status, err) == (0, "")
    table = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert table["user id"] == user_id
    assert table["email"] == "show@example.com"
    assert (table["email verified"], table["disabled"], table["second factor"]) == ("no", "no", "off")
    assert (table["failed logins"], table["locked until"], table["live sessions"]) == ("0", "-", "1")
    document = run_json(capsys, "show", user_id)
    assert document == {
        "userId": user_id,
        "email": "show@example.com",
        "emailVerified": False,
        "createdAt": document["createdAt"],
        "disabled": False,
        "disabledReason": None,
        "lockout": {"failedLogins": 0, "lockedUntil": None},
        "mfa": {"totp": False, "recoveryCodesLeft": 0},
        "liveSessions": 1,
        "passkeys": 0,
    }
    created = datetime.fromisoformat(document["createdAt"])
    assert document["createdAt"].endswith("Z")
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert table["created"] == document["createdAt"]
    assert "PasswordHash" not in out
    assert "$argon2" not in out


def test_unknown_accounts_and_bad_arguments(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown account or session: exit 1, one line on stderr; a bad email or bad arguments: exit 2."""
    for name, reason in [
        ("nobody@example.com", "error: no account with email nobody@example.com"),
        (
            "custom:00nosuchuser0000000000000",
            "error: no account with user id 'custom:00nosuchuser0000000000000'",
        ),
        ("Custom:42", "error: no account with user id 'Custom:42'"),
    ]:
        for command in ("show", "disable", "unlock", "export", "delete"):
            status, out, err = run(capsys, command, name, *(["--yes"] if command == "delete" else []))
            assert (status, out, err.splitlines()) == (1, "", [reason]), command
    user_id, _ = register_account("known@example.com")
    status, _, err = run(capsys, "revoke", user_id, "--session", "0" * 24)
    assert status == 1
    assert err.splitlines() == [f"error: no such session '{'0' * 24}' of {user_id}"]
    status, _, err = run(capsys, "show", "not an email@")
    assert status == 2
    assert err.splitlines() == ["error: 'not an email@': The email address is not valid."]
    for argv in ([], ["show"], ["frobnicate", user_id], ["show", user_id, "--reason", "x"]):
        with pytest.raises(SystemExit) as exited:
            admin.main([*argv, "--settings", NO_FILE])
        assert exited.value.code == 2
        assert "usage: python -m tools.admin" in capsys.readouterr().err


def test_disable_refuses_tokens_at_once_and_enable_restores_login(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Disabled: the old token is refused, the right password gets 403, a wrong one 401; enable undoes it."""
    user_id, token = register_account("off@example.com")
    assert works(token)
    status, out, err = run(capsys, "disable", "off@example.com", "--reason", "stolen phone")
    assert status == 0
    assert out.startswith(f"disabled {user_id} (off@example.com)")
    (event,) = events(err, "admin_disable")
    assert f"user_id={user_id}" in event
    assert 'reason="stolen phone"' in event
    assert not works(token)
    assert problem(log_in("off@example.com"))["code"] == "account_disabled"
    assert problem(log_in("off@example.com", "wrong password!"))["code"] == "invalid_credentials"
    shown = run_json(capsys, "show", user_id)
    assert (shown["disabled"], shown["disabledReason"], shown["liveSessions"]) == (True, "stolen phone", 0)
    status, out, _ = run(capsys, "show", user_id)
    assert "yes: stolen phone" in out

    status, out, err = run(capsys, "enable", user_id)
    assert status == 0
    assert out == f"enabled {user_id} (off@example.com); its old sessions stay ended\n"
    assert len(events(err, "admin_enable")) == 1
    assert works(token_of(log_in("off@example.com")))
    assert not works(token), "the old session stays ended"
    assert run_json(capsys, "show", user_id)["disabled"] is False
    status, out, err = run(capsys, "enable", user_id)
    assert (status, out, events(err, "admin_enable")) == (
        0,
        f"{user_id} (off@example.com) was not disabled\n",
        [],
    )


def test_unlock_clears_a_lockout(app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """Three wrong passwords lock the email for 10 minutes; unlock lets the right password in at once."""
    app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600", AUTH_LOCKOUT_MAX_SECONDS="900")
    user_id, _ = register_account("locked@example.com")
    for _ in range(3):
        assert problem(log_in("locked@example.com", "wrong password!"))["code"] == "invalid_credentials"
    assert problem(log_in("locked@example.com"))["code"] == "too_many_attempts"
    lockout = run_json(capsys, "show", "locked@example.com")["lockout"]
    assert lockout["failedLogins"] == 3
    locked_until = datetime.fromisoformat(lockout["lockedUntil"])
    assert 590 < (locked_until - datetime.now(UTC)).total_seconds() <= 600

    status, out, err = run(capsys, "unlock", "locked@example.com")
    assert status == 0
    assert out == f"unlocked {user_id} (locked@example.com): cleared 3 consecutive failed logins\n"
    (event,) = events(err, "admin_unlock")
    assert f"user_id={user_id}" in event
    assert "failed_logins=3" in event
    assert run_json(capsys, "show", user_id)["lockout"] == {"failedLogins": 0, "lockedUntil": None}
    assert works(token_of(log_in("locked@example.com")))
    status, out, err = run(capsys, "unlock", user_id)
    assert (status, events(err, "admin_unlock")) == (0, [])
    assert "was not locked" in out


def test_sessions_and_revoking_one(app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """sessions lists each device; revoke --session ends that one only; an unknown id is exit 1."""
    user_id, phone = register_account("devices@example.com", user_agent="Phone/1")
    tablet = token_of(log_in("devices@example.com", user_agent="Tablet/2"))
    laptop = token_of(log_in("devices@example.com", user_agent="Laptop/3"))
    listed = run_json(capsys, "sessions", "devices@example.com")
    assert listed["userId"] == user_id
    by_agent = {s["userAgent"]: s["id"] for s in listed["sessions"]}
    assert by_agent == {"Phone/1": sid(phone), "Tablet/2": sid(tablet), "Laptop/3": sid(laptop)}
    assert set(listed["sessions"][0]) == {"id", "createdAt", "lastSeenAt", "userAgent"}
    status, out, _ = run(capsys, "sessions", user_id)
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "CREATED", "LAST", "SEEN", "USER", "AGENT"]
    assert sorted(row.split()[0] for row in rows) == sorted(by_agent.values())

    status, out, err = run(capsys, "revoke", user_id, "--session", sid(tablet))
    assert status == 0
    assert out == f"ended session {sid(tablet)} of {user_id} (devices@example.com)\n"
    (event,) = events(err, "admin_revoke")
    assert f"session={sid(tablet)}" in event
    assert not works(tablet)
    assert works(phone)
    assert works(laptop)
    assert len(run_json(capsys, "sessions", user_id)["sessions"]) == 2
    status, _, err = run(capsys, "revoke", user_id, "--session", sid(tablet))
    assert status == 1
    assert err.splitlines() == [f"error: no such session '{sid(tablet)}' of {user_id}"]


def test_revoking_every_session(app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """revoke without --session ends every session; the password still logs in."""
    user_id, phone = register_account("all@example.com")
    tablet = token_of(log_in("all@example.com"))
    assert run_json(capsys, "revoke", "all@example.com") == {"userId": user_id, "revoked": "all"}
    assert not works(phone)
    assert not works(tablet)
    status, out, _ = run(capsys, "sessions", user_id)
    assert (status, out) == (0, f"{user_id} has no live sessions\n")
    assert works(token_of(log_in("all@example.com")))


def test_reset_mfa_lets_the_password_alone_log_in(
    mail_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lost-phone path: the second factor is removed and the owner gets a notice mail."""
    user_id, token, _, _ = enrol("lost@example.com")
    assert problem(log_in("lost@example.com"))["code"] == "mfa_required"
    status, out, err = run(capsys, "reset-mfa", "lost@example.com")
    assert status == 0
    assert out.startswith(f"removed the second factor of {user_id}")
    (event,) = events(err, "admin_reset_mfa")
    assert f"user_id={user_id}" in event
    assert "was=on" in event
    assert works(token_of(log_in("lost@example.com")))
    assert works(token), "the sessions stay"
    assert run_json(capsys, "show", user_id)["mfa"] == {"totp": False, "recoveryCodesLeft": 0}
    queued = [json.loads(m.content) for m in mail_queue(mail_env).peek_messages(max_messages=32)]
    assert {"kind": "mfa_disabled", "email": "lost@example.com", "user_id": user_id} in queued
    assert run_json(capsys, "reset-mfa", user_id) == {"userId": user_id, "secondFactor": "no second factor"}
    status, out, err = run(capsys, "reset-mfa", user_id)
    assert (status, out, events(err, "admin_reset_mfa")) == (
        0,
        f"{user_id} (lost@example.com) has no second factor\n",
        [],
    )


def test_reset_mfa_removes_an_unconfirmed_enrolment(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pending secret that was never confirmed is removed too; no second-factor row remains."""
    user_id, token = register_account("pending@example.com")
    assert call(mfa_totp, {"password": PASSWORD}, token=token).status_code == 200
    assert run_json(capsys, "reset-mfa", user_id)["secondFactor"] == "pending enrolment removed"
    assert not [row for row in app_env.entities() if str(row["RowKey"]).startswith("mfa:")]


def test_export_discloses_everything_but_secrets(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """export: rows, sessions decoded, flags, a code; never the hash, secret, recovery codes or digests."""
    user_id, _, app, recovery_codes = enrol("me@example.com")
    code = account_service().codes.issue(
        "me@example.com", CodePurpose.RESET, user_id=user_id, address="me@example.com"
    )
    assert log_in("me@example.com", "wrong password!").status_code == 401
    status, out, err = run(capsys, "export", "me@example.com")  # --json is implied
    assert status == 0
    (event,) = events(err, "admin_export")
    assert f"user_id={user_id}" in event
    document = json.loads(out)
    assert (document["userId"], document["email"]) == (user_id, "me@example.com")
    assert document["login"]["UserId"] == user_id
    assert document["login"]["FailedLogins"] == 1
    assert document["login"]["withheld"] == ["PasswordHash"]
    account = document["account"]
    assert (account["Email"], account["MfaTotp"], account["RecoveryCodesLeft"]) == (
        "me@example.com",
        True,
        10,
    )
    assert account["CreatedAt"].endswith("Z")
    datetime.fromisoformat(account["CreatedAt"])
    assert any(s["live"] for s in account["Sessions"])
    assert set(account["Sessions"][0]) == {"id", "createdAt", "lastSeenAt", "userAgent", "amr", "live"}
    second_factor = document["secondFactor"]
    assert second_factor["RecoveryCodesLeft"] == 10
    assert set(second_factor["withheld"]) <= WITHHELD
    assert {"Secret", "RecoveryCodes"} <= set(second_factor["withheld"])
    (code_row,) = document["codes"]
    assert (code_row["UserId"], code_row["Address"], code_row["withheld"]) == (
        user_id,
        "me@example.com",
        ["Digest"],
    )
    assert code_row["ExpiresAt"].endswith("Z")
    assert document["alias"] is None

    rows = app_env.entities()
    stored_secrets = [app.secret, code, *recovery_codes]
    for row in rows:
        stored_secrets += [str(row[name]) for name in WITHHELD if row.get(name)]
    stored_secrets += json.loads(next(str(r["RecoveryCodes"]) for r in rows if "RecoveryCodes" in r))
    assert any(s.startswith("$argon2") for s in stored_secrets), "the hash is among what is looked for"
    assert len(stored_secrets) >= 3 + 10 + 10
    for secret in stored_secrets:
        assert secret not in out

    def keys(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for name, item in value.items():
                yield name
                yield from keys(item)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item)

    assert not set(keys(document)) & WITHHELD


def test_delete_leaves_no_row_of_the_account(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every row goes (login, account, second factor, code, alias); others stay; the email is free again."""
    bystander, _ = register_account("bystander@example.com")
    user_id, token, _, _ = enrol("gone@example.com")
    account_service().codes.issue("gone@example.com", CodePurpose.VERIFY, user_id=user_id, address="x@y.z")
    assert log_in("gone@example.com", "wrong password!").status_code == 401
    legacy = "Custom:" + secrets.token_hex(4)
    salt = base64.b64encode(secrets.token_bytes(32)).decode()
    legacy_hash = legacy_stored_hash(salt, base64.b64encode(secrets.token_bytes(32)).decode())
    store = AccountStore(get_settings().storage)
    store.import_legacy(legacy, "old@example.com", legacy_hash, datetime(2015, 3, 4, tzinfo=UTC))
    assert run_json(capsys, "show", legacy)["email"] == "old@example.com"
    before = len(app_env.entities())
    owned = len([row for row in row_texts(app_env) if user_id in row or "gone@example.com" in row])
    assert owned == 4, "login, account, second factor, code"

    status, out, err = run(capsys, "delete", "gone@example.com", "--yes")
    assert status == 0
    assert out == f"deleted {user_id} (gone@example.com): 4 rows\n"
    (event,) = events(err, "admin_delete")
    assert f"user_id={user_id}" in event
    assert "rows=4" in event
    assert len(app_env.entities()) == before - 4
    assert not [row for row in row_texts(app_env) if user_id in row or "gone@example.com" in row]
    assert not works(token)
    assert log_in("gone@example.com").status_code == 401
    register_account("gone@example.com")

    assert run_json(capsys, "delete", legacy, "--yes") == {"userId": legacy, "deleted": True, "rows": 3}
    assert not [row for row in row_texts(app_env) if legacy in row or "old@example.com" in row]
    assert run(capsys, "show", bystander)[0] == 0


def test_delete_asks_for_confirmation(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes only a typed "yes" deletes; anything else aborts with exit 1 and deletes nothing."""
    user_id, _ = register_account("ask@example.com")
    for answer in ("no\n", "", "YES please\n"):
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
        status, out, err = run(capsys, "delete", user_id)
        assert (status, out) == (1, "")
        assert err.startswith(f"Delete {user_id} (ask@example.com) and every row of it?")
        assert err.endswith("error: not confirmed; nothing deleted\n")
        assert run(capsys, "show", user_id)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert run(capsys, "delete", user_id)[0] == 0
    assert run(capsys, "show", user_id)[0] == 1


def race_once(
    monkeypatch: pytest.MonkeyPatch, owner: Any, method: str, interloper: Callable[[], Any]
) -> None:
    """Make the first call of ``owner.method`` run ``interloper`` (a request of the app) just before it."""
    original = getattr(owner, method)
    pending = [interloper]

    def racing(self: Any, *args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, racing)


def test_lost_races_are_retried(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request between the tool's read and its write wins the race; the tool reads again and still acts."""
    user_id, phone = register_account("race@example.com")
    assert log_in("race@example.com", "wrong password!").status_code == 401
    race_once(monkeypatch, AccountStore, "update_login", lambda: log_in("race@example.com", "wrong password"))
    assert run_json(capsys, "unlock", user_id) == {"userId": user_id, "changed": True, "failedLogins": 2}
    assert run_json(capsys, "show", user_id)["lockout"]["failedLogins"] == 0

    raced: list[str] = []
    race_once(
        monkeypatch,
        AccountStore,
        "revoke_sessions",
        lambda: raced.append(token_of(log_in("race@example.com"))),
    )
    assert run(capsys, "revoke", user_id)[0] == 0
    assert not works(phone)
    assert not works(raced[0]), "a login just before the revocation is revoked too"

    tablet = token_of(log_in("race@example.com"))
    race_once(
        monkeypatch, AccountStore, "set_disabled", lambda: raced.append(token_of(log_in("race@example.com")))
    )
    assert run(capsys, "disable", user_id)[0] == 0
    assert not works(tablet)
    assert not works(raced[1])
    assert run(capsys, "enable", user_id)[0] == 0

    issue = account_service().codes.issue
    original_rows = AccountAdmin.rows
    calls: list[int] = []

    def rows_then_a_new_code(self: AccountAdmin, account: Any) -> Any:
        found = original_rows(self, account)
        if not calls:
            issue("race@example.com", CodePurpose.RESET, user_id=user_id, address="race@example.com")
        calls.append(1)
        return found

    monkeypatch.setattr(AccountAdmin, "rows", rows_then_a_new_code)
    assert run_json(capsys, "delete", user_id, "--yes")["rows"] == 3, "login, account, then the new code"
    assert len(calls) == 3
    assert not [row for row in row_texts(app_env) if user_id in row or "race@example.com" in row]


def test_as_an_operator_runs_it(app_env: AppEnvironment, tmp_path: Path) -> None:
    """A process of its own, settings from a local.settings.json: exit 0, 1, 2 (settings), 3 (storage)."""
    user_id, _ = register_account("op@example.com")
    environment = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS}

    def tool(values: dict[str, str], *args: str) -> tuple[int, str, str]:
        settings = tmp_path / f"{secrets.token_hex(4)}.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        completed = subprocess.run(
            [sys.executable, "-m", "tools.admin", *args, "--settings", str(settings)],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return completed.returncode, completed.stdout, completed.stderr

    status, out, err = tool(app_env.values, "show", "--json", "op@example.com")
    assert (status, err) == (0, "")
    assert json.loads(out)["userId"] == user_id
    status, out, err = tool(app_env.values, "show", "no@example.com")
    assert (status, out, err) == (1, "", "error: no account with email no@example.com\n")
    unsigned = {k: v for k, v in app_env.values.items() if k != "AUTH_SIGNING_KEY"}
    status, _, err = tool(unsigned, "show", user_id)
    assert status == 2
    assert (
        err.splitlines()[-1]
        == "error: app setting AUTH_SIGNING_KEY is not set (nor is WEBSITE_AUTH_SIGNING_KEY)"
    )
    unreachable = app_env.values | {"ACCOUNTS_STORAGE_CONNECTION": table_connection_string(free_port())}
    status, out, err = tool(unreachable, "disable", user_id)
    assert (status, out) == (3, "")
    assert err.splitlines()[-1] == "error: Account storage is temporarily unavailable"


def test_a_session_revoked_by_the_tool_is_refused_on_every_instance(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two instances of the app on one table: a session the tool ends is refused by both at once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_local_host(tmp_path / "a", dict(app_env.values))
    b = start_local_host(tmp_path / "b", dict(app_env.values))
    try:
        email = "two@example.com"
        phone = a.post("register", {"email": email, "password": PASSWORD}).json()["token"]
        tablet = b.post("login", {"email": email, "password": PASSWORD}).json()["token"]
        for host in (a, b):
            for token in (phone, tablet):
                assert host.call("GET", "me", token=token).status_code == 200
        assert run(capsys, "revoke", email, "--session", sid(tablet))[0] == 0
        for host in (a, b):
            assert host.call("GET", "me", token=tablet).status_code == 401
            assert host.call("GET", "me", token=phone).status_code == 200
        assert run(capsys, "revoke", email)[0] == 0
        for host in (a, b):
            assert host.call("GET", "me", token=phone).status_code == 401
    finally:
        a.stop()
        b.stop()


class TestReencrypt:
    """reencrypt: every second-factor row sealed again under the current key, paged and resumable."""

    def test_a_rotation_completes_and_the_old_key_can_go(
        self, app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--dry-run counts and writes nothing; --from carries on; afterwards the old key is not needed."""
        import login_mfa

        enrolled = [enrol(f"rotate{n}@example.com") for n in range(3)]
        old_key = app_env.values["AUTH_ENCRYPTION_KEY"]
        new_key = secrets.token_hex(32)
        app_env.set(AUTH_ENCRYPTION_KEY=new_key, AUTH_PREVIOUS_ENCRYPTION_KEYS=old_key)
        before = {e["RowKey"]: e["Secret"] for e in app_env.entities() if e["RowKey"].startswith("mfa:")}

        status, out, err = run(capsys, "reencrypt", "--dry-run", "--page-size", "1")
        assert status == 0, err
        assert "examined 3 second-factor rows: would reseal 3" in out
        after_dry_run = {
            e["RowKey"]: e["Secret"] for e in app_env.entities() if e["RowKey"].startswith("mfa:")
        }
        assert after_dry_run == before
        resume = re.search(r"resume with --from (\S+)", err)
        assert resume is not None, err

        status, out, err = run(capsys, "reencrypt", "--from", resume[1], "--page-size", "1")
        assert status == 0, err
        assert "examined 2 second-factor rows: resealed 2" in out
        document = run_json(capsys, "reencrypt")
        assert (document["examined"], document["resealed"], document["unreadable"]) == (3, 1, 0)
        assert events(capsys.readouterr().err, "admin_reencrypt") == []  # read by run_json already
        new_id = key_id(bytes.fromhex(new_key))
        rows = [e for e in app_env.entities() if e["RowKey"].startswith("mfa:")]
        assert {e["Secret"].split(".")[1] for e in rows} == {new_id}
        assert {e["RecoveryKey"].split(".")[1] for e in rows} == {new_id}

        app_env.set(AUTH_PREVIOUS_ENCRYPTION_KEYS=None)
        for n, (_, _, _, codes) in enumerate(enrolled):
            first = call(login, {"email": f"rotate{n}@example.com", "password": PASSWORD})
            mfa_token = problem(first)["mfaToken"]
            second = call(login_mfa, {"mfaToken": mfa_token, "recoveryCode": codes[0]})
            assert second.status_code == 200, second.get_body()

    def test_rows_no_key_opens_are_counted_and_left(
        self, app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A row sealed under a key no longer configured is reported (exit 1), not rewritten."""
        enrol("lost-key@example.com")
        app_env.set(AUTH_ENCRYPTION_KEY=secrets.token_hex(32))
        status, out, _ = run(capsys, "reencrypt")
        assert status == 1
        assert "1 open under no configured key" in out
        assert run(capsys, "reencrypt", "--from", "not-a-token")[0] == 2

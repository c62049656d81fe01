"""Changing an account's email: password, code to the new address, the move, and its interruptions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

import email_change
import email_change_confirm
import login
import me
import register
from shared.accounts.store import partition_for_email
from tests.conftest import AppEnvironment, http_request, problem
from tests.faultproxy import FaultProxy
from tests.mailtest import Inbox, deliver_queued
from tools.emulators.azurite import Azurite, table_connection_string

PASSWORD = "correct horse battery"


def call(function: Any, body: Any, token: str | None = None, route: str = "x") -> func.HttpResponse:
    response: func.HttpResponse = function.main(http_request("POST", route, body, token=token))
    return response


def register_account(email: str) -> str:
    response = call(register, {"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_body()
    token: str = json.loads(response.get_body())["token"]
    return token


def log_in(email: str) -> int:
    status: int = call(login, {"email": email, "password": PASSWORD}).status_code
    return status


def profile(token: str) -> dict[str, Any]:
    response = me.main(http_request("GET", "me", token=token))
    assert response.status_code == 200, response.get_body()
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def change_code(env: AppEnvironment, inbox: Inbox, token: str, new_email: str) -> str:
    response = call(email_change, {"password": PASSWORD, "newEmail": new_email}, token)
    assert response.status_code == 202, response.get_body()
    deliver_queued(env)
    return inbox.wait_for(new_email)[-1].code


def partner_in_same_partition(email: str) -> str:
    """Another email whose login row shares ``email``'s partition."""
    target = partition_for_email(email)
    return next(
        candidate
        for candidate in (f"same{i}@example.com" for i in range(10_000))
        if partition_for_email(candidate) == target and candidate != email
    )


def partner_in_other_partition(email: str) -> str:
    target = partition_for_email(email)
    return next(c for c in (f"other{i}@example.com" for i in range(100)) if partition_for_email(c) != target)


def assert_one_account_at(env: AppEnvironment, email: str) -> None:
    """One login row (with an account) and one account row, both of ``email``, with no move marks."""
    entities = env.entities()
    logins = [e for e in entities if e["RowKey"].startswith("email:") and e.get("UserId")]
    accounts = [
        e for e in entities if e["RowKey"].startswith("user:") and e["PartitionKey"].startswith("acct-")
    ]
    assert [e["Email"] for e in logins] == [email]
    assert [e["Email"] for e in accounts] == [email]
    assert logins[0]["PartitionKey"] == accounts[0]["PartitionKey"] == partition_for_email(email)
    assert all(not e.get("MovingTo") and not e.get("MovedFrom") for e in logins + accounts)


class TestEmailChange:
    """POST /api/me/email and /api/me/email/confirm."""

    @pytest.mark.parametrize("partner", [partner_in_other_partition, partner_in_same_partition])
    def test_the_account_moves_to_the_new_email(
        self, mail_env: AppEnvironment, inbox: Inbox, partner: Any
    ) -> None:
        """Login works with the new email only, tokens keep working, the old address is told."""
        token = register_account("old@example.com")
        user_id = profile(token)["userId"]
        new_email = partner("old@example.com")
        code = change_code(mail_env, inbox, token, new_email)
        confirmed = call(email_change_confirm, {"code": code}, token)
        assert confirmed.status_code == 200, confirmed.get_body()
        body = json.loads(confirmed.get_body())
        assert body["email"] == new_email
        assert body["emailVerified"] is True
        assert body["userId"] == user_id
        assert log_in(new_email) == 200
        assert log_in("old@example.com") == 401
        assert profile(token)["email"] == new_email
        deliver_queued(mail_env)
        notice = inbox.to("old@example.com")[-1]
        assert f"{new_email[0]}***@example.com" in notice.text
        assert_one_account_at(mail_env, new_email)
        # The old email is free again.
        assert call(register, {"email": "old@example.com", "password": PASSWORD}).status_code == 201

    def test_a_wrong_password_is_401_and_counts(self, mail_env: AppEnvironment) -> None:
        """The password is checked first, under the lockout."""
        token = register_account("old@example.com")
        response = call(email_change, {"password": "wrong password!", "newEmail": "n@example.com"}, token)
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_credentials"

    def test_a_taken_address_gets_a_notice_and_the_same_answer(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """An address with an account gets a notice, no code; the requester sees the same 202."""
        token = register_account("old@example.com")
        register_account("taken@example.com")
        register_account("other@example.com")
        deliver_queued(mail_env)
        free = call(email_change, {"password": PASSWORD, "newEmail": "free@example.com"}, token)
        taken = call(email_change, {"password": PASSWORD, "newEmail": "taken@example.com"}, token)
        assert (free.status_code, free.get_body()) == (taken.status_code, taken.get_body())
        deliver_queued(mail_env)
        notice = inbox.wait_for("taken@example.com", 2)[-1]
        assert "already" in notice.text.lower()
        assert len(inbox.wait_for("free@example.com")[0].code) == 8

    def test_a_wrong_code_is_refused(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """400 invalid_code, and nothing moves."""
        token = register_account("old@example.com")
        code = change_code(mail_env, inbox, token, "new@example.com")
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        assert problem(call(email_change_confirm, {"code": wrong}, token))["code"] == "invalid_code"
        assert log_in("old@example.com") == 200

    def test_a_registration_race_has_one_owner(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """The new email registered before the confirmation: 409, the old email stays."""
        token = register_account("old@example.com")
        code = change_code(mail_env, inbox, token, "contested@example.com")
        register_account("contested@example.com")
        refused = call(email_change_confirm, {"code": code}, token)
        assert refused.status_code == 409
        assert problem(refused)["code"] == "email_taken"
        assert log_in("old@example.com") == 200
        assert profile(token)["email"] == "old@example.com"

    def test_concurrent_registration_and_confirmation_give_one_owner(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """Run together, exactly one of them gets the new email."""
        token = register_account("old@example.com")
        code = change_code(mail_env, inbox, token, "race@example.com")
        results: dict[str, int] = {}
        barrier = threading.Barrier(2)

        def confirm() -> None:
            barrier.wait()
            results["confirm"] = call(email_change_confirm, {"code": code}, token).status_code

        def sign_up() -> None:
            barrier.wait()
            results["register"] = call(
                register, {"email": "race@example.com", "password": PASSWORD}
            ).status_code

        threads = [threading.Thread(target=confirm), threading.Thread(target=sign_up)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) in ([200, 409], [201, 409])
        owners = [e for e in mail_env.entities() if e["RowKey"].startswith("email:race") and e.get("UserId")]
        assert len(owners) == 1
        logins = [e for e in mail_env.entities() if e["RowKey"].startswith("email:") and e.get("UserId")]
        # The account logs in with one email; the newcomer, if it won, with race@.
        assert len(logins) == (1 if results["confirm"] == 200 else 2)


@pytest.fixture
def proxy(mail_env: AppEnvironment, own_azurite: Azurite) -> Iterator[FaultProxy]:
    """Table Storage through a proxy that can fail chosen requests."""
    server = FaultProxy(own_azurite.table_port)
    mail_env.set(ACCOUNTS_STORAGE_CONNECTION=table_connection_string(server.port))
    yield server
    server.close()


class TestInterruptedChange:
    """A change cut off at each step is completed by the next attempt."""

    @pytest.mark.parametrize(
        ("failing", "nth"),
        [
            (b"$batch", 2),  # after the old rows were marked: the copy fails
            (b"alias-", 1),  # after the copy: pointing the alias fails
            (b"$batch", 3),  # after the alias: deleting the old rows (the commit) fails
            (b"$batch", 4),  # after the commit: clearing the marks fails
        ],
        ids=["marked", "copied", "aliased", "committed"],
    )
    @pytest.mark.parametrize("resume_by", ["confirm", "login-old", "login-new"])
    def test_interrupted_change_completes(  # noqa: PLR0917 - pytest passes fixtures by name
        self,
        mail_env: AppEnvironment,
        inbox: Inbox,
        proxy: FaultProxy,
        failing: bytes,
        nth: int,
        resume_by: str,
    ) -> None:
        """Whatever step failed, the next attempt leaves exactly the new email logging in."""
        token = register_account("old@example.com")
        new_email = partner_in_other_partition("old@example.com")
        code = change_code(mail_env, inbox, token, new_email)
        proxy.faults.reset()
        proxy.faults.only_containing, proxy.faults.from_request_number = failing, nth
        proxy.faults.error_status = 500
        failed = call(email_change_confirm, {"code": code}, token)
        assert failed.status_code == 503
        proxy.faults.reset()
        if resume_by == "confirm":
            resumed = call(email_change_confirm, {"code": code}, token)
            assert resumed.status_code == 200, resumed.get_body()
        elif resume_by == "login-old":
            # Before the commit point the attempt completes the change and follows the account to its
            # new email, once; after it, the old email has no account any more.
            committed = failing == b"$batch" and nth == 4
            assert log_in("old@example.com") == (401 if committed else 200)
        elif nth == 2 and failing == b"$batch":
            # Cut off before the copy: nothing is at the new email yet, so it cannot log in;
            # the old one still does, and the next confirmation completes the change.
            assert log_in(new_email) == 401
            assert call(email_change_confirm, {"code": code}, token).status_code == 200
        else:
            assert log_in(new_email) == 200
        assert log_in(new_email) == 200
        assert log_in("old@example.com") == 401
        assert profile(token)["email"] == new_email
        assert_one_account_at(mail_env, new_email)

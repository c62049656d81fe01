"""Email verification by mail, and registration that requires it; against Azurite and a real SMTP server."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

import email_verification
import email_verify
import login
import me
import register
from tests.conftest import AppEnvironment, http_request, problem
from tests.mailtest import Inbox, deliver_queued

PASSWORD = "correct horse battery"


def call(function: Any, body: Any) -> func.HttpResponse:
    response: func.HttpResponse = function.main(http_request("POST", function.__name__, body))
    return response


def profile(token: str) -> dict[str, Any]:
    response = me.main(http_request("GET", "me", token=token))
    assert response.status_code == 200
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def verify(email: str, code: str) -> func.HttpResponse:
    return call(email_verify, {"email": email, "code": code})


class TestVerification:
    """Registration's verification mail, POST /api/email/verify and /api/email/verification."""

    def test_registration_mails_a_code_that_verifies(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """emailVerified goes from false to true with the mailed code, which then works no more."""
        response = call(register, {"email": "alice@example.com", "password": PASSWORD})
        assert response.status_code == 201
        token = json.loads(response.get_body())["token"]
        assert profile(token)["emailVerified"] is False
        deliver_queued(mail_env)
        (mail,) = inbox.wait_for("alice@example.com")
        assert "verify" in mail.subject.lower() or "confirm" in mail.subject.lower()
        assert verify("alice@example.com", mail.code).status_code == 204
        assert profile(token)["emailVerified"] is True
        assert problem(verify("alice@example.com", mail.code))["code"] == "invalid_code"

    def test_a_new_code_on_request_only_for_unverified_accounts(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """Known, unknown and verified emails get the same 202; only the unverified account gets mail."""
        call(register, {"email": "alice@example.com", "password": PASSWORD})
        call(register, {"email": "bob@example.com", "password": PASSWORD})
        deliver_queued(mail_env)
        bob_code = inbox.wait_for("bob@example.com")[0].code
        assert verify("bob@example.com", bob_code).status_code == 204
        answers = {
            call(email_verification, {"email": email}).get_body()
            for email in ("alice@example.com", "bob@example.com", "nobody@example.com")
        }
        assert len(answers) == 1
        deliver_queued(mail_env)
        assert len(inbox.wait_for("alice@example.com", 2)) == 2
        assert len(inbox.to("bob@example.com")) == 1
        assert inbox.to("nobody@example.com") == []

    def test_a_code_works_only_for_its_email(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """Alice's code does not verify Bob."""
        call(register, {"email": "alice@example.com", "password": PASSWORD})
        call(register, {"email": "bob@example.com", "password": PASSWORD})
        deliver_queued(mail_env)
        alice_code = inbox.wait_for("alice@example.com")[0].code
        assert problem(verify("bob@example.com", alice_code))["code"] == "invalid_code"


class TestRequireVerifiedEmail:
    """AUTH_REQUIRE_VERIFIED_EMAIL=true."""

    def test_registration_tells_nobody_which_emails_have_accounts(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """New and existing emails get the same 202 and no token; the owner is told by mail."""
        mail_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true")
        first = call(register, {"email": "alice@example.com", "password": PASSWORD})
        again = call(register, {"email": "alice@example.com", "password": "another passphrase"})
        assert first.status_code == again.status_code == 202
        assert first.get_body() == again.get_body()
        assert "token" not in json.loads(first.get_body())
        deliver_queued(mail_env)
        verification, notice = inbox.wait_for("alice@example.com", 2)
        assert len(verification.code) == 8
        assert "reset" in notice.text.lower()
        # The second registration changed nothing: the first password stands once verified.
        assert verify("alice@example.com", verification.code).status_code == 204
        assert call(login, {"email": "alice@example.com", "password": PASSWORD}).status_code == 200
        wrong = call(login, {"email": "alice@example.com", "password": "another passphrase"})
        assert wrong.status_code == 401

    def test_login_of_an_unverified_account_is_403_only_with_the_right_password(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """403 email_not_verified after the password checked out; a wrong one stays 401."""
        mail_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true")
        call(register, {"email": "alice@example.com", "password": PASSWORD})
        refused = call(login, {"email": "alice@example.com", "password": PASSWORD})
        assert refused.status_code == 403
        assert problem(refused)["code"] == "email_not_verified"
        wrong = call(login, {"email": "alice@example.com", "password": "wrong password!"})
        assert problem(wrong)["code"] == "invalid_credentials"

    def test_it_needs_a_transport(self, app_env: AppEnvironment) -> None:
        """Requiring verification without mail is a misconfiguration that names the setting."""
        app_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true")
        response = call(register, {"email": "alice@example.com", "password": PASSWORD})
        assert response.status_code == 500
        assert problem(response)["code"] == "server_misconfigured"

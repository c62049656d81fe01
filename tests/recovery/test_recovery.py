"""Password reset by mail: forgot, the code, reset; against Azurite and a real SMTP server."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

import login
import me
import password_forgot
import password_reset
import register
from shared.accounts.store import partition_for_email
from tests.conftest import AppEnvironment, http_request, problem
from tests.mailtest import Inbox, deliver_queued, mail_queue

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def call(
    function: Any, body: Any, *, token: str | None = None, client: str | None = None
) -> func.HttpResponse:
    route = function.__name__.replace("_", "/")
    response: func.HttpResponse = function.main(http_request("POST", route, body, token=token, client=client))
    return response


def register_account(email: str) -> str:
    response = call(register, {"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_body()
    token: str = json.loads(response.get_body())["token"]
    return token


def forgot(email: str) -> func.HttpResponse:
    return call(password_forgot, {"email": email})


def reset(email: str, code: str, new_password: str = NEW_PASSWORD) -> func.HttpResponse:
    return call(password_reset, {"email": email, "code": code, "newPassword": new_password})


def log_in(email: str, password: str) -> int:
    status: int = call(login, {"email": email, "password": password}).status_code
    return status


def reset_code(env: AppEnvironment, inbox: Inbox, email: str, count: int = 1) -> str:
    """Ask for a reset, deliver the queued mails, and return the code of the newest mail."""
    assert forgot(email).status_code == 202
    deliver_queued(env)
    mails = [m for m in inbox.wait_for(email, count) if "reset" in m.subject.lower()]
    return mails[-1].code


class TestForgot:
    """POST /api/password/forgot."""

    def test_known_and_unknown_email_get_the_same_answer(self, mail_env: AppEnvironment) -> None:
        """Same status, body and headers; only the known email gets a mail."""
        register_account("known@example.com")
        deliver_queued(mail_env)  # the registration's verification mail
        answers = {
            (r.status_code, r.get_body(), tuple(sorted(r.headers.items())))
            for r in (forgot("known@example.com"), forgot("unknown@example.com"))
        }
        assert len(answers) == 1
        ((status, body, _),) = answers
        assert status == 202
        assert json.loads(body)["status"] == "accepted"

    def test_only_an_account_gets_a_mail(
        self, mail_env: AppEnvironment, inbox: Inbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The mail function drops a request for an unknown address, with a log line."""
        register_account("known@example.com")
        forgot("known@example.com")
        forgot("unknown@example.com")
        with caplog.at_level(logging.INFO):
            assert deliver_queued(mail_env) == 3
        mails = inbox.wait_for("known@example.com", 2)
        assert inbox.to("unknown@example.com") == []
        reset_mail = next(m for m in mails if "reset" in m.subject.lower())
        assert reset_mail.message.get_content_type() == "multipart/alternative"
        assert len(reset_mail.code) == 8
        assert "event=mail_dropped" in caplog.text
        assert "reason=unknown_address" in caplog.text

    def test_an_unknown_address_costs_the_mail_function_what_a_known_one_does(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """The mail function's storage round trips for an unknown address match a sent mail's; no mail."""
        from shared.storage import storage_requests

        register_account("known@example.com")
        deliver_queued(mail_env)  # the verification mail
        inbox.wait_for("known@example.com")
        counts = {}
        for email in ("known@example.com", "unknown@example.com"):
            forgot(email)
            storage_requests.reset()
            assert deliver_queued(mail_env) == 1
            counts[email] = storage_requests.count
        assert counts["known@example.com"] == counts["unknown@example.com"], counts
        assert len(inbox.wait_for("known@example.com", 2)) == 2
        assert inbox.to("unknown@example.com") == []

    def test_a_queued_mail_stays_invisible_for_its_delay(self, mail_env: AppEnvironment) -> None:
        """With AUTH_MAIL_DELAY_SECONDS the message is queued but the mail function cannot see it yet."""
        mail_env.set(AUTH_MAIL_DELAY_SECONDS="50-60")
        register_account("known@example.com")
        assert forgot("known@example.com").status_code == 202
        queue = mail_queue(mail_env)
        assert queue.get_queue_properties().approximate_message_count == 2  # the verification mail too
        assert list(queue.peek_messages(max_messages=32)) == []
        assert deliver_queued(mail_env) == 0

    def test_forgot_does_not_read_the_account(self, mail_env: AppEnvironment) -> None:
        """The HTTP function only queues: no Table Storage request at all (the per-address limit is off)."""
        from shared.storage import storage_requests

        register_account("known@example.com")
        storage_requests.reset()
        assert forgot("known@example.com").status_code == 202
        # One request: the queue put (the queue client shares the storage request counter).
        assert storage_requests.count == 1

    def test_an_invalid_email_is_400(self, mail_env: AppEnvironment) -> None:
        """A syntactically invalid email is a clear 400."""
        response = forgot("not an email")
        assert response.status_code == 400
        assert problem(response)["code"] == "invalid_request"

    def test_without_a_transport_the_mail_routes_say_so(self, app_env: AppEnvironment) -> None:
        """No mail transport: 501 mail_not_configured, nothing queued."""
        for response in (forgot("a@example.com"), reset("a@example.com", "12345678")):
            assert response.status_code == 501
            assert problem(response)["code"] == "mail_not_configured"

    def test_same_work_and_answer_for_known_and_unknown_emails(self, mail_env: AppEnvironment) -> None:
        """Forgot does the same work for an account and for no account: same bytes, one storage request (the
        queued mail) each. (Its latency, and the requests after it, are timed in ``make bench`` figure 9b.)"""
        from shared.storage import storage_requests

        register_account("known@example.com")
        queue = mail_queue(mail_env)
        seen: dict[str, tuple[int, dict[str, str], bytes, int, int]] = {}
        for email in ("known@example.com", "unknown@example.com"):
            before = queue.get_queue_properties().approximate_message_count or 0
            storage_requests.reset()
            response = forgot(email)
            queued = (queue.get_queue_properties().approximate_message_count or 0) - before
            headers = dict(response.headers)
            seen[email] = (response.status_code, headers, response.get_body(), storage_requests.count, queued)
        assert seen["known@example.com"] == seen["unknown@example.com"]
        assert seen["known@example.com"][3:] == (1, 1)  # one storage request: the queued mail; no table read


class TestReset:
    """POST /api/password/reset."""

    def test_reset_changes_the_password_and_ends_every_session(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """New password works, old one and old tokens do not, the code works once."""
        token = register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        assert reset("alice@example.com", code).status_code == 204
        assert log_in("alice@example.com", NEW_PASSWORD) == 200
        assert log_in("alice@example.com", PASSWORD) == 401
        assert me.main(http_request("GET", "me", token=token)).status_code == 401
        again = reset("alice@example.com", code, "yet another passphrase")
        assert again.status_code == 400
        assert problem(again)["code"] == "invalid_code"

    def test_reset_marks_the_email_verified_and_sends_a_notice(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """The code proved the address; the owner is told the password changed."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        assert reset("alice@example.com", code).status_code == 204
        token = json.loads(call(login, {"email": "alice@example.com", "password": NEW_PASSWORD}).get_body())
        profile = json.loads(me.main(http_request("GET", "me", token=token["token"])).get_body())
        assert profile["emailVerified"] is True
        deliver_queued(mail_env)
        notice = inbox.wait_for("alice@example.com", 3)[-1]
        assert "password" in notice.subject.lower()
        assert not any(line.strip().isdigit() and len(line.strip()) == 8 for line in notice.text.splitlines())

    def test_wrong_codes_get_one_answer(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """Wrong code, unknown email, malformed code: one status and body."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        answers = {
            (r.status_code, r.get_body())
            for r in (
                reset("alice@example.com", wrong),
                reset("nobody@example.com", code),
                reset("alice@example.com", "abc"),
            )
        }
        assert len(answers) == 1
        ((status, body),) = answers
        assert status == 400
        assert json.loads(body)["code"] == "invalid_code"

    def test_five_wrong_codes_kill_the_code(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """After 5 wrong tries even the right code is refused."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        for _ in range(5):
            assert reset("alice@example.com", wrong).status_code == 400
        assert problem(reset("alice@example.com", code))["code"] == "invalid_code"
        assert log_in("alice@example.com", PASSWORD) == 200

    def test_a_weak_password_spends_no_try(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """A weak new password is refused before the code is looked at."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        for _ in range(6):
            response = reset("alice@example.com", code, "password")
            assert problem(response)["code"] == "weak_password"
        assert reset("alice@example.com", code).status_code == 204

    def test_a_newer_code_replaces_the_older(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """Only the latest code of a purpose works."""
        register_account("alice@example.com")
        first = reset_code(mail_env, inbox, "alice@example.com", 2)
        second = reset_code(mail_env, inbox, "alice@example.com", 3)
        assert problem(reset("alice@example.com", first))["code"] == "invalid_code"
        assert reset("alice@example.com", second).status_code == 204

    def test_an_expired_code_is_refused(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """A code past its ExpiresAt is refused."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        table = mail_env.table()
        row = next(e for e in table.list_entities() if e["RowKey"].startswith("code:reset:"))
        row["ExpiresAt"] = datetime.now(UTC) - timedelta(seconds=1)
        table.update_entity(row)
        assert problem(reset("alice@example.com", code))["code"] == "invalid_code"

    def test_a_reset_clears_the_lockout(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """A locked-out user gets back in with a reset."""
        mail_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
        register_account("alice@example.com")
        for _ in range(3):
            log_in("alice@example.com", "wrong password!")
        assert log_in("alice@example.com", PASSWORD) == 429
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        assert reset("alice@example.com", code).status_code == 204
        assert log_in("alice@example.com", NEW_PASSWORD) == 200

    def test_the_table_holds_no_code(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """Codes are stored only as keyed HMACs."""
        register_account("alice@example.com")
        code = reset_code(mail_env, inbox, "alice@example.com", 2)
        for entity in mail_env.entities():
            assert code not in json.dumps(entity, default=str)
        codes = [e for e in mail_env.entities() if e["RowKey"].startswith("code:")]
        assert {e["PartitionKey"] for e in codes} == {partition_for_email("alice@example.com")}

    def test_a_reset_code_does_not_verify_and_a_verify_code_does_not_reset(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """Codes work only for their purpose."""
        import email_verify

        register_account("alice@example.com")
        deliver_queued(mail_env)
        verify_code = inbox.wait_for("alice@example.com")[0].code
        assert problem(reset("alice@example.com", verify_code))["code"] == "invalid_code"
        reset_only = reset_code(mail_env, inbox, "alice@example.com", 2)
        response = call(email_verify, {"email": "alice@example.com", "code": reset_only})
        assert problem(response)["code"] == "invalid_code"


class TestMailLimits:
    """AUTH_MAIL_LIMIT and AUTH_RATE_LIMIT_MAIL."""

    def test_mails_over_the_limit_are_dropped_silently(
        self, mail_env: AppEnvironment, inbox: Inbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Over AUTH_MAIL_LIMIT the answer is unchanged and the mail is not sent."""
        mail_env.set(AUTH_MAIL_LIMIT="2/3600")
        register_account("alice@example.com")
        answers = {forgot("alice@example.com").get_body() for _ in range(4)}
        assert len(answers) == 1
        with caplog.at_level(logging.INFO):
            deliver_queued(mail_env)
        resets = [m for m in inbox.wait_for("alice@example.com", 3) if "reset" in m.subject.lower()]
        time.sleep(0.5)
        assert len(resets) == 2
        assert "reason=mail_limit" in caplog.text

    def test_too_many_mail_requests_from_one_client_are_429(self, mail_env: AppEnvironment) -> None:
        """The per-address limit on mail requests refuses with Retry-After, the same for any email."""
        mail_env.set(AUTH_RATE_LIMIT_MAIL="3/300")
        statuses = [
            call(password_forgot, {"email": f"u{i}@example.com"}, client="203.0.113.9").status_code
            for i in range(4)
        ]
        assert statuses == [202, 202, 202, 429]
        refused = call(password_forgot, {"email": "other@example.com"}, client="203.0.113.9")
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
        assert mail_queue(mail_env).get_queue_properties().approximate_message_count == 3


class TestLinks:
    """Links in mails: the bundle's page, or the app's own link; the code always in the fragment."""

    def test_the_link_points_at_the_page_with_the_code_in_the_fragment(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """AUTH_PUBLIC_BASE_URL: the reset page of the bundle, never the request's Host."""
        mail_env.set(AUTH_PUBLIC_BASE_URL="https://auth.example.com")
        register_account("alice+x@example.com")
        code = reset_code(mail_env, inbox, "alice+x@example.com", 2)
        link = next(m for m in inbox.to("alice+x@example.com") if "reset" in m.subject.lower()).link
        assert (
            link == f"https://auth.example.com/api/password/reset#email=alice%2Bx%40example.com&code={code}"
        )

    def test_an_app_link_base_takes_the_links(self, mail_env: AppEnvironment, inbox: Inbox) -> None:
        """AUTH_APP_LINK_BASE: the app's universal link, the code again in the fragment."""
        mail_env.set(
            AUTH_PUBLIC_BASE_URL="https://auth.example.com", AUTH_APP_LINK_BASE="https://app.example.com/l"
        )
        register_account("alice@example.com")
        deliver_queued(mail_env)
        verify_mail = inbox.wait_for("alice@example.com")[0]
        assert verify_mail.link == (
            f"https://app.example.com/l/email/verify#email=alice%40example.com&code={verify_mail.code}"
        )

    def test_without_a_base_url_mails_carry_the_code_only(
        self, mail_env: AppEnvironment, inbox: Inbox
    ) -> None:
        """No AUTH_PUBLIC_BASE_URL: no link at all."""
        register_account("alice@example.com")
        deliver_queued(mail_env)
        assert inbox.wait_for("alice@example.com")[0].link is None


def test_a_disabled_account_gets_notices_only(
    mail_env: AppEnvironment, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """No reset code for a disabled account; the answer to forgot is unchanged."""
    from shared.accounts.store import AccountStore
    from shared.settings import get_settings

    register_account("alice@example.com")
    deliver_queued(mail_env)
    inbox.wait_for("alice@example.com")
    store = AccountStore(get_settings().storage)
    credentials = store.credentials("alice@example.com")
    assert credentials is not None
    account = store.account(credentials.user_id)
    assert account is not None
    store.set_disabled(account, True, "test")
    assert forgot("alice@example.com").status_code == 202
    with caplog.at_level(logging.INFO):
        deliver_queued(mail_env)
    assert "reason=account_disabled" in caplog.text
    assert len(inbox.to("alice@example.com")) == 1


def test_deleting_the_account_deletes_its_codes(mail_env: AppEnvironment, inbox: Inbox) -> None:
    """DELETE /api/me leaves no row of the account: no login, account or code row."""
    token = register_account("alice@example.com")
    reset_code(mail_env, inbox, "alice@example.com", 2)
    assert any(e["RowKey"].startswith("code:") for e in mail_env.entities())
    response = me.main(http_request("DELETE", "me", {"password": PASSWORD}, token=token))
    assert response.status_code == 204
    left = [e for e in mail_env.entities() if "alice" in json.dumps(e, default=str)]
    assert left == []

"""Sessions per device: listing, ending one or all, idle timeout, the cap, disabled accounts."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import azure.functions as func

import login
import me
import password
import register
import sessions
from shared.accounts.store import AccountStore
from shared.settings import get_settings
from shared.tokens.access_tokens import issue_token
from tests.conftest import (
    AppEnvironment,
    LocalHost,
    http_request,
    problem,
)

PASSWORD = "correct horse battery"


def call(
    function: Any,
    method: str = "POST",
    body: Any = None,
    *,
    token: str | None = None,
    route_params: dict[str, str] | None = None,
    user_agent: str = "TestApp/1.0 (iPhone; iOS 18)",
) -> func.HttpResponse:
    request = http_request(method, "x", body, token=token)
    request = func.HttpRequest(
        method=request.method,
        url=request.url,
        headers={**dict(request.headers), "User-Agent": user_agent},
        params={},
        route_params=route_params or {},
        body=request.get_body(),
    )
    response: func.HttpResponse = function.main(request)
    return response


def token_of(response: func.HttpResponse) -> str:
    assert response.status_code in (200, 201), response.get_body()
    return str(json.loads(response.get_body())["token"])


def log_in(email: str, user_agent: str = "TestApp/1.0") -> str:
    return token_of(call(login, body={"email": email, "password": PASSWORD}, user_agent=user_agent))


def listed(token: str) -> list[dict[str, Any]]:
    response = call(sessions, "GET", token=token)
    assert response.status_code == 200, response.get_body()
    found: list[dict[str, Any]] = json.loads(response.get_body())["sessions"]
    return found


def works(token: str) -> bool:
    status: int = call(me, "GET", token=token).status_code
    assert status in (200, 401)
    return status == 200


class TestListingAndEnding:
    """GET /api/sessions and DELETE /api/sessions[/{id}]."""

    def test_sessions_are_listed_newest_first_with_the_current_one_marked(
        self, app_env: AppEnvironment
    ) -> None:
        """Registration, then two logins: three sessions, each with its user agent."""
        first = token_of(
            call(register, body={"email": "s@example.com", "password": PASSWORD}, user_agent="A")
        )
        time.sleep(1.1)
        log_in("s@example.com", "B")
        time.sleep(1.1)
        third = log_in("s@example.com", "C")
        found = listed(third)
        assert [s["userAgent"] for s in found] == ["C", "B", "A"]
        assert [s["current"] for s in found] == [True, False, False]
        assert set(found[0]) == {"id", "createdAt", "lastSeenAt", "userAgent", "current"}
        assert [s["current"] for s in listed(first)] == [False, False, True]

    def test_ending_one_session_refuses_its_tokens_only(self, app_env: AppEnvironment) -> None:
        """DELETE /api/sessions/{id}: that device is out, this one stays."""
        phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        tablet = log_in("s@example.com")
        tablet_id = next(s["id"] for s in listed(phone) if not s["current"])
        assert call(sessions, "DELETE", token=phone, route_params={"id": tablet_id}).status_code == 204
        assert not works(tablet)
        assert works(phone)
        again = call(sessions, "DELETE", token=phone, route_params={"id": tablet_id})
        assert problem(again)["code"] == "not_found"

    def test_another_accounts_session_is_not_found(self, app_env: AppEnvironment) -> None:
        """An unknown id and another account's id get the same 404."""
        mine = token_of(call(register, body={"email": "a@example.com", "password": PASSWORD}))
        theirs = token_of(call(register, body={"email": "b@example.com", "password": PASSWORD}))
        their_id = listed(theirs)[0]["id"]
        answers = {
            call(sessions, "DELETE", token=mine, route_params={"id": session_id}).get_body()
            for session_id in (their_id, "0" * 24)
        }
        assert len(answers) == 1
        assert json.loads(answers.pop())["code"] == "not_found"
        assert works(theirs)

    def test_ending_every_session(self, app_env: AppEnvironment) -> None:
        """DELETE /api/sessions ends them all, this one and tokens from before sessions per device."""
        phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        tablet = log_in("s@example.com")
        account = AccountStore(get_settings().storage).credentials("s@example.com")
        assert account is not None
        legacy = issue_token(get_settings().tokens, account.user_id, session_version=0).token
        assert works(legacy), "a token without sid works until every session is ended"
        assert call(sessions, "DELETE", token=phone).status_code == 204
        assert not any(works(token) for token in (phone, tablet, legacy))

    def test_a_password_change_keeps_only_the_device_that_made_it(self, app_env: AppEnvironment) -> None:
        """The other sessions end; the new token is a new session of this device."""
        phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        tablet = log_in("s@example.com")
        body = {"currentPassword": PASSWORD, "newPassword": "another fine passphrase"}
        fresh = token_of(call(password, body=body, token=phone, user_agent="Phone"))
        assert not works(phone)
        assert not works(tablet)
        assert [(s["userAgent"], s["current"]) for s in listed(fresh)] == [("Phone", True)]


class TestLimits:
    """AUTH_SESSION_IDLE_SECONDS and AUTH_MAX_SESSIONS."""

    def test_an_idle_session_ends(self, app_env: AppEnvironment) -> None:
        """Used within the idle time it lives on; left alone longer, it is refused."""
        app_env.set(AUTH_SESSION_IDLE_SECONDS="4")
        token = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        for _ in range(3):
            time.sleep(2.2)
            assert works(token), "each use within the idle time keeps it alive"
        time.sleep(5)
        assert not works(token)

    def test_beyond_the_cap_the_least_recently_used_session_ends(self, app_env: AppEnvironment) -> None:
        """AUTH_MAX_SESSIONS=2: a third login pushes out the one used least recently."""
        app_env.set(AUTH_MAX_SESSIONS="2")
        first = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        time.sleep(1.1)
        second = log_in("s@example.com")
        time.sleep(1.1)
        third = log_in("s@example.com")
        assert works(third)
        assert not works(first)
        assert works(second)
        assert len(listed(third)) == 2


class TestDisabledAccounts:
    """An operator's disable and enable (the store's operation; the admin tool calls it)."""

    def test_disabling_refuses_tokens_at_once_and_login_only_after_the_password(
        self, app_env: AppEnvironment
    ) -> None:
        """Tokens 401 at once; login 403 account_disabled with the right password, 401 with a wrong one."""
        token = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
        store = AccountStore(get_settings().storage)
        account = store.account(json.loads(call(me, "GET", token=token).get_body())["userId"])
        assert account is not None
        store.set_disabled(account, True, "abuse report 123")
        assert not works(token)
        refused = call(login, body={"email": "s@example.com", "password": PASSWORD})
        assert (refused.status_code, problem(refused)["code"]) == (403, "account_disabled")
        wrong = call(login, body={"email": "s@example.com", "password": "wrong password!"})
        assert problem(wrong)["code"] == "invalid_credentials"
        disabled = store.account(account.user_id)
        assert disabled is not None
        store.set_disabled(disabled, False)
        assert works(log_in("s@example.com"))
        assert not works(token), "old sessions stay ended"


def test_a_session_ended_on_one_instance_is_refused_on_another(
    two_hosts: tuple[LocalHost, LocalHost],
) -> None:
    """Over HTTP: logout on A leaves the other device signed in on B; ending it on A refuses it on B."""
    a, b = two_hosts
    email = f"two-{secrets.token_hex(4)}@example.com"
    phone = a.post("register", {"email": email, "password": PASSWORD}).json()["token"]
    tablet = b.post("login", {"email": email, "password": PASSWORD}).json()["token"]
    laptop = b.post("login", {"email": email, "password": PASSWORD}).json()["token"]
    assert a.call("POST", "logout", token=laptop).status_code == 204
    assert b.call("GET", "me", token=laptop).status_code == 401
    assert b.call("GET", "me", token=tablet).status_code == 200
    found = b.call("GET", "sessions", token=phone).json()["sessions"]
    tablet_id = next(s["id"] for s in found if not s["current"])
    assert a.call("DELETE", f"sessions/{tablet_id}", token=phone).status_code == 204
    assert b.call("GET", "me", token=tablet).status_code == 401
    assert b.call("GET", "me", token=phone).status_code == 200


def test_refresh_keeps_the_session(app_env: AppEnvironment) -> None:
    """/api/refresh signs a token of the same device session; ending the session refuses both."""
    import jwt

    import refresh

    phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
    refreshed = token_of(call(refresh, token=phone))
    sid = jwt.decode(phone, options={"verify_signature": False})["sid"]
    assert jwt.decode(refreshed, options={"verify_signature": False})["sid"] == sid
    assert len(listed(refreshed)) == 1
    assert call(sessions, "DELETE", token=refreshed, route_params={"id": sid}).status_code == 204
    assert not works(phone)
    assert not works(refreshed)


def test_last_seen_is_written_at_most_once_per_interval(app_env: AppEnvironment) -> None:
    """The gate is one read; it adds a write only when last-seen is older than the interval."""
    from shared.storage import storage_requests

    app_env.set(AUTH_SESSION_IDLE_SECONDS="8")  # last-seen is written at most every 2 s
    token = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
    counts = []
    for _ in range(5):
        storage_requests.reset()
        assert works(token)
        counts.append(storage_requests.count)
    assert counts == [1, 1, 1, 1, 1], "within the interval: one point read per request"
    time.sleep(2.2)
    storage_requests.reset()
    assert works(token)
    assert storage_requests.count == 2, "past the interval: the read and one write of last-seen"
    storage_requests.reset()
    assert works(token)
    assert storage_requests.count == 1


def test_ending_every_session_survives_a_concurrent_session_write(app_env: AppEnvironment) -> None:
    """A login between the gate's read and the revocation does not make DELETE /api/sessions a no-op."""
    from shared.accounts.service import account_service

    phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
    service = account_service()
    account, _ = service.authenticate_session(phone)
    tablet = log_in("s@example.com")  # changes the account row after it was read
    service.end_all_sessions(account)
    assert not works(phone)
    assert not works(tablet)


def test_a_change_right_after_a_last_seen_write_is_not_a_conflict(app_env: AppEnvironment) -> None:
    """The gate's last-seen write moves the row's ETag; the same request's own change still succeeds."""
    app_env.set(AUTH_SESSION_IDLE_SECONDS="8")  # last-seen is written when older than 2 s
    phone = token_of(call(register, body={"email": "s@example.com", "password": PASSWORD}))
    log_in("s@example.com")
    time.sleep(2.2)
    body = {"currentPassword": PASSWORD, "newPassword": "another fine passphrase"}
    assert call(password, body=body, token=phone).status_code == 200
    app_env.set(AUTH_MAX_SESSIONS="1")
    again = {"email": "s@example.com", "password": "another fine passphrase"}
    tablet = token_of(call(login, body=again))
    time.sleep(2.2)
    other = token_of(call(login, body=again))
    other_id = next(s["id"] for s in listed(other) if s["current"])
    # The gate evicts the older session (a rewrite of the row) before ending this one by id.
    assert call(sessions, "DELETE", token=other, route_params={"id": other_id}).status_code == 204
    assert not works(tablet)

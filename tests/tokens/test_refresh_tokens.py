"""Refresh tokens: rotation, the grace retry, reuse, death with the session, concurrent redemptions."""

from __future__ import annotations

import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import UpdateMode

import login
import logout
import me
import password
import refresh
import register
import token_refresh
from shared.tokens import refresh_tokens
from shared.tokens.refresh_tokens import Redemption, RefreshState
from tests.conftest import AppEnvironment, LocalHost, http_request, problem

PASSWORD = "correct horse battery"


def call(function: Any, body: Any = None, *, token: str | None = None) -> func.HttpResponse:
    response: func.HttpResponse = function.main(http_request("POST", "x", body, token=token))
    return response


def session_of(response: func.HttpResponse) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.get_body()
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def redeem(refresh_token: str) -> func.HttpResponse:
    return call(token_refresh, {"refreshToken": refresh_token})


def signed_up(email: str) -> dict[str, Any]:
    return session_of(call(register, {"email": email, "password": PASSWORD}))


def works(token: str) -> bool:
    status: int = me.main(http_request("GET", "me", token=token)).status_code
    assert status in (200, 401)
    return status == 200


def refused(response: func.HttpResponse) -> bool:
    return response.status_code == 400 and bool(problem(response)["code"] == "invalid_grant")


def age_session(app_env: AppEnvironment, refresh_token: str, **seconds: int) -> None:
    """Move a session's stored times into the past (``l``: last seen, ``ri``: refresh token issued)."""
    session_id = refresh_token.split(".")[2]
    for entity in app_env.entities():
        name = f"S_{session_id}"
        if name in entity:
            document = json.loads(entity[name])
            for field, back in seconds.items():
                document[field] -= back
            row = {
                "PartitionKey": entity["PartitionKey"],
                "RowKey": entity["RowKey"],
                name: json.dumps(document),
            }
            app_env.table().update_entity(row, mode=UpdateMode.MERGE)
            return
    raise AssertionError("no such session")


class TestIssuing:
    """Every response that starts a session carries a refresh token and the token's lifetime."""

    def test_register_login_and_password_change(self, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_TOKEN_LIFETIME_SECONDS="900")
        started = [signed_up("issue@example.com")]
        started.append(session_of(call(login, {"email": "issue@example.com", "password": PASSWORD})))
        change = {"currentPassword": PASSWORD, "newPassword": "another good passphrase"}
        started.append(session_of(call(password, change, token=started[-1]["token"])))
        for body in started:
            assert body["expiresIn"] == 900
            parsed = refresh_tokens.parse(body["refreshToken"])
            assert parsed is not None
            assert (parsed.user_id, parsed.generation) == (body["userId"], 0)
            assert len(parsed.secret) == 43, "256 random bits"
        assert len({body["refreshToken"] for body in started}) == 3

    def test_only_a_digest_is_stored(self, app_env: AppEnvironment) -> None:
        body = signed_up("digest@example.com")
        secret = body["refreshToken"].rsplit(".", 1)[1]
        stored = json.dumps(app_env.entities(), default=str)
        assert secret not in stored
        assert body["refreshToken"] not in stored

    def test_the_token_refresh_keeps_its_shape(self, app_env: AppEnvironment) -> None:
        """POST /api/refresh stays as it was: an access token in, a fresh one out (and no refresh token)."""
        body = signed_up("old@example.com")
        fresh = session_of(call(refresh, token=body["token"]))
        assert "refreshToken" not in fresh
        assert {"authenticationToken", "user", "userId", "token", "expiresAt", "expiresIn"} <= fresh.keys()


class TestRotation:
    """Single use: each refresh token is spent for its successor."""

    def test_each_use_returns_a_new_refresh_token(self, app_env: AppEnvironment, caplog: Any) -> None:
        first = signed_up("rot@example.com")
        with caplog.at_level(logging.INFO):
            second = session_of(redeem(first["refreshToken"]))
        third = session_of(redeem(second["refreshToken"]))
        tokens = [first["refreshToken"], second["refreshToken"], third["refreshToken"]]
        assert len(set(tokens)) == 3
        assert [refresh_tokens.parse(t).generation for t in tokens] == [0, 1, 2]  # type: ignore[union-attr]
        assert works(third["token"])
        assert third["user"] == first["user"]
        assert "event=refresh_token_rotated" in caplog.text
        assert first["refreshToken"].rsplit(".", 1)[1] not in caplog.text

    def test_the_grace_retry_returns_the_same_successor(self, app_env: AppEnvironment) -> None:
        """The token spent last, retried within the grace, gets the same refresh token; the chain goes on."""
        first = signed_up("grace@example.com")
        second = session_of(redeem(first["refreshToken"]))
        retried = session_of(redeem(first["refreshToken"]))
        assert retried["refreshToken"] == second["refreshToken"]
        assert works(retried["token"])
        third = session_of(redeem(retried["refreshToken"]))
        assert works(third["token"])

    def test_malformed_requests(self, app_env: AppEnvironment) -> None:
        assert problem(call(token_refresh, {})).get("code") == "invalid_request"
        assert problem(call(token_refresh, {"refreshToken": 7})).get("code") == "invalid_request"
        for garbage in ("", "r1.x", "r1.." + "a" * 2000, "r1.Y3VzdG9tOmE.zz.0." + "a" * 43):
            assert refused(redeem(garbage))


class TestReuse:
    """A spent token used again ends that device's session, except the last one retried within the grace."""

    def test_a_token_two_rotations_old_is_reuse_even_inside_the_grace(
        self, app_env: AppEnvironment, caplog: pytest.LogCaptureFixture
    ) -> None:
        first = signed_up("reuse@example.com")
        other_device = session_of(call(login, {"email": "reuse@example.com", "password": PASSWORD}))
        second = session_of(redeem(first["refreshToken"]))
        third = session_of(redeem(second["refreshToken"]))
        with caplog.at_level(logging.INFO):
            assert refused(redeem(first["refreshToken"]))
        assert "event=refresh_token_reused" in caplog.text
        assert "reason=refresh_token_reused" in caplog.text
        assert not works(third["token"]), "the session ended"
        assert refused(redeem(third["refreshToken"]))
        assert works(other_device["token"]), "only that device's session"
        assert session_of(redeem(other_device["refreshToken"]))

    def test_the_last_spent_token_after_the_grace_is_reuse(self, app_env: AppEnvironment) -> None:
        first = signed_up("late@example.com")
        second = session_of(redeem(first["refreshToken"]))
        age_session(app_env, second["refreshToken"], ri=11)
        assert refused(redeem(first["refreshToken"]))
        assert not works(second["token"])
        assert refused(redeem(second["refreshToken"]))

    def test_no_grace_when_turned_off(self, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_REFRESH_REUSE_SECONDS="0")
        first = signed_up("nograce@example.com")
        age_session(app_env, first["refreshToken"], ri=1)
        second = session_of(redeem(first["refreshToken"]))
        age_session(app_env, second["refreshToken"], ri=1)
        assert refused(redeem(first["refreshToken"]))
        assert not works(second["token"])

    def test_a_forged_token_ends_nothing(self, app_env: AppEnvironment) -> None:
        """Knowing the user and session ids (every access token has them) is not enough to end a session."""
        first = signed_up("forged@example.com")
        second = session_of(redeem(first["refreshToken"]))
        prefix = first["refreshToken"].rsplit(".", 2)[0]
        for generation in (0, 1, 2, 5):
            assert refused(redeem(f"{prefix}.{generation}.{secrets.token_urlsafe(32)}"))
        assert works(second["token"])
        assert session_of(redeem(second["refreshToken"]))

    def test_a_lost_race_is_a_retry_whatever_the_grace(self) -> None:
        keys = (secrets.token_bytes(32),)
        token = refresh_tokens.RefreshToken("custom:x", "ab" * 12, 3, secrets.token_urlsafe(32))
        following = refresh_tokens.successor(keys, token)
        state = RefreshState(
            refresh_tokens.digest(keys, following), 4, datetime.now(UTC) - timedelta(hours=1)
        )
        now, none = datetime.now(UTC), timedelta(0)
        assert refresh_tokens.classify(keys, token, state, now=now, grace=none) is Redemption.REUSE
        lost = refresh_tokens.classify(keys, token, state, now=now, grace=none, lost_race=True)
        assert lost is Redemption.RETRY
        assert refresh_tokens.classify(keys, following, state, now=now, grace=none) is Redemption.ROTATE


class TestDiesWithTheSession:
    """Logout, a password change elsewhere, disabling, the idle timeout: the refresh token is refused."""

    def test_logout(self, app_env: AppEnvironment) -> None:
        body = signed_up("out@example.com")
        assert call(logout, token=body["token"]).status_code == 204
        assert refused(redeem(body["refreshToken"]))

    def test_a_password_change_on_another_device(self, app_env: AppEnvironment) -> None:
        phone = signed_up("pw@example.com")
        laptop = session_of(call(login, {"email": "pw@example.com", "password": PASSWORD}))
        change = {"currentPassword": PASSWORD, "newPassword": "another good passphrase"}
        changed = session_of(call(password, change, token=laptop["token"]))
        assert refused(redeem(phone["refreshToken"]))
        assert refused(redeem(laptop["refreshToken"]))
        assert session_of(redeem(changed["refreshToken"]))

    def test_a_disabled_account(self, app_env: AppEnvironment) -> None:
        from shared.accounts.service import account_service
        from shared.operations.admin import AccountAdmin

        body = signed_up("dis@example.com")
        service = account_service()
        admin = AccountAdmin(service)
        account = service.store.account(body["userId"])
        assert account is not None
        admin.disable(account, "test")
        assert refused(redeem(body["refreshToken"]))

    def test_an_idle_session(self, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_SESSION_IDLE_SECONDS="60")
        body = signed_up("idle@example.com")
        age_session(app_env, body["refreshToken"], l=61)
        assert refused(redeem(body["refreshToken"]))
        assert not works(body["token"])


def test_concurrent_redemptions_on_two_instances_yield_one_successor(
    two_hosts: tuple[LocalHost, LocalHost],
) -> None:
    """Eight redemptions of one refresh token at once, half on each instance: every answer is the same
    successor (a lost race is a retry), the session is not ended, and that successor is the one that works."""
    a, b = two_hosts
    email = f"race-{secrets.token_hex(4)}@example.com"
    first = a.post("register", {"email": email, "password": PASSWORD}).json()
    start = Barrier(8)

    def redeem_on(host: LocalHost) -> tuple[int, str | None]:
        start.wait(timeout=30)
        response = host.post("token/refresh", {"refreshToken": first["refreshToken"]})
        return response.status_code, response.json().get("refreshToken")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(redeem_on, [a, b] * 4))
    assert {status for status, _ in answers} == {200}, answers
    successors = {token for _, token in answers}
    assert len(successors) == 1
    (successor,) = successors
    assert successor is not None
    assert refresh_tokens.parse(successor).generation == 1  # type: ignore[union-attr]
    following = b.post("token/refresh", {"refreshToken": successor})
    assert following.status_code == 200
    assert a.call("GET", "me", token=following.json()["token"]).status_code == 200

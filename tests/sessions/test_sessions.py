"""The gate and the session routes (me, refresh, logout, password, delete) over real HTTP."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from shared.tokens.access_tokens import ZUMO_ISSUER, TokenFormat, TokenSettings, issue_token, key_id
from tests.conftest import LocalHost, app_settings_for, start_local_host
from tools.emulators.azurite import Azurite

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@dataclass
class User:
    email: str
    user_id: str
    token: str


def new_user(host: LocalHost, password: str = PASSWORD) -> User:
    email = f"u{secrets.token_hex(6)}@example.com"
    response = host.post("register", {"email": email, "password": password})
    assert response.status_code == 201, response.text
    return User(email, response.json()["userId"], response.json()["token"])


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def assert_session(response: requests.Response, user: User) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == {"userId": user.user_id, "email": user.email}
    assert body["authenticationToken"] == body["token"]
    token: str = body["token"]
    return token


def signing_settings(host: LocalHost, key: bytes | None = None) -> TokenSettings:
    return TokenSettings(
        format=TokenFormat.APPSERVICE,
        keys=(key or bytes.fromhex(host.environment["AUTH_SIGNING_KEY"]),),
        issuer=ZUMO_ISSUER,
        audience=ZUMO_ISSUER,
        lifetime=timedelta(hours=1),
    )


class TestMe:
    """GET /api/me with the token the SDKs send."""

    def test_profile(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        response = module_host.call("GET", "me", token=user.token)
        assert response.status_code == 200
        body = response.json()
        assert body["userId"] == user.user_id
        assert body["email"] == user.email
        created = datetime.fromisoformat(body["createdAt"])
        assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)

    def test_bearer_header_works_too(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        response = module_host.call("GET", "me", headers={"Authorization": f"Bearer {user.token}"})
        assert response.json()["userId"] == user.user_id

    def test_post_is_not_routed(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        assert module_host.call("POST", "me", token=user.token).status_code == 404


class TestGateRejects:
    """Each class of bad token gets 401 invalid_token with WWW-Authenticate: Bearer."""

    def forged(self, host: LocalHost, user: User, **changes: Any) -> str:
        key = bytes.fromhex(host.environment["AUTH_SIGNING_KEY"])
        now = int(datetime.now(UTC).timestamp())
        claims = {"sub": user.user_id, "iss": ZUMO_ISSUER, "aud": ZUMO_ISSUER, "iat": now, "nbf": now}
        claims |= {"exp": now + 3600, "ver": "3", "sv": 0}
        claims |= changes
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None}, key, headers={"kid": key_id(key)}
        )

    def test_forged_baseline_is_accepted(self, module_host: LocalHost) -> None:
        """The forging helper is right: unchanged, its token passes (so each rejection below is real)."""
        user = new_user(module_host)
        assert module_host.call("GET", "me", token=self.forged(module_host, user)).status_code == 200

    @pytest.mark.parametrize(
        "changes",
        [
            {"exp": int(datetime.now(UTC).timestamp()) - 3600},
            {
                "nbf": int(datetime.now(UTC).timestamp()) + 3600,
                "iat": int(datetime.now(UTC).timestamp()) + 3600,
            },
            {"iss": "https://someone-else/"},
            {"aud": "https://someone-else/"},
            {"exp": None},
            {"sub": "custom:00AAAAAAAAAAAAAAAAAAAAAA"},
            {"sv": 1},
            {"sv": "0"},
        ],
        ids=[
            "expired",
            "not-yet-valid",
            "wrong-iss",
            "wrong-aud",
            "no-exp",
            "unknown-user",
            "future-sv",
            "sv-str",
        ],
    )
    def test_bad_claims(self, module_host: LocalHost, changes: dict[str, Any]) -> None:
        user = new_user(module_host)
        assert_invalid_token(module_host.call("GET", "me", token=self.forged(module_host, user, **changes)))

    def test_bad_signature(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        token = issue_token(signing_settings(module_host, secrets.token_bytes(32)), user.user_id).token
        assert_invalid_token(module_host.call("GET", "me", token=token))

    def test_alg_none(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        claims = jwt.decode(user.token, options={"verify_signature": False})
        assert_invalid_token(module_host.call("GET", "me", token=jwt.encode(claims, "", algorithm="none")))

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-ZUMO-AUTH": "garbage"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"X-ZUMO-AUTH": "a" * 5000},
        ],
        ids=["missing", "garbage", "basic-auth", "oversized"],
    )
    def test_missing_or_malformed(self, module_host: LocalHost, headers: dict[str, str]) -> None:
        assert_invalid_token(module_host.call("GET", "me", headers=headers))

    @pytest.mark.parametrize(
        ("method", "route"), [("POST", "refresh"), ("POST", "logout"), ("POST", "password")]
    )
    def test_every_protected_route_is_gated(self, module_host: LocalHost, method: str, route: str) -> None:
        body = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
        assert_invalid_token(module_host.call(method, route, body, token="garbage"))


class TestSessionAge:
    """A session ends AUTH_SESSION_MAX_SECONDS (90 days) after the password was last given."""

    def claims(self, token: str) -> dict[str, Any]:
        decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return decoded

    def test_refresh_keeps_the_session_start(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        started = self.claims(user.token)["sat"]
        assert abs(started - datetime.now(UTC).timestamp()) < 60
        time.sleep(1.1)
        fresh = assert_session(module_host.call("POST", "refresh", token=user.token), user)
        assert self.claims(fresh)["sat"] == started
        assert self.claims(fresh)["iat"] > self.claims(user.token)["iat"]

    @pytest.mark.parametrize(("days", "status"), [(89, 200), (91, 401)])
    def test_sessions_older_than_the_cap_are_refused(
        self, module_host: LocalHost, days: int, status: int
    ) -> None:
        user = new_user(module_host)
        started = int((datetime.now(UTC) - timedelta(days=days)).timestamp())
        token = TestGateRejects().forged(module_host, user, sat=started)
        assert module_host.call("GET", "me", token=token).status_code == status
        assert module_host.call("POST", "refresh", token=token).status_code == status


class TestRefresh:
    def test_fresh_token_for_a_valid_one(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        fresh = assert_session(module_host.call("POST", "refresh", token=user.token), user)
        assert module_host.call("GET", "me", token=fresh).status_code == 200
        assert module_host.call("GET", "me", token=user.token).status_code == 200, "refresh revokes nothing"

    def test_revoked_token_cannot_refresh(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        assert module_host.call("POST", "logout", token=user.token).status_code == 204
        assert_invalid_token(module_host.call("POST", "refresh", token=user.token))


class TestLogout:
    def test_logout_ends_this_device_only(self, module_host: LocalHost) -> None:
        """Logging out on one device leaves another signed in."""
        user = new_user(module_host)
        second = assert_session(module_host.post("login", {"email": user.email, "password": PASSWORD}), user)
        assert module_host.call("POST", "logout", token=user.token).status_code == 204
        assert_invalid_token(module_host.call("GET", "me", token=user.token))
        assert module_host.call("GET", "me", token=second).status_code == 200
        again = assert_session(module_host.post("login", {"email": user.email, "password": PASSWORD}), user)
        assert module_host.call("GET", "me", token=again).status_code == 200


class TestPasswordChange:
    def change(self, host: LocalHost, user: User, current: str, new: Any) -> requests.Response:
        return host.call(
            "POST", "password", {"currentPassword": current, "newPassword": new}, token=user.token
        )

    def test_change_revokes_old_tokens_and_returns_a_new_one(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        fresh = assert_session(self.change(module_host, user, PASSWORD, NEW_PASSWORD), user)
        assert_invalid_token(module_host.call("GET", "me", token=user.token))
        assert module_host.call("GET", "me", token=fresh).status_code == 200
        assert module_host.post("login", {"email": user.email, "password": PASSWORD}).status_code == 401
        assert module_host.post("login", {"email": user.email, "password": NEW_PASSWORD}).status_code == 200

    def test_wrong_current_password(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        response = self.change(module_host, user, "not my password", NEW_PASSWORD)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
        assert module_host.call("GET", "me", token=user.token).status_code == 200, "the session survives"

    @pytest.mark.parametrize(
        ("new", "code"), [("short", "weak_password"), ("password1", "weak_password"), (5, "invalid_request")]
    )
    def test_bad_new_password(self, module_host: LocalHost, new: Any, code: str) -> None:
        user = new_user(module_host)
        response = self.change(module_host, user, PASSWORD, new)
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert module_host.post("login", {"email": user.email, "password": PASSWORD}).status_code == 200

    def test_concurrent_changes_lose_no_update(self, module_host: LocalHost) -> None:
        """Racing changes from one session: one wins; others get 409 conflict or a revoked session."""
        user = new_user(module_host)
        candidates = [f"racing passphrase {i}" for i in range(4)]
        start = threading.Barrier(len(candidates))

        def attempt(new: str) -> int:
            start.wait()
            with requests.Session() as session:
                response = session.post(
                    f"{module_host.base_url}/api/password",
                    json={"currentPassword": PASSWORD, "newPassword": new},
                    headers={"X-ZUMO-AUTH": user.token},
                    timeout=60,
                )
                return response.status_code

        with ThreadPoolExecutor(len(candidates)) as pool:
            statuses = list(pool.map(attempt, candidates))
        assert statuses.count(200) == 1, statuses
        assert set(statuses) <= {200, 401, 409}
        winner = candidates[statuses.index(200)]
        logins = {
            p: module_host.post("login", {"email": user.email, "password": p}).status_code for p in candidates
        }
        assert logins == {p: 200 if p == winner else 401 for p in candidates}


class TestDelete:
    def test_delete_frees_the_email(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        assert module_host.call("DELETE", "me", {"password": PASSWORD}, token=user.token).status_code == 204
        assert_invalid_token(module_host.call("GET", "me", token=user.token))
        assert module_host.post("login", {"email": user.email, "password": PASSWORD}).status_code == 401
        again = module_host.post("register", {"email": user.email, "password": NEW_PASSWORD})
        assert again.status_code == 201
        assert again.json()["userId"] != user.user_id

    def test_wrong_password_deletes_nothing(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        response = module_host.call("DELETE", "me", {"password": "not my password"}, token=user.token)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_credentials"
        assert module_host.call("GET", "me", token=user.token).status_code == 200

    def test_missing_password_is_400(self, module_host: LocalHost) -> None:
        user = new_user(module_host)
        response = module_host.call("DELETE", "me", {}, token=user.token)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"


def test_whole_client_journey(module_host: LocalHost) -> None:
    """Register, me, refresh, change password (old token 401), log out (new token 401), delete."""
    user = new_user(module_host)
    assert module_host.call("GET", "me", token=user.token).status_code == 200
    refreshed = assert_session(module_host.call("POST", "refresh", token=user.token), user)
    changed = module_host.call(
        "POST", "password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, token=refreshed
    )
    new_token = assert_session(changed, user)
    assert_invalid_token(module_host.call("GET", "me", token=refreshed))
    assert module_host.call("POST", "logout", token=new_token).status_code == 204
    assert_invalid_token(module_host.call("GET", "me", token=new_token))
    last = assert_session(module_host.post("login", {"email": user.email, "password": NEW_PASSWORD}), user)
    assert module_host.call("DELETE", "me", {"password": NEW_PASSWORD}, token=last).status_code == 204


@pytest.fixture(scope="module")
def rotated(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Any:
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    environment = app_settings_for(azurite.connection_string)
    environment |= {"AUTH_SIGNING_KEY": new_key.hex(), "AUTH_PREVIOUS_SIGNING_KEYS": old_key.hex()}
    host = start_local_host(Path(tmp_path_factory.mktemp("rotated")), environment)
    yield host, old_key, new_key
    host.stop()


class TestKeyRotation:
    """A token signed with a previous key verifies during the window; an unknown key never does."""

    def test_previous_key_verifies_and_new_tokens_use_the_new_key(self, rotated: Any) -> None:
        host, old_key, new_key = rotated
        user = new_user(host)
        assert jwt.get_unverified_header(user.token)["kid"] == key_id(new_key)
        old_token = issue_token(signing_settings(host, old_key), user.user_id, session_version=0).token
        assert host.call("GET", "me", token=old_token).status_code == 200
        refreshed = host.call("POST", "refresh", token=old_token).json()["token"]
        jwt.decode(refreshed, new_key, algorithms=["HS256"], audience=ZUMO_ISSUER)

    def test_unknown_key_is_refused(self, rotated: Any) -> None:
        host, _, _ = rotated
        user = new_user(host)
        stranger = issue_token(
            signing_settings(host, secrets.token_bytes(32)), user.user_id, session_version=0
        )
        assert_invalid_token(host.call("GET", "me", token=stranger.token))

"""register and login, called as the Functions host calls them, on a real Azurite."""

from __future__ import annotations

import json
import logging
from typing import Any

import argon2
import azure.functions as func
import jwt
import pytest

import login
import register
from shared.accounts.service import AccountService
from shared.tokens.access_tokens import ZUMO_ISSUER, zumo_signing_key
from tests.conftest import AppEnvironment, http_request, problem

PASSWORD = "correct horse battery"


def post(function: Any, body: Any) -> func.HttpResponse:
    response: func.HttpResponse = function.main(http_request("POST", function.__name__, body))
    return response


def json_body(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/json"
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def registered(email: str = "alice@example.com", password: str = PASSWORD) -> dict[str, Any]:
    response = post(register, {"email": email, "password": password})
    assert response.status_code == 201, response.get_body()
    return json_body(response)


def assert_session_body(body: dict[str, Any], email: str) -> str:
    """The success shape both SDK generations read; returns the token."""
    # Every member of before, plus the token's lifetime and the session's refresh token (docs/tokens.md).
    assert set(body) == {
        "authenticationToken",
        "user",
        "userId",
        "token",
        "expiresAt",
        "expiresIn",
        "refreshToken",
    }
    assert body["token"] == body["authenticationToken"]
    assert body["user"] == {"userId": body["userId"], "email": email}
    assert body["userId"].startswith("custom:")
    assert body["expiresAt"].endswith("Z")
    token: str = body["token"]
    return token


class TestRegister:
    """POST /api/register."""

    def test_creates_account_and_returns_verifiable_token(self, app_env: AppEnvironment) -> None:
        response = post(register, {"email": "Alice@Example.COM", "password": PASSWORD})
        assert response.status_code == 201
        assert response.headers["Cache-Control"] == "no-store"
        body = json_body(response)
        token = assert_session_body(body, "alice@example.com")
        claims = jwt.decode(token, app_env.signing_key, algorithms=["HS256"], audience=ZUMO_ISSUER)
        assert claims["sub"] == body["userId"]
        assert claims["exp"] - claims["iat"] == 2_592_000
        assert len(app_env.entities()) == 2

    @pytest.mark.parametrize("variant", ["alice@example.com", "ALICE@EXAMPLE.COM", " Alice@example.com "])
    def test_duplicate_email_is_409(self, app_env: AppEnvironment, variant: str) -> None:
        registered("Alice@Example.com")
        response = post(register, {"email": variant, "password": "another good one"})
        assert response.status_code == 409
        assert problem(response)["code"] == "email_taken"
        assert len(app_env.entities()) == 2

    @pytest.mark.parametrize(
        ("password", "detail"),
        [("short", "at least 8"), ("x" * 257, "at most 256"), ("password123", "commonly used")],
    )
    def test_weak_password(self, app_env: AppEnvironment, password: str, detail: str) -> None:
        response = post(register, {"email": "bob@example.com", "password": password})
        assert response.status_code == 400
        body = problem(response)
        assert body["code"] == "weak_password"
        assert detail in body["detail"]
        assert app_env.entities() == []

    def test_password_may_not_contain_the_email_or_a_context_word(self, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_PASSWORD_CONTEXT_WORDS="Contoso, Fabrikam")
        for password in ("margaret is here 1", "welcome to contoso"):
            response = post(register, {"email": "margaret@example.com", "password": password})
            assert problem(response)["code"] == "weak_password"
        assert app_env.entities() == []

    def test_password_policy_bounds_are_settings(self, app_env: AppEnvironment) -> None:
        app_env.set(AUTH_PASSWORD_MIN_LENGTH="12")
        response = post(register, {"email": "bob@example.com", "password": "uncommon-pw"})
        assert problem(response)["code"] == "weak_password"


BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any]]] = [
    ("empty", b""),
    ("not json", b"email=a@b.c&password=x"),
    ("truncated json", b'{"email": "a@example.com"'),
    ("array", [1, 2]),
    ("string", b'"hello"'),
    ("null", b"null"),
    ("missing email", {"password": PASSWORD}),
    ("missing password", {"email": "a@example.com"}),
    ("email not a string", {"email": ["a@example.com"], "password": PASSWORD}),
    ("password not a string", {"email": "a@example.com", "password": 12345678}),
    ("password null", {"email": "a@example.com", "password": None}),
    ("invalid email", {"email": "not-an-email", "password": PASSWORD}),
    ("email with space", {"email": "a b@example.com", "password": PASSWORD}),
    ("invalid utf-8", b'{"email": "a\xff@example.com", "password": "x"}'),
    ("lone surrogate", b'{"email": "a@example.com", "password": "\\ud800abcdefgh"}'),
    ("deep nesting", b"[" * 5000 + b"]" * 5000),
    ("utf-16", '{"email": "a@example.com", "password": "xxxxxxxxxx"}'.encode("utf-16")),
]


class TestBadInput:
    """Every class of bad input is a 400 (or 413) problem, and nothing is stored."""

    @pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[case for case, _ in BAD_BODIES])
    @pytest.mark.parametrize("function", [register, login], ids=["register", "login"])
    def test_invalid_request(self, app_env: AppEnvironment, function: Any, case: str, body: Any) -> None:
        response = post(function, body)
        assert response.status_code == 400, case
        assert problem(response)["code"] == "invalid_request"
        assert app_env.entities() == []

    @pytest.mark.parametrize("function", [register, login], ids=["register", "login"])
    def test_body_over_16_kib(self, app_env: AppEnvironment, function: Any) -> None:
        body = {"email": "a@example.com", "password": "p" * (16 * 1024)}
        response = post(function, body)
        assert response.status_code == 413
        assert problem(response)["code"] == "payload_too_large"
        assert app_env.entities() == []

    def test_body_of_exactly_16_kib_is_read(self, app_env: AppEnvironment) -> None:
        """The limit is inclusive: a 16 KiB body is parsed (and here refused for its password length)."""
        padding = 16 * 1024 - len(json.dumps({"email": "a@example.com", "password": ""}))
        body = json.dumps({"email": "a@example.com", "password": "p" * padding}).encode()
        assert len(body) == 16 * 1024
        assert problem(post(register, body))["code"] == "weak_password"

    def test_extra_fields_are_ignored(self, app_env: AppEnvironment) -> None:
        response = post(register, {"email": "c@example.com", "password": PASSWORD, "admin": True})
        assert response.status_code == 201


class TestLogin:
    """POST /api/login."""

    def test_logs_in_with_the_registered_password(self, app_env: AppEnvironment) -> None:
        created = registered("dora@example.com")
        response = post(login, {"email": "Dora@Example.com", "password": PASSWORD})
        assert response.status_code == 200
        token = assert_session_body(json_body(response), "dora@example.com")
        claims = jwt.decode(token, app_env.signing_key, algorithms=["HS256"], audience=ZUMO_ISSUER)
        assert claims["sub"] == created["userId"]

    def test_accepts_email_or_username(self, app_env: AppEnvironment) -> None:
        """Older clients send emailOrUsername."""
        registered("ed@example.com")
        response = post(login, {"emailOrUsername": "ed@example.com", "password": PASSWORD})
        assert response.status_code == 200

    def test_unknown_email_and_wrong_password_look_the_same(self, app_env: AppEnvironment) -> None:
        registered("fred@example.com")
        wrong = post(login, {"email": "fred@example.com", "password": "not the password"})
        unknown = post(login, {"email": "nobody@example.com", "password": "not the password"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.get_body() == unknown.get_body()
        assert dict(wrong.headers) == dict(unknown.headers)
        assert problem(wrong)["code"] == "invalid_credentials"

    def test_overlong_password_is_refused_as_credentials(self, app_env: AppEnvironment) -> None:
        registered("gus@example.com")
        response = post(login, {"email": "gus@example.com", "password": "x" * 300})
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_credentials"

    def test_outdated_hash_is_upgraded_on_login(self, app_env: AppEnvironment) -> None:
        """check_needs_rehash is honoured: stronger settings re-hash at the next login."""
        registered("hal@example.com")
        app_env.set(AUTH_ARGON2_MEMORY_KIB="24576")
        assert post(login, {"email": "hal@example.com", "password": PASSWORD}).status_code == 200
        stored = next(e for e in app_env.entities() if e["RowKey"].startswith("email:"))
        assert argon2.extract_parameters(stored["PasswordHash"]).memory_cost == 24_576
        assert post(login, {"email": "hal@example.com", "password": PASSWORD}).status_code == 200

    def test_zumo_format(self, app_env: AppEnvironment) -> None:
        """With AUTH_TOKEN_FORMAT=zumo, tokens are Mobile Services v2 tokens."""
        master = "a Mobile Services master key, 32+"
        app_env.set(AUTH_TOKEN_FORMAT="zumo", AUTH_SIGNING_KEY=master)
        created = registered("ivy@example.com")
        token = post(login, {"email": "ivy@example.com", "password": PASSWORD})
        body = json_body(token)
        header = jwt.get_unverified_header(body["token"])
        assert header == {"alg": "HS256", "typ": "JWT", "kid": "0"}
        claims = jwt.decode(body["token"], zumo_signing_key(master), algorithms=["HS256"], audience="Custom")
        assert claims["uid"] == created["userId"]
        assert claims["iss"] == ZUMO_ISSUER
        assert claims["ver"] == 2


class TestServerProblems:
    """Misconfiguration and bugs never leak details, and never issue tokens."""

    @pytest.mark.parametrize(
        "changes",
        [
            {"AUTH_SIGNING_KEY": None},
            {"AUTH_SIGNING_KEY": "abcd"},
            {"AUTH_SIGNING_KEY": "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/k/)"},
        ],
    )
    @pytest.mark.parametrize("function", [register, login], ids=["register", "login"])
    def test_bad_signing_key_is_500_and_stores_nothing(
        self, app_env: AppEnvironment, function: Any, changes: dict[str, str | None]
    ) -> None:
        app_env.set(**changes)
        response = post(function, {"email": "jo@example.com", "password": PASSWORD})
        assert response.status_code == 500
        body = problem(response)
        assert body["code"] == "server_misconfigured"
        assert "AUTH_SIGNING_KEY" not in response.get_body().decode()
        assert app_env.entities() == []

    def test_unexpected_error_is_a_bare_500(
        self, app_env: AppEnvironment, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*_: object) -> None:
            raise RuntimeError("internal detail /srv/secret.py")

        monkeypatch.setattr(AccountService, "register", broken)
        response = post(register, {"email": "kim@example.com", "password": PASSWORD})
        assert response.status_code == 500
        assert problem(response)["code"] == "internal_error"
        assert b"internal detail" not in response.get_body()
        assert b"Traceback" not in response.get_body()


def test_logs_never_contain_secrets(app_env: AppEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    """Passwords, hashes and tokens stay out of every log record, at every level."""
    with caplog.at_level(logging.DEBUG):
        body = registered("lou@example.com")
        post(register, {"email": "lou@example.com", "password": PASSWORD})
        post(login, {"email": "lou@example.com", "password": "wrong password!"})
        post(login, {"email": "nobody@example.com", "password": "wrong password!"})
        token = json_body(post(login, {"email": "lou@example.com", "password": PASSWORD}))["token"]
    stored_hash = next(e for e in app_env.entities() if e["RowKey"].startswith("email:"))["PasswordHash"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login_succeeded" in logged
    for secret in (
        PASSWORD,
        "wrong password!",
        stored_hash,
        body["token"],
        token,
        app_env.values["AUTH_SIGNING_KEY"],
    ):
        assert secret not in logged

"""Storage round trips per request, counted exactly (every HTTP request to Table Storage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import login
import logout
import me
import password
import refresh
import register
from shared.storage import storage_requests
from tests.conftest import AppEnvironment, http_request

PASSWORD = "correct horse battery"


def round_trips(call: Callable[[], Any]) -> tuple[int, Any]:
    storage_requests.reset()
    response = call()
    return storage_requests.count, response


@pytest.fixture
def token(app_env: AppEnvironment) -> str:
    """A registered account's token; the client and table already exist (as in a warm process)."""
    response = register.main(
        http_request("POST", "register", {"email": "rt@example.com", "password": PASSWORD})
    )
    assert response.status_code == 201
    value: str = json.loads(response.get_body())["token"]
    return value


def test_register_is_one_round_trip(token: str) -> None:
    count, response = round_trips(
        lambda: register.main(
            http_request("POST", "register", {"email": "rt2@example.com", "password": PASSWORD})
        )
    )
    assert response.status_code == 201
    assert count == 1


def test_login_is_a_read_and_a_session_write(token: str) -> None:
    """The login row's point read, then one merge that adds the device session to the account row."""
    count, response = round_trips(
        lambda: login.main(http_request("POST", "login", {"email": "rt@example.com", "password": PASSWORD}))
    )
    assert response.status_code == 200
    assert count == 2


@pytest.mark.parametrize("email", ["nobody@example.com", "rt@example.com"], ids=["unknown", "wrong-password"])
def test_failed_login_is_a_read_and_a_write(token: str, email: str) -> None:
    """The failure is counted against the email (lockout), known or not: the same work either way."""
    body = {"email": email, "password": "not the password"}
    count, response = round_trips(lambda: login.main(http_request("POST", "login", body)))
    assert response.status_code == 401
    assert count == 2


def log_in(email: str) -> Any:
    return login.main(http_request("POST", "login", {"email": email, "password": PASSWORD}))


def test_login_with_rehash_adds_one_write(token: str, app_env: AppEnvironment) -> None:
    """Stronger Argon2 settings: the login that upgrades the hash writes it back (ETag-guarded)."""
    app_env.set(AUTH_ARGON2_MEMORY_KIB="24576")
    log_in("nobody@example.com")  # the restarted process's first request creates its client
    count, response = round_trips(lambda: log_in("rt@example.com"))
    assert response.status_code == 200
    assert count == 3
    count, _ = round_trips(lambda: log_in("rt@example.com"))
    assert count == 2, "upgraded once"


@pytest.mark.parametrize(
    ("function", "method", "body", "expected"),
    [
        (me, "GET", None, 1),
        (refresh, "POST", None, 1),
        (logout, "POST", None, 2),
        (password, "POST", {"currentPassword": PASSWORD, "newPassword": "another passphrase"}, 3),
        # Deleting also reads the second-factor row, so that no sealed secret outlives the account.
        (me, "DELETE", {"password": PASSWORD}, 4),
    ],
    ids=["me", "refresh", "logout", "password", "delete"],
)
def test_session_routes(token: str, function: Any, method: str, body: Any, expected: int) -> None:
    """The gate is one point read; a change adds one transaction, a password check one read."""
    count, response = round_trips(lambda: function.main(http_request(method, "x", body, token=token)))
    assert response.status_code in (200, 204)
    assert count == expected

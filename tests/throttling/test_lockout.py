"""Per-account lockout after failed logins, for known and unknown emails alike."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import login
import me
import password
import register
from shared.accounts.passwords import PasswordHasher
from shared.accounts.store import AccountStore
from shared.settings import get_settings
from shared.throttling.lockout import LockoutPolicy, LoginThrottle
from tests.conftest import AppEnvironment, http_request, problem

PASSWORD = "correct horse battery"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = LockoutPolicy(threshold=5, base=timedelta(seconds=1), maximum=timedelta(seconds=900))


class TestPolicy:
    """The arithmetic of the lockout."""

    def test_locks_after_the_threshold_and_doubles_up_to_the_cap(self) -> None:
        state = LoginThrottle()
        locks = []
        for _ in range(20):
            state = state.after_failure(POLICY, NOW)
            locks.append(None if state.locked_until is None else (state.locked_until - NOW).total_seconds())
        assert locks[:4] == [None] * 4
        assert locks[4:15] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
        assert set(locks[15:]) == {900}

    def test_refused_only_while_locked(self) -> None:
        state = LoginThrottle(consecutive_failures=5, locked_until=NOW + timedelta(seconds=10))
        assert state.refused_until(POLICY, NOW) == NOW + timedelta(seconds=10)
        assert state.refused_until(POLICY, NOW + timedelta(seconds=10)) is None

    def test_hourly_cap_whatever_the_backoff(self) -> None:
        """At most 100 evaluated failures per hour, even with backoff turned far down."""
        lax = LockoutPolicy(threshold=1000, base=timedelta(seconds=1), maximum=timedelta(seconds=1))
        state = LoginThrottle()
        for minute in range(100):
            state = state.after_failure(lax, NOW + timedelta(seconds=minute))
        assert state.refused_until(lax, NOW + timedelta(minutes=5)) == NOW + timedelta(hours=1)
        assert state.refused_until(lax, NOW + timedelta(hours=1)) is None

    def test_success_resets_the_consecutive_count(self) -> None:
        state = LoginThrottle(consecutive_failures=7, locked_until=NOW)
        assert state.after_success().is_clear

    def test_disabled(self) -> None:
        off = LockoutPolicy(threshold=0)
        state = LoginThrottle()
        for _ in range(50):
            state = state.after_failure(off, NOW)
        assert state.locked_until is None
        assert state.refused_until(off, NOW) is None


def attempt(email: str, password: str) -> Any:
    return login.main(http_request("POST", "login", {"email": email, "password": password}))


@pytest.fixture
def lockout_env(app_env: AppEnvironment) -> AppEnvironment:
    app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="2", AUTH_LOCKOUT_MAX_SECONDS="4")
    response = register.main(
        http_request("POST", "register", {"email": "victim@example.com", "password": PASSWORD})
    )
    assert response.status_code == 201
    return app_env


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 verification this test runs (a spy: the real verification still runs)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def spy(self: PasswordHasher, stored_hash: str, password: str) -> Any:
        calls.append(password)
        return real(self, stored_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    return calls


@pytest.mark.parametrize("email", ["victim@example.com", "nobody@example.com"], ids=["known", "unknown"])
def test_locked_after_the_threshold_without_hashing(
    lockout_env: AppEnvironment, verifications: list[str], email: str
) -> None:
    for _ in range(3):
        assert attempt(email, "wrong password!").status_code == 401
    assert len(verifications) == 3
    refused = attempt(email, PASSWORD)
    assert refused.status_code == 429
    body = problem(refused)
    assert body["code"] == "too_many_attempts"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert len(verifications) == 3, "a refused attempt runs no hash"


def test_refusals_look_the_same_for_known_and_unknown_emails(lockout_env: AppEnvironment) -> None:
    answers = []
    for email in ("victim@example.com", "nobody@example.com"):
        responses = [attempt(email, "wrong password!") for _ in range(4)]
        answers.append([(r.status_code, r.get_body(), r.headers.get("Retry-After")) for r in responses])
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [401, 401, 401, 429]


def test_refused_attempts_do_not_extend_the_lock(lockout_env: AppEnvironment) -> None:
    store = AccountStore(get_settings().storage)
    for _ in range(3):
        attempt("victim@example.com", "wrong password!")
    locked = store.login_record("victim@example.com").throttle
    for _ in range(5):
        assert attempt("victim@example.com", "wrong password!").status_code == 429
    assert store.login_record("victim@example.com").throttle == locked
    assert locked.locked_until is not None
    time.sleep((locked.locked_until - datetime.now(UTC)).total_seconds() + 0.1)
    assert attempt("victim@example.com", PASSWORD).status_code == 200, "the lock ends on time"
    assert store.login_record("victim@example.com").throttle.is_clear, "success resets the count"


def test_no_lost_increments_under_concurrency(app_env: AppEnvironment) -> None:
    app_env.set(AUTH_LOCKOUT_THRESHOLD="50")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: attempt("crowd@example.com", "wrong password!").status_code, range(12))
        )
    assert statuses == [401] * 12
    record = AccountStore(get_settings().storage).login_record("crowd@example.com")
    assert record.throttle.consecutive_failures == 12
    assert record.credentials is None, "the placeholder holds no account"


def test_hourly_cap(app_env: AppEnvironment) -> None:
    """100 evaluated failures within an hour refuse the email until the hour is over."""
    store = AccountStore(get_settings().storage)
    record = store.login_record("capped@example.com")
    now = datetime.now(UTC)
    store.update_login(record, throttle=LoginThrottle(window_start=now, window_failures=100))
    refused = attempt("capped@example.com", PASSWORD)
    assert refused.status_code == 429
    assert 3590 <= int(refused.headers["Retry-After"]) <= 3600


def test_registration_claims_a_placeholder(app_env: AppEnvironment) -> None:
    """Failed logins for an email without an account leave a failure record; registering still works."""
    assert attempt("later@example.com", "wrong password!").status_code == 401
    with ThreadPoolExecutor(10) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    register.main(
                        http_request("POST", "register", {"email": "later@example.com", "password": PASSWORD})
                    ).status_code
                ),
                range(10),
            )
        )
    assert sorted(statuses) == [201] + [409] * 9
    response = attempt("later@example.com", PASSWORD)
    assert response.status_code == 200
    assert json.loads(response.get_body())["user"]["email"] == "later@example.com"
    rows = app_env.entities()
    assert len(rows) == 2, "one login row (the claimed placeholder) and one account row"
    assert {row["RowKey"].split(":", 1)[0] for row in rows} == {"email", "user"}


def test_lockout_can_be_turned_off(app_env: AppEnvironment) -> None:
    app_env.set(AUTH_LOCKOUT_THRESHOLD="0")
    assert [attempt("free@example.com", "wrong password!").status_code for _ in range(8)] == [401] * 8
    assert app_env.entities() == [], "nothing is recorded"


def test_wrong_current_passwords_count_against_the_lockout(
    lockout_env: AppEnvironment, verifications: list[str]
) -> None:
    """A stolen token does not let its holder guess the current password faster than login would."""
    token = json.loads(attempt("victim@example.com", PASSWORD).get_body())["token"]
    wrong_change = {"currentPassword": "wrong password!", "newPassword": "another long passphrase"}
    assert password.main(http_request("POST", "password", wrong_change, token=token)).status_code == 401
    wrong_delete = http_request("DELETE", "me", {"password": "wrong password!"}, token=token)
    assert me.main(wrong_delete).status_code == 401
    assert attempt("victim@example.com", "wrong password!").status_code == 401
    verified = len(verifications)
    right_change = {"currentPassword": PASSWORD, "newPassword": "another long passphrase"}
    refused = password.main(http_request("POST", "password", right_change, token=token))
    assert refused.status_code == 429
    assert problem(refused)["code"] == "too_many_attempts"
    assert attempt("victim@example.com", PASSWORD).status_code == 429
    assert len(verifications) == verified, "refused checks run no hash"


def test_a_password_change_clears_the_failures(lockout_env: AppEnvironment) -> None:
    token = json.loads(attempt("victim@example.com", PASSWORD).get_body())["token"]
    for _ in range(2):
        assert attempt("victim@example.com", "wrong password!").status_code == 401
    change = {"currentPassword": PASSWORD, "newPassword": "another long passphrase"}
    assert password.main(http_request("POST", "password", change, token=token)).status_code == 200
    record = AccountStore(get_settings().storage).login_record("victim@example.com")
    assert record.throttle.consecutive_failures == 0

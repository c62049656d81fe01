"""The second factor over real HTTP on two instances: one code sent twice at once signs in once; guessing
over fresh logins meets the lockout; an mfaToken dies after five wrong codes."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import pyotp
import pytest

from tests.conftest import LocalHost, app_settings_for, start_local_host
from tools.emulators.azurite import Azurite

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host

PASSWORD = "correct horse battery"


def test_the_same_code_at_once_on_two_instances_signs_in_once(two_hosts: tuple[LocalHost, LocalHost]) -> None:
    """Exactly one of two concurrent second steps with the same code succeeds."""
    a, b = two_hosts
    email = f"twice-{secrets.token_hex(4)}@example.com"
    token = a.post("register", {"email": email, "password": PASSWORD}).json()["token"]
    secret = a.post("mfa/totp", {"password": PASSWORD}, headers={"X-ZUMO-AUTH": token}).json()["secret"]
    app = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    confirmed = a.post("mfa/totp/confirm", {"code": app.at(step * 30)}, headers={"X-ZUMO-AUTH": token})
    assert confirmed.status_code == 200
    challenge = b.post("login", {"email": email, "password": PASSWORD})
    assert challenge.status_code == 403
    body = {"mfaToken": challenge.json()["mfaToken"], "code": app.at((step + 1) * 30)}
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def send(host: LocalHost) -> None:
        barrier.wait()
        statuses.append(host.post("login/mfa", body).status_code)

    threads = [threading.Thread(target=send, args=(host,)) for host in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400] or sorted(statuses) == [200, 401], statuses


def hosts_with(azurite: Azurite, folder: Path, **changes: str) -> tuple[LocalHost, LocalHost]:
    settings = app_settings_for(azurite.connection_string) | changes
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    return start_local_host(folder / "a", settings), start_local_host(folder / "b", settings)


def enrolled(host: LocalHost, email: str) -> tuple[pyotp.TOTP, int]:
    """Register and turn TOTP on; the authenticator, and the time step of the code that confirmed it."""
    token = host.post("register", {"email": email, "password": PASSWORD}).json()["token"]
    secret = host.post("mfa/totp", {"password": PASSWORD}, token=token).json()["secret"]
    app = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    assert host.post("mfa/totp/confirm", {"code": app.at(step * 30)}, token=token).status_code == 200
    return app, step


def test_guessing_over_fresh_logins_on_two_instances_reaches_429(azurite: Azurite, tmp_path: Path) -> None:
    """Rounds of a right password and a wrong code, on alternating instances, meet 429 at the threshold."""
    a, b = hosts_with(azurite, tmp_path, AUTH_LOCKOUT_THRESHOLD="5", AUTH_LOCKOUT_BASE_SECONDS="600")
    try:
        email = f"guess-{secrets.token_hex(4)}@example.com"
        enrolled(a, email)
        statuses: list[int] = []
        for round_number in range(6):
            host = (a, b)[round_number % 2]
            first = host.post("login", {"email": email, "password": PASSWORD})
            statuses.append(first.status_code)
            if first.status_code != 403:
                break
            wrong = (b, a)[round_number % 2].post(
                "login/mfa", {"mfaToken": first.json()["mfaToken"], "code": "000000"}
            )
            statuses.append(wrong.status_code)
        assert statuses == [403, 400] * 5 + [429], statuses
    finally:
        a.stop()
        b.stop()


def test_an_mfa_token_dies_after_five_wrong_codes_on_two_instances(azurite: Azurite, tmp_path: Path) -> None:
    """Five wrong codes at once over two instances spend the token; the right code then gets 401."""
    a, b = hosts_with(azurite, tmp_path, AUTH_LOCKOUT_THRESHOLD="20")
    try:
        email = f"dead-{secrets.token_hex(4)}@example.com"
        app, step = enrolled(a, email)
        mfa_token = b.post("login", {"email": email, "password": PASSWORD}).json()["mfaToken"]
        barrier = threading.Barrier(5)
        answers: list[int] = []

        def guess(host: LocalHost, code: str) -> None:
            barrier.wait()
            answers.append(host.post("login/mfa", {"mfaToken": mfa_token, "code": code}).status_code)

        threads = [
            threading.Thread(target=guess, args=((a, b)[n % 2], f"{n}{n}{n}{n}{n}{n}")) for n in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [400] * 5, answers
        right = app.at((step + 1) * 30)  # the step after enrolment's: not used yet
        dead = a.post("login/mfa", {"mfaToken": mfa_token, "code": right})
        assert (dead.status_code, dead.json()["code"]) == (401, "invalid_token")
        fresh = a.post("login", {"email": email, "password": PASSWORD}).json()["mfaToken"]
        assert b.post("login/mfa", {"mfaToken": fresh, "code": right}).status_code == 200
    finally:
        a.stop()
        b.stop()

"""The second factor over real HTTP on two instances: one code, sent twice at once, signs in once."""

from __future__ import annotations

import secrets
import threading
import time

import pyotp
import pytest

from tests.conftest import LocalHost

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

"""The second factor over real HTTP on two instances: one code, sent twice at once, signs in once."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.conftest import LocalHost, app_settings_for, start_local_host
from tools.azurite import Azurite

PASSWORD = "correct horse battery"


@pytest.fixture
def hosts(azurite: Azurite, tmp_path: Path) -> Iterator[tuple[LocalHost, LocalHost]]:
    """Two instances of the app on the same storage."""
    settings = app_settings_for(azurite.connection_string)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = start_local_host(tmp_path / "a", settings), start_local_host(tmp_path / "b", settings)
    yield first, second
    first.stop()
    second.stop()


def test_the_same_code_at_once_on_two_instances_signs_in_once(hosts: tuple[LocalHost, LocalHost]) -> None:
    """Exactly one of two concurrent second steps with the same code succeeds."""
    a, b = hosts
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

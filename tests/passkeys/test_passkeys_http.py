"""Passkeys over real HTTP through the local host: two instances, the association files, every /api/ route."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LocalHost, app_settings_for, two_local_hosts
from tests.passkeys.conftest import IOS_APP_ID, PASSWORD, WEB_ORIGIN, passkey_settings
from tools.emulators.azurite import PROJECT_ROOT, Azurite
from tools.software_authenticator import SoftwareAuthenticator

pytestmark = pytest.mark.through_host


@pytest.fixture
def two_passkey_hosts(azurite: Azurite, tmp_path: Path) -> Iterator[tuple[LocalHost, LocalHost]]:
    """Two instances of the app with passkeys on, over real HTTP on one storage account."""
    yield from two_local_hosts(tmp_path, app_settings_for(azurite.connection_string) | passkey_settings())


def add_passkey(host: LocalHost, email: str) -> SoftwareAuthenticator:
    token = host.post("register", {"email": email, "password": PASSWORD}).json()["token"]
    options = host.post("passkeys/registration/options", {"password": PASSWORD}, token=token)
    assert options.status_code == 200, options.text
    authenticator = SoftwareAuthenticator(WEB_ORIGIN)
    added = host.post(
        "passkeys/registration", {"credential": authenticator.create(options.json())}, token=token
    )
    assert added.status_code == 201, added.text
    return authenticator


def test_one_answer_to_one_challenge_on_two_instances(two_passkey_hosts: tuple[LocalHost, LocalHost]) -> None:
    """The same assertion sent to two instances at once signs in once: the challenge is in Table Storage."""
    first, second = two_passkey_hosts
    authenticator = add_passkey(first, "twohosts@example.com")
    for _ in range(3):
        options = second.post("passkeys/authentication/options").json()
        answer = authenticator.get(options)
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def send(
            host: LocalHost,
            answer: dict[str, Any] = answer,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            barrier.wait()
            statuses.append(host.post("passkeys/authentication", {"credential": answer}).status_code)

        threads = [threading.Thread(target=send, args=(host,)) for host in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 401]


def test_association_files_at_the_root_and_every_api_route_still_answers(
    two_passkey_hosts: tuple[LocalHost, LocalHost],
) -> None:
    """Both files answer at /.well-known/ (200, JSON, no redirect); every /api/ route is still served."""
    host, _ = two_passkey_hosts
    apple = requests.get(
        f"{host.base_url}/.well-known/apple-app-site-association", timeout=30, allow_redirects=False
    )
    assert apple.status_code == 200
    assert apple.headers["Content-Type"].startswith("application/json")
    assert apple.json() == {"webcredentials": {"apps": [IOS_APP_ID]}}
    links = requests.get(f"{host.base_url}/.well-known/assetlinks.json", timeout=30, allow_redirects=False)
    assert links.status_code == 200
    assert links.headers["Content-Type"].startswith("application/json")
    assert links.json()[0]["target"]["namespace"] == "android_app"
    assert requests.get(f"{host.base_url}/api/.well-known/assetlinks.json", timeout=30).status_code == 404

    for config in sorted(PROJECT_ROOT.glob("*/function.json")):
        for binding in json.loads(config.read_text())["bindings"]:
            if binding["type"] != "httpTrigger" or not binding["route"].startswith("api/"):
                continue
            path = re.sub(r"\{\w+\??\}", "x", binding["route"])
            for method in binding["methods"]:
                response = requests.request(method, f"{host.base_url}/{path}", timeout=30)
                # A function answered (a problem, or its own answer), not the host's empty 404.
                served = response.status_code != 404 or response.headers["Content-Type"].startswith(
                    "application/problem+json"
                )
                assert served, f"{method.upper()} /{path}"

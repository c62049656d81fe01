"""Mail end to end over real HTTP: the local host's queue trigger, two instances, outages, poison."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LocalHost, app_settings_for
from tests.mailtest import Inbox, mail_settings
from tools.emulators.azurite import Azurite

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def start_host(folder: Path, settings: dict[str, str]) -> LocalHost:
    folder.mkdir(parents=True, exist_ok=True)
    settings_file = folder / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {}, "Host": {}}))
    return LocalHost(settings_file, settings).start()


@pytest.fixture
def settings(azurite: Azurite, inbox: Inbox) -> dict[str, str]:
    """One app's settings (a table and a mail queue of its own), mail through ``inbox``."""
    return app_settings_for(azurite.connection_string) | mail_settings(azurite, inbox)


@pytest.fixture
def hosts(tmp_path: Path, settings: dict[str, str]) -> Iterator[tuple[LocalHost, LocalHost]]:
    """Two instances of the app on the same storage, as two instances in Azure."""
    first, second = start_host(tmp_path / "a", settings), start_host(tmp_path / "b", settings)
    yield first, second
    first.stop()
    second.stop()


def test_reset_over_http_refuses_old_tokens_on_another_instance(
    hosts: tuple[LocalHost, LocalHost], inbox: Inbox
) -> None:
    """Forgot on A, mail sent by a queue trigger, reset on A, the old token refused on B at once."""
    a, b = hosts
    email = f"http-{secrets.token_hex(4)}@example.com"
    registered = a.post("register", {"email": email, "password": PASSWORD})
    assert registered.status_code == 201
    token = registered.json()["token"]
    assert b.call("GET", "me", token=token).status_code == 200
    started = time.monotonic()
    assert a.post("password/forgot", {"email": email}).status_code == 202
    reset_mail = next(m for m in inbox.wait_for(email, 2, timeout=15) if "reset" in m.subject.lower())
    assert time.monotonic() - started < 5, "a mail leaves within about 2 s of the request"
    assert (
        a.post(
            "password/reset", {"email": email, "code": reset_mail.code, "newPassword": NEW_PASSWORD}
        ).status_code
        == 204
    )
    assert b.call("GET", "me", token=token).status_code == 401
    assert b.post("login", {"email": email, "password": NEW_PASSWORD}).status_code == 200


def test_a_mail_server_outage_of_60_seconds_loses_no_mail(
    tmp_path: Path, settings: dict[str, str], inbox: Inbox
) -> None:
    """Requests answer at once during the outage; the mail goes out when the server is back."""
    # host.json retries every 30 s, 8 times; the test waits less between retries, same mechanism.
    host = start_host(
        tmp_path / "host",
        settings | {"AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:10"},
    )
    try:
        email = f"outage-{secrets.token_hex(4)}@example.com"
        assert host.post("register", {"email": email, "password": PASSWORD}).status_code == 201
        inbox.wait_for(email)
        inbox.stop()
        started = time.monotonic()
        response = host.post("password/forgot", {"email": email})
        assert response.status_code == 202
        assert time.monotonic() - started < 1.0, "the request does not wait for the mail server"
        time.sleep(60)
        inbox.start()
        mails = inbox.wait_for(email, 2, timeout=30)
        assert "reset" in mails[-1].subject.lower()
    finally:
        log = host.stop()
    assert "event=mail_failed" in log
    assert "event=mail_sent" in log


def test_spent_retries_leave_the_message_in_the_poison_queue(
    tmp_path: Path, settings: dict[str, str], inbox: Inbox
) -> None:
    """After maxDequeueCount failed sends the message is in <queue>-poison, with mail_poisoned logged."""
    from azure.storage.queue import QueueClient

    inbox.stop()
    host = start_host(
        tmp_path / "host",
        settings
        | {
            "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
            "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2",
        },
    )
    poison = QueueClient.from_connection_string(
        settings["AzureWebJobsStorage"], settings["AUTH_MAIL_QUEUE"] + "-poison"
    )
    try:
        email = f"poison-{secrets.token_hex(4)}@example.com"
        assert host.post("register", {"email": email, "password": PASSWORD}).status_code == 201
        deadline = time.monotonic() + 30
        messages: list[object] = []
        while time.monotonic() < deadline and not messages:
            time.sleep(0.5)
            try:
                messages = list(poison.peek_messages(max_messages=5))
            except Exception:  # noqa: BLE001 - the poison queue does not exist until the first move
                messages = []
        assert len(messages) == 1
    finally:
        log = host.stop()
    assert "event=mail_poisoned" in log

"""A mail queue that cannot be reached: every request ends within a few seconds, with a defined answer.

The accounts table is up (Azurite); ``AzureWebJobsStorage`` names a queue
endpoint on a port nothing listens on, so every connection is refused.
Register keeps the account it stored and answers 201 (its verification mail
is logged as not queued and can be asked for again); requests whose only work
is the mail answer 503; under ``AUTH_REQUIRE_VERIFIED_EMAIL`` a new and an
existing email get the same 503.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import password_forgot
import register
from tests.conftest import AppEnvironment, http_request, problem
from tests.mailtest import Inbox
from tests.project.test_events import events
from tools.emulators.azurite import Azurite, free_port

PASSWORD = "correct horse battery"
#: A correctness bound, generous for a busy machine: the SDK's default retries took ~45 s.
BOUND_SECONDS = 10


@pytest.fixture
def dead_queue_env(mail_env: AppEnvironment, azurite: Azurite) -> AppEnvironment:
    """Mail configured, its queue on a port that refuses connections; the table stays on Azurite."""
    closed = free_port()
    connection = azurite.storage_connection_string.replace(
        f"QueueEndpoint=http://127.0.0.1:{azurite.queue_port}/", f"QueueEndpoint=http://127.0.0.1:{closed}/"
    )
    assert f":{closed}/" in connection
    mail_env.set(AzureWebJobsStorage=connection)
    return mail_env


def timed(function: Any, body: dict[str, str]) -> tuple[Any, float]:
    started = time.monotonic()
    response = function.main(http_request("POST", "x", body))
    return response, time.monotonic() - started


def test_register_keeps_the_account_and_says_the_mail_was_not_queued(
    dead_queue_env: AppEnvironment, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """201 with a token in bounded time; the account is whole; mail_not_queued is logged; no mail."""
    with caplog.at_level(logging.INFO):
        response, elapsed = timed(register, {"email": "q@example.com", "password": PASSWORD})
    assert response.status_code == 201, response.get_body()
    assert elapsed < BOUND_SECONDS
    assert "mail_not_queued" in [event for event, *_ in events(caplog)]
    assert {e["Email"] for e in dead_queue_env.entities() if "Email" in e} == {"q@example.com"}
    assert inbox.to("q@example.com") == []


def test_a_request_for_mail_alone_answers_503_in_bounded_time(dead_queue_env: AppEnvironment) -> None:
    """Forgot password has nothing to do but queue: 503 storage_unavailable, with Retry-After."""
    response, elapsed = timed(password_forgot, {"email": "nobody@example.com"})
    assert response.status_code == 503
    assert problem(response)["code"] == "storage_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < BOUND_SECONDS


def test_verified_registration_answers_new_and_existing_alike(dead_queue_env: AppEnvironment) -> None:
    """Under AUTH_REQUIRE_VERIFIED_EMAIL both get the same 503 in bounded time: nothing tells them apart."""
    dead_queue_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true")
    answers = []
    for email in ("new@example.com", "new@example.com"):  # the second finds the account the first stored
        response, elapsed = timed(register, {"email": email, "password": PASSWORD})
        assert elapsed < BOUND_SECONDS
        answers.append((response.status_code, problem(response)["code"]))
    assert answers == [(503, "storage_unavailable")] * 2

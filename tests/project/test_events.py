"""Structured log events: a stable name per outcome, tagged with the invocation id."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

import login
import me
import register
from tests.conftest import AppEnvironment, http_request
from tools.devhost.worker import InvocationContext

PASSWORD = "correct horse battery"
LINE = re.compile(
    r"^event=(?P<event>[a-z_]+) invocation_id=(?P<invocation>\S+)(?P<fields>( \w+=(\"[^\"]*\"|\S+))*)$"
)


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, int, dict[str, str]]]:
    found = []
    for record in caplog.records:
        if record.name != "shared.events":
            continue
        match = LINE.match(record.getMessage())
        assert match, record.getMessage()
        fields = dict(re.findall(r" (\w+)=\"?([^\"]*?)\"?(?= \w+=|$)", match["fields"]))
        found.append((match["event"], match["invocation"], record.levelno, fields))
    return found


def call(function: Any, method: str, body: Any = None, token: str | None = None) -> tuple[str, int]:
    context = InvocationContext("test", str(Path.cwd()))
    response = function.main(http_request(method, "x", body, token=token), context)
    return context.invocation_id, response.status_code


def test_each_outcome_has_its_event(app_env: AppEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    credentials = {"email": "ev@example.com", "password": PASSWORD}
    with caplog.at_level(logging.INFO):
        registered_id, _ = call(register, "POST", credentials)
        failed_id, _ = call(login, "POST", credentials | {"password": "wrong password!"})
        rejected_id, status = call(me, "GET", token="not-a-token")
        refused_id, _ = call(register, "POST", credentials)
    assert status == 401
    seen = {(name, invocation): (level, fields) for name, invocation, level, fields in events(caplog)}
    level, fields = seen[("registered", registered_id)]
    assert level == logging.INFO
    assert fields["user_id"].startswith("custom:")
    level, fields = seen[("login_failed", failed_id)]
    assert (level, fields["reason"]) == (logging.WARNING, "wrong_password")
    level, fields = seen[("token_rejected", rejected_id)]
    assert level == logging.WARNING
    assert fields["reason"] == "malformed token: DecodeError"
    assert seen[("request_refused", refused_id)][1] == {"code": "email_taken", "status": "409"}


def test_misconfiguration_names_the_setting(
    app_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    app_env.set(AUTH_SIGNING_KEY="abcd")
    with caplog.at_level(logging.INFO):
        invocation_id, status = call(login, "POST", {"email": "x@example.com", "password": PASSWORD})
    assert status == 500
    _, invocation, level, fields = next(e for e in events(caplog) if e[0] == "server_misconfigured")
    assert (invocation, level, fields["setting"]) == (invocation_id, logging.ERROR, "AUTH_SIGNING_KEY")


def test_without_a_context_an_id_is_made(app_env: AppEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        register.main(http_request("POST", "register", {"email": "noctx@example.com", "password": PASSWORD}))
    (_, invocation, _, _), *_ = events(caplog)
    assert re.fullmatch(r"[0-9a-f]{32}", invocation)

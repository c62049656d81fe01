"""Storage outages: 503 with Retry-After within a bound, nothing half-written, recovery by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import login
import register
from shared.storage import STORAGE_CALL_BUDGET_SECONDS
from tests.conftest import AppEnvironment, http_request, problem
from tools.azurite import Azurite

PASSWORD = "correct horse battery"


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test alone, keeping data on disk across restarts."""
    server = Azurite(location=tmp_path / "azurite").start()
    yield server
    server.stop()


@pytest.fixture
def outage_env(app_env: AppEnvironment, own_azurite: Azurite) -> AppEnvironment:
    app_env.set(ACCOUNTS_STORAGE_CONNECTION=own_azurite.connection_string)
    return app_env


def call(function: Any, email: str) -> tuple[int, float, Any]:
    started = time.monotonic()
    response = function.main(http_request("POST", "x", {"email": email, "password": PASSWORD}))
    return response.status_code, time.monotonic() - started, response


def assert_unavailable(response: Any, elapsed: float) -> None:
    assert response.status_code == 503
    assert problem(response)["code"] == "storage_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < STORAGE_CALL_BUDGET_SECONDS + 2


def test_outage_gives_503_and_the_service_recovers(outage_env: AppEnvironment, own_azurite: Azurite) -> None:
    """A warm process survives storage going away and coming back, without a restart."""
    assert call(register, "before@example.com")[0] == 201
    own_azurite.stop()

    _, elapsed, response = call(register, "during@example.com")
    assert_unavailable(response, elapsed)
    _, elapsed, response = call(login, "before@example.com")
    assert_unavailable(response, elapsed)

    own_azurite.start()
    assert call(login, "before@example.com")[0] == 200
    assert call(register, "after@example.com")[0] == 201
    emails = {e["Email"] for e in outage_env.entities()}
    assert emails == {"before@example.com", "after@example.com"}, "nothing of the failed register was stored"
    assert len(outage_env.entities()) == 4


def test_cold_start_during_outage(outage_env: AppEnvironment, own_azurite: Azurite) -> None:
    """The first request of a process finds storage down; a later one creates the table and works."""
    own_azurite.stop()
    _, elapsed, response = call(register, "cold@example.com")
    assert_unavailable(response, elapsed)
    own_azurite.start()
    assert call(register, "cold@example.com")[0] == 201
    assert call(login, "cold@example.com")[0] == 200

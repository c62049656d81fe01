"""Storage outages: 503 with Retry-After within a bound, nothing half-written, recovery by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import login
import register
from shared.accounts.store import AccountStore
from shared.settings import get_settings
from shared.storage import STORAGE_CALL_BUDGET_SECONDS
from tests.conftest import AppEnvironment, http_request, problem
from tests.faultproxy import FaultProxy
from tools.emulators.azurite import Azurite, table_connection_string

PASSWORD = "correct horse battery"


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


@pytest.fixture
def proxy(outage_env: AppEnvironment, own_azurite: Azurite) -> Iterator[FaultProxy]:
    """The app reaches storage through a proxy that injects faults; the first request warms the client."""
    proxy = FaultProxy(own_azurite.table_port)
    outage_env.set(ACCOUNTS_STORAGE_CONNECTION=table_connection_string(proxy.port))
    assert call(register, "warm@example.com")[0] == 201
    proxy.faults.reset()
    yield proxy
    proxy.close()


@pytest.mark.parametrize("status", [500, 503])
def test_storage_errors_give_503_and_store_nothing(
    outage_env: AppEnvironment, proxy: FaultProxy, status: int
) -> None:
    proxy.faults.error_status = status
    _, elapsed, response = call(register, "err@example.com")
    assert_unavailable(response, elapsed)
    proxy.faults.reset()
    assert {e["Email"] for e in outage_env.entities()} == {"warm@example.com"}
    assert call(register, "err@example.com")[0] == 201


def test_slow_storage_is_given_up_on_within_the_budget(outage_env: AppEnvironment, proxy: FaultProxy) -> None:
    """Slower than the 5 s read timeout: the request ends with 503 inside the documented bound."""
    proxy.faults.delay_seconds = 6
    _, elapsed, response = call(login, "warm@example.com")
    assert_unavailable(response, elapsed)
    proxy.faults.reset()
    assert call(login, "warm@example.com")[0] == 200


def test_failure_in_the_middle_of_a_request(outage_env: AppEnvironment, proxy: FaultProxy) -> None:
    """A wrong password's read succeeds, then its failure-record write fails: 503, nothing half-written."""
    store = AccountStore(get_settings().storage)
    before = store.login_record("warm@example.com")
    proxy.faults.from_request_number = 2
    proxy.faults.error_status = 503
    response = login.main(
        http_request("POST", "login", {"email": "warm@example.com", "password": "wrong pw!"})
    )
    assert response.status_code == 503
    assert proxy.faults.seen >= 2, "the first storage call went through"
    proxy.faults.reset()
    after = store.login_record("warm@example.com")
    assert (after.throttle, after.credentials) == (before.throttle, before.credentials)


def test_registration_whose_answer_was_lost(outage_env: AppEnvironment, proxy: FaultProxy) -> None:
    """Storage commits, the answer is lost, the SDK retries and meets the rows: still 201, one account."""
    proxy.faults.only_request_number = 1
    proxy.faults.drop_after_forwarding = True
    status, _, response = call(register, "lost@example.com")
    assert status == 201, response.get_body()
    assert proxy.faults.seen >= 2, "the answer was dropped and the call retried"
    rows = [e for e in outage_env.entities() if e["Email"] == "lost@example.com"]
    assert len(rows) == 2
    assert call(login, "lost@example.com")[0] == 200


def test_registration_lost_before_storage(outage_env: AppEnvironment, proxy: FaultProxy) -> None:
    """The connection drops before storage sees the insert: 503, and no account."""
    proxy.faults.only_request_number = 1
    proxy.faults.drop_without_forwarding = True
    _, elapsed, response = call(register, "never@example.com")
    assert_unavailable(response, elapsed)
    assert not [e for e in outage_env.entities() if e["Email"] == "never@example.com"]

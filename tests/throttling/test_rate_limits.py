"""Per-client-address rate limits: the arithmetic, the client address, counters in Azurite, the functions."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import login
import register
from shared.accounts.passwords import PasswordHasher
from shared.errors import StorageUnavailable, TooManyAttempts
from shared.settings import StorageSettings, get_settings
from shared.storage import storage_requests
from shared.throttling.client_address import client_address
from shared.throttling.lockout import AddressLimits, AttemptWindow, RateLimit
from shared.throttling.rate_limiter import Action, RateLimiter
from tests.conftest import (
    AppEnvironment,
    LocalHost,
    app_settings_for,
    http_request,
    problem,
    start_local_host,
)
from tests.faultproxy import FaultProxy
from tools.emulators.azurite import Azurite, free_port, table_connection_string

PASSWORD = "correct horse battery"
T0 = 1_800_000_000.0  # a window boundary for every window length used here (a multiple of 300 and 3600)


class TestLimitArithmetic:
    """The sliding-window estimate over two fixed windows."""

    @pytest.mark.parametrize(
        ("text", "limit"),
        [("30/300", RateLimit(30, 300)), (" 5 / 1 ", RateLimit(5, 1)), ("0", RateLimit(0))],
    )
    def test_parses_count_per_seconds(self, text: str, limit: RateLimit) -> None:
        assert RateLimit.parse(text) == limit

    @pytest.mark.parametrize("text", ["", "30", "30/0", "-1/5", "a/b", "30/300/1", "1e3/5"])
    def test_refuses_anything_else(self, text: str) -> None:
        with pytest.raises(ValueError, match=r".*"):
            RateLimit.parse(text)

    def test_admits_exactly_the_limit_in_a_window(self) -> None:
        limit, window, admitted = RateLimit(30, 300), AttemptWindow(), 0
        for second in range(100):
            now = T0 + second
            if window.admits(limit, now):
                window, admitted = window.after_attempt(limit, now), admitted + 1
        assert admitted == 30

    def test_a_window_boundary_does_not_double_the_rate(self) -> None:
        """30 attempts at the end of one window still weigh on the start of the next."""
        limit = RateLimit(30, 300)
        window = AttemptWindow()
        for _ in range(30):
            window = window.after_attempt(limit, T0 + 299)
        assert not window.admits(limit, T0 + 300)  # the previous window still overlaps completely
        assert window.estimate(limit, T0 + 450) == pytest.approx(15)
        assert window.admits(limit, T0 + 450)
        assert window.at(limit, T0 + 900) == AttemptWindow(int(T0 + 900), 0, 0)  # expired on its own

    @given(
        limit=st.builds(RateLimit, st.integers(1, 50), st.integers(1, 600)),
        attempts=st.lists(st.floats(0, 1200, allow_nan=False), max_size=120),
        probe=st.floats(0, 2400, allow_nan=False),
    )
    def test_retry_after_is_the_first_whole_second_that_admits(
        self, limit: RateLimit, attempts: list[float], probe: float
    ) -> None:
        window = AttemptWindow()
        for offset in sorted(attempts):
            if window.admits(limit, T0 + offset):
                window = window.after_attempt(limit, T0 + offset)
        now = T0 + max([probe, *attempts])
        if window.admits(limit, now):
            return
        wait = window.retry_after(limit, now)
        assert wait >= 1
        assert window.admits(limit, now + wait + 1e-6)
        if wait > 1:
            assert not window.admits(limit, now + wait - 1)


class TestClientAddress:
    """Which X-Forwarded-For entry is the client (README, "Client addresses")."""

    def test_the_entry_the_front_end_appended_is_trusted(self) -> None:
        """Whatever a client puts in the header itself lands left of the front end's entry."""
        forwarded = "6.6.6.6, 7.7.7.7:1234, 203.0.113.9:50000"
        assert client_address(forwarded) == ipaddress.ip_address("203.0.113.9")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("203.0.113.9", "203.0.113.9"),
            ("203.0.113.9:443", "203.0.113.9"),
            ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ],
    )
    def test_forms(self, value: str, expected: str) -> None:
        assert str(client_address(value)) == expected

    def test_one_ipv6_network_is_one_client(self) -> None:
        assert client_address("2001:db8:0:7::1") == client_address("[2001:db8:0:7:abcd::99]:1")

    @pytest.mark.parametrize("value", [None, "", "unknown", "203.0.113.9, bogus", "999.1.1.1"])
    def test_no_usable_address(self, value: str | None) -> None:
        assert client_address(value) is None

    @given(value=st.text(), proxies=st.integers(0, 10))
    def test_never_raises(self, value: str, proxies: int) -> None:
        """Any header value gives an address or none: never an error (a 500)."""
        address = client_address(value, trusted_proxies=proxies)
        assert address is None or isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Network)

    def test_trusted_proxies_move_left(self) -> None:
        value = "6.6.6.6, 198.51.100.7, 10.0.0.4:1234"  # spoofed, client as Front Door saw it, Front Door
        assert client_address(value, trusted_proxies=1) == ipaddress.ip_address("198.51.100.7")
        assert client_address("198.51.100.7", trusted_proxies=3) == ipaddress.ip_address("198.51.100.7")


def limiter_for(app_env: AppEnvironment, limits: AddressLimits, now: list[float]) -> RateLimiter:
    """A limiter on the test's table, with a clock the test moves."""
    storage = get_settings().storage
    return RateLimiter(limits, storage, address_key=app_env.signing_key, clock=lambda: now[0])


def attempt(limiter: RateLimiter, client: str, action: Action = Action.LOGIN) -> bool:
    try:
        limiter.admit(action, client).wait()
    except TooManyAttempts:
        return False
    return True


def counter_rows(app_env: AppEnvironment) -> list[dict[str, Any]]:
    return [entity for entity in app_env.entities() if entity["PartitionKey"].startswith("rate-")]


class TestCountersInTableStorage:
    """Counters kept in Azurite by conditional writes."""

    def test_concurrent_attempts_lose_no_increment(self, app_env: AppEnvironment) -> None:
        """Two instances and 16 threads hammer one address: exactly the limit gets through, all counted."""
        now = [T0 + 10]
        limits = AddressLimits(login=RateLimit(50, 3600))
        instances = [limiter_for(app_env, limits, now), limiter_for(app_env, limits, now)]
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: attempt(instances[i % 2], "203.0.113.5"), range(120)))
        assert results.count(True) == 50
        [row] = counter_rows(app_env)
        assert row["Attempts"] == 50

    def test_no_increment_lost_below_the_limit(self, app_env: AppEnvironment) -> None:
        now = [T0 + 10]
        limits = AddressLimits(login=RateLimit(1000, 3600))
        instances = [limiter_for(app_env, limits, now) for _ in range(3)]
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda i: attempt(instances[i % 3], "203.0.113.6"), range(90)))
        assert all(results)
        [row] = counter_rows(app_env)
        assert row["Attempts"] == 90

    def test_counts_expire_on_their_own(self, app_env: AppEnvironment) -> None:
        now = [T0]
        limiter = limiter_for(app_env, AddressLimits(register=RateLimit(3, 300)), now)
        assert [attempt(limiter, "198.51.100.1", Action.REGISTER) for _ in range(4)] == [True] * 3 + [False]
        now[0] = T0 + 300 + 299  # the next window; the last one's 3 weigh 1/300 of themselves
        assert attempt(limiter, "198.51.100.1", Action.REGISTER)
        now[0] = T0 + 3 * 300  # two windows on: nothing of the old counts is left
        assert [attempt(limiter, "198.51.100.1", Action.REGISTER) for _ in range(4)] == [True] * 3 + [False]

    def test_addresses_and_actions_are_counted_apart(self, app_env: AppEnvironment) -> None:
        now = [T0]
        limits = AddressLimits(register=RateLimit(1, 300), login=RateLimit(1, 300))
        limiter = limiter_for(app_env, limits, now)
        assert attempt(limiter, "198.51.100.1", Action.REGISTER)
        assert not attempt(limiter, "198.51.100.1", Action.REGISTER)
        assert attempt(limiter, "198.51.100.1", Action.LOGIN)
        assert attempt(limiter, "198.51.100.2", Action.REGISTER)

    def test_the_table_holds_no_client_address(self, app_env: AppEnvironment) -> None:
        limiter = limiter_for(app_env, AddressLimits(), [T0])
        assert attempt(limiter, "198.51.100.77:5000")
        stored = json.dumps([{**row, "WindowStart": None} for row in counter_rows(app_env)])
        assert "198.51.100.77" not in stored
        assert "rate:login:" in stored

    def test_a_refusal_this_process_knows_costs_no_storage_request(self, app_env: AppEnvironment) -> None:
        limiter = limiter_for(app_env, AddressLimits(login=RateLimit(2, 300)), [T0])
        assert [attempt(limiter, "198.51.100.3") for _ in range(3)] == [True, True, False]
        storage_requests.reset()
        assert not attempt(limiter, "198.51.100.3")
        assert storage_requests.count == 0


class TestCounterOutage:
    """Counters unreachable: refused (503) unless configured to fail open; logged either way."""

    @pytest.mark.parametrize("fail_open", [False, True])
    def test_unreachable_counters(self, fail_open: bool, caplog: pytest.LogCaptureFixture) -> None:
        nowhere = StorageSettings("Nowhere", connection_string=table_connection_string(free_port()))
        limits = AddressLimits(fail_open=fail_open)
        limiter = RateLimiter(limits, nowhere, address_key=b"k" * 32, clock=lambda: T0)
        admission = limiter.admit(Action.LOGIN, "198.51.100.4")
        with caplog.at_level(logging.WARNING, logger="shared.events"):
            if fail_open:
                admission.wait()
            else:
                with pytest.raises(StorageUnavailable):
                    admission.wait()
        expected = f"event=rate_limit_unavailable invocation_id=- action=login fail_open={fail_open}"
        assert expected in caplog.text


def post(function: Any, email: str, client: str | None = None, password: str = PASSWORD) -> Any:
    body = {"email": email, "password": password}
    return function.main(http_request("POST", "x", body, client=client))


class TestFunctions:
    """register and login refuse a client over its limit with 429 and store nothing."""

    def test_register_limit(self, app_env: AppEnvironment, caplog: pytest.LogCaptureFixture) -> None:
        app_env.set(AUTH_RATE_LIMIT_REGISTER="3/300")
        client = "6.6.6.6, 203.0.113.20:4000"
        assert [post(register, f"r{i}@example.com", client).status_code for i in range(3)] == [201] * 3
        with caplog.at_level(logging.WARNING, logger="shared.events"):
            refused = post(register, "r3@example.com", client)
        assert refused.status_code == 429
        assert problem(refused)["code"] == "too_many_attempts"
        assert 1 <= int(refused.headers["Retry-After"]) <= 2 * 300  # the previous window weighs in
        assert "event=throttled" in caplog.text
        assert "reason=address_rate_limit action=register" in caplog.text
        assert not [e for e in app_env.entities() if e.get("Email") == "r3@example.com"]
        assert post(register, "r3@example.com", "203.0.113.21:4000").status_code == 201
        assert post(register, "r4@example.com", None).status_code == 201  # no address: not counted

    def test_login_limit_is_the_same_for_known_and_unknown_emails(self, app_env: AppEnvironment) -> None:
        assert post(register, "known@example.com").status_code == 201
        app_env.set(AUTH_RATE_LIMIT_LOGIN="2/300")
        client = "203.0.113.30:1"
        assert post(login, "known@example.com", client).status_code == 200
        assert post(login, "nobody@example.com", client).status_code == 401
        known, unknown = post(login, "known@example.com", client), post(login, "nobody@example.com", client)
        assert known.status_code == unknown.status_code == 429
        assert known.get_body() == unknown.get_body()
        assert post(login, "known@example.com", "203.0.113.31:1").status_code == 200

    def test_no_hashing_for_a_client_the_process_knows_is_over_its_limit(
        self, app_env: AppEnvironment, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The process remembers the counts it wrote: the attempt past the limit runs no hash."""
        app_env.set(AUTH_RATE_LIMIT_LOGIN="2/300")
        hashed: list[str] = []
        real = PasswordHasher.verify_nothing

        def spy(self: PasswordHasher, password: str) -> None:
            hashed.append(password)
            real(self, password)

        monkeypatch.setattr(PasswordHasher, "verify_nothing", spy)
        statuses = [post(login, "nobody@example.com", "203.0.113.70").status_code for _ in range(5)]
        assert statuses == [401, 401, 429, 429, 429]
        assert len(hashed) == 2

    def test_defaults(self, app_env: AppEnvironment) -> None:
        """With no limit settings, the 31st registration from one address in 5 minutes is refused."""
        app_env.set(AUTH_RATE_LIMIT_REGISTER=None, AUTH_RATE_LIMIT_LOGIN=None)
        codes = [post(register, f"d{i}@example.com", "203.0.113.40").status_code for i in range(31)]
        assert codes == [201] * 30 + [429]

    def test_round_trips_with_limits_on(self, app_env: AppEnvironment) -> None:
        """One more request per attempt (the counter), made beside the account read."""
        app_env.set(AUTH_RATE_LIMIT_REGISTER="5/300", AUTH_RATE_LIMIT_LOGIN="2/300")
        assert post(login, "warm@example.com").status_code == 401  # the process's client and table exist
        counts = []
        for function in (register, login, login):
            storage_requests.reset()
            assert post(function, "rt@example.com", "203.0.113.50").status_code in (200, 201)
            counts.append(storage_requests.count)
        storage_requests.reset()
        assert post(login, "rt@example.com", "203.0.113.50").status_code == 429
        # register: insert + counter; login: read + counter (new, then known) + the session write
        assert counts == [2, 3, 3]
        assert storage_requests.count == 1, "a refusal the process knows of: the account read alone"

    def test_counter_outage_fails_closed_or_open(self, app_env: AppEnvironment, own_azurite: Azurite) -> None:
        proxy = FaultProxy(own_azurite.table_port)
        try:
            app_env.set(
                ACCOUNTS_STORAGE_CONNECTION=table_connection_string(proxy.port),
                AUTH_RATE_LIMIT_LOGIN="100/300",
            )
            assert post(register, "fo@example.com").status_code == 201
            proxy.faults.only_containing, proxy.faults.error_status = b"rate-", 503
            closed = post(login, "fo@example.com", "203.0.113.60")
            assert closed.status_code == 503
            assert problem(closed)["code"] == "storage_unavailable"
            app_env.set(AUTH_RATE_LIMIT_FAIL_OPEN="true")
            assert post(login, "fo@example.com", "203.0.113.60").status_code == 200
            assert proxy.faults.seen > 0
        finally:
            proxy.close()


@pytest.fixture
def limited_host(azurite: Azurite, tmp_path: Path) -> Iterator[LocalHost]:
    settings = app_settings_for(azurite.connection_string) | {"AUTH_RATE_LIMIT_LOGIN": "3/300"}
    host = start_local_host(tmp_path, settings)
    yield host
    host.stop()


def test_a_client_cannot_spoof_its_way_around_the_limit(limited_host: LocalHost) -> None:
    """Over real HTTP: the local host appends the peer's address as Azure's front ends do."""
    statuses = [
        limited_host.post(
            "login",
            {"email": f"s{i}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": f"10.9.{i}.1", "X-Client-IP": f"10.8.{i}.1"},
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]

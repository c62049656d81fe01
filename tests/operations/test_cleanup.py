"""The scheduled cleanup, on real Azurite: exactly the dead rows go, live ones stay, even in a race."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableClient, UpdateMode
from azure.functions.timer import TimerRequest

import cleanup
from shared.accounts.service import account_service
from shared.accounts.store import (
    AccountStore,
    alias_keys,
    email_row_key,
    mfa_row_key,
    new_user_id,
    partition_for_email,
    user_row_key,
)
from shared.errors import InvalidCredentials, SettingError
from shared.login.password import log_in
from shared.operations import cleanup as sweeper
from shared.operations.cleanup import DeadRow, delete_unchanged, run_cleanup
from shared.recovery.codes import CodePurpose, OneTimeCodes
from shared.settings import get_settings, load_settings
from shared.storage import table_client
from shared.throttling.rate_limiter import Action, RateLimiter
from tests.conftest import AppEnvironment, start_local_host
from tools.devhost.worker import InvocationContext

PASSWORD = "correct horse battery"
WRONG = "not the password at all"
Key = tuple[str, str]


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


def table() -> TableClient:
    """The app's own client for this test's table (created if missing)."""
    return table_client(get_settings().storage)


def row_keys(app_env: AppEnvironment) -> set[Key]:
    """Every row of the table but the cleanup's own state row."""
    return {(e["PartitionKey"], e["RowKey"]) for e in app_env.entities() if e["PartitionKey"] != "cleanup"}


def keys_of(rows: Iterable[dict[str, Any]]) -> set[Key]:
    return {(row["PartitionKey"], row["RowKey"]) for row in rows}


def seed(rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` with the bare SDK, in transactions of up to 100 rows of one partition."""
    ordered = sorted(rows, key=lambda row: str(row["PartitionKey"]))
    for _, group in itertools.groupby(ordered, key=lambda row: str(row["PartitionKey"])):
        batch = list(group)
        for start in range(0, len(batch), 100):
            table().submit_transaction([("upsert", row) for row in batch[start : start + 100]])


def counter(action: str, window_start: datetime, partition_digits: str | None = None) -> dict[str, Any]:
    """A counter row as shared.throttling.rate_limiter writes it."""
    digest = secrets.token_hex(15) + (partition_digits or secrets.token_hex(1))
    return {
        "PartitionKey": "rate-" + digest[-2:],
        "RowKey": f"rate:{action}:{digest}",
        "WindowStart": window_start,
        "Attempts": 3,
        "PreviousAttempts": 1,
    }


def placeholder(
    email: str, *, locked_until: datetime, window_start: datetime, failures: int = 3
) -> dict[str, Any]:
    """A login row of no account, holding only a failure record, as shared.accounts.store writes it."""
    return {
        "PartitionKey": partition_for_email(email),
        "RowKey": email_row_key(email),
        "FailedLogins": failures,
        "LockedUntil": locked_until,
        "FailureWindowStart": window_start,
        "FailureWindowCount": failures,
    }


def code_row(email: str, expires_at: datetime) -> dict[str, Any]:
    """A code row as shared.recovery.codes writes it."""
    return {
        "PartitionKey": partition_for_email(email),
        "RowKey": "code:reset:" + email_row_key(email).removeprefix("email:"),
        "UserId": new_user_id(email),
        "Address": email,
        "Digest": "00" * 32,
        "IssuedAt": expires_at - timedelta(minutes=10),
        "ExpiresAt": expires_at,
        "WrongTries": 0,
    }


def merge(keys: Key, **changes: Any) -> None:
    table().update_entity({"PartitionKey": keys[0], "RowKey": keys[1], **changes}, mode=UpdateMode.MERGE)


def new_keys(app_env: AppEnvironment, action: Callable[[], object]) -> set[Key]:
    """The rows that ``action`` adds to the table."""
    before = row_keys(app_env)
    action()
    return row_keys(app_env) - before


def fail_login(email: str) -> None:
    with pytest.raises(InvalidCredentials):
        log_in(account_service(), email, WRONG)


def login_key(email: str) -> Key:
    return partition_for_email(email), email_row_key(email)


def user_id_of(email: str) -> str:
    credentials = AccountStore(get_settings().storage).credentials(email)
    assert credentials is not None
    return credentials.user_id


def test_dead_rows_go_and_live_rows_stay(app_env: AppEnvironment) -> None:
    """Counters, placeholders and codes past their rules go; accounts, aliases and live rows stay."""
    app_env.set(AUTH_RATE_LIMIT_REGISTER="30/300", AUTH_RATE_LIMIT_LOGIN="100/300", AUTH_MAIL_LIMIT="5/3600")
    settings = get_settings()
    now = datetime.now(UTC)
    dead: set[Key] = set()

    # Counters, written by the limiter at the times its clock says (windows: 300 s, mail-<kind> 3600 s).
    clock = [0.0]
    limiter = RateLimiter(
        settings.address_limits, settings.storage, app_env.signing_key, clock=lambda: clock[0]
    )

    def count(action: Action | str, address: str, seconds_ago: float) -> set[Key]:
        clock[0] = now.timestamp() - seconds_ago
        if isinstance(action, Action):
            return new_keys(app_env, lambda: limiter.admit(action, address).wait())
        return new_keys(app_env, lambda: limiter.admit_mail(action, address, settings.mail.limit))

    dead |= count(Action.LOGIN, "203.0.113.1", 605)  # both windows over
    count(Action.LOGIN, "203.0.113.2", 150)  # the previous window still counts
    dead |= count(Action.REGISTER, "203.0.113.3", 700)
    count(Action.MAIL, "203.0.113.4", 100)
    dead |= count("password_reset", "a@example.com", 7205)
    count("verify_email", "b@example.com", 3000)
    # An action this code does not count: kept for at least a day (two windows of a day).
    old_unknown, young_unknown = counter("signup", now - timedelta(days=2, minutes=1)), counter("signup", now)
    seed([old_unknown, young_unknown])
    dead |= keys_of([old_unknown])

    # Placeholders, made by failed logins, then aged in the table.
    two_hours_ago = now - timedelta(hours=2)
    stale, fresh, locked, lock_over = (unique(name) for name in ("stale", "fresh", "locked", "lock-over"))
    for email in (stale, fresh, locked, lock_over):
        fail_login(email)
    merge(login_key(stale), FailureWindowStart=two_hours_ago)
    merge(login_key(locked), FailureWindowStart=two_hours_ago, LockedUntil=now + timedelta(hours=1))
    merge(login_key(lock_over), FailureWindowStart=two_hours_ago, LockedUntil=now - timedelta(minutes=1))
    dead |= {login_key(stale), login_key(lock_over)}

    # Accounts: one with an old failure record on its login row, a second factor, an alias.
    member = unique("member")
    account_service().register(member, PASSWORD)
    fail_login(member)
    merge(login_key(member), FailureWindowStart=two_hours_ago)
    user_id = user_id_of(member)
    alias_partition, alias_row = alias_keys(user_id)
    seed(
        [
            {"PartitionKey": partition_for_email(member), "RowKey": mfa_row_key(user_id), "Secret": "x"},
            {"PartitionKey": alias_partition, "RowKey": alias_row, "UserId": user_id, "Email": member},
        ]
    )

    # Codes, issued for real; one expired in the table.
    codes = OneTimeCodes(settings.storage, settings.tokens.keys, settings.mail.code_lifetime)
    expired, live = unique("expired"), unique("live")
    expired_keys = new_keys(
        app_env, lambda: codes.issue(expired, CodePurpose.RESET, user_id="u", address=expired)
    )
    codes.issue(live, CodePurpose.VERIFY, user_id="u", address=live)
    (expired_key,) = expired_keys
    merge(expired_key, ExpiresAt=now - timedelta(seconds=1))
    dead |= expired_keys

    before = row_keys(app_env)
    report = run_cleanup(settings, now=now)

    assert row_keys(app_env) == before - dead
    # The member's old failure record is cleared, as the placeholders' records are deleted.
    assert dict(report.deleted) == {"counters": 4, "placeholders": 2, "codes": 1, "failure_records": 1}
    assert (report.complete, report.changed) == (True, 0)
    assert sum(run_cleanup(settings, now=now).deleted.values()) == 0, "nothing left to delete"


def test_the_timer_function_runs_it_and_logs_the_run(
    app_env: AppEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    """cleanup.main, given a past-due TimerRequest, deletes a dead code and logs cleanup_finished, tagged."""
    email = unique("timer")
    seed([code_row(email, datetime.now(UTC) - timedelta(minutes=1))])
    context = InvocationContext("cleanup", str(Path(cleanup.__file__).parent))

    with caplog.at_level(logging.INFO, logger="shared.events"):
        cleanup.main(TimerRequest(past_due=True), context)

    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=cleanup_finished")]
    assert line.startswith(f"event=cleanup_finished invocation_id={context.invocation_id} ")
    for field in ("deleted_codes=1", "deleted_counters=0", "changed=0", "complete=true", "past_due=true"):
        assert f" {field}" in line
    assert " seconds=" in line
    assert row_keys(app_env) == set()


def test_a_row_changed_after_it_was_read_survives(app_env: AppEnvironment) -> None:
    """The delete step with stale ETags: rows written since the read stay; rows gone since are no error."""
    long_ago = datetime.now(UTC) - timedelta(days=3)
    rows = [counter("login", long_ago, "ab") for _ in range(3)]
    email = unique("raced")
    seed([*rows, placeholder(email, locked_until=long_ago, window_start=long_ago)])
    read = {
        (e["PartitionKey"], e["RowKey"]): DeadRow(e["PartitionKey"], e["RowKey"], e.metadata["etag"] or "")
        for e in table().list_entities()
    }
    counted, gone, untouched = keys_of(rows[:1]), keys_of(rows[1:2]), keys_of(rows[2:])
    merge(next(iter(counted)), Attempts=4)  # a client was counted again
    table().delete_entity(*next(iter(gone)))  # another run got there first
    fail_login(email)  # a login counted a failure on the placeholder

    assert delete_unchanged(table(), [read[key] for key in sorted(keys_of(rows))]) == 1
    assert delete_unchanged(table(), [read[login_key(email)]]) == 0
    assert row_keys(app_env) == counted | {login_key(email)}
    assert not untouched & row_keys(app_env)
    assert table().get_entity(*login_key(email))["FailedLogins"] == 4, "the new failure record stands"


def test_two_runs_at_once_delete_each_row_once(app_env: AppEnvironment) -> None:
    """Two instances' cleanups at the same moment: each dead row is deleted once in all, and neither fails."""
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=3)
    dead_rows = [counter("login", long_ago, f"{n % 4:02x}") for n in range(400)]
    dead_rows += [code_row(unique("c"), long_ago) for _ in range(30)]
    dead_rows += [placeholder(unique("p"), locked_until=long_ago, window_start=long_ago) for _ in range(30)]
    live_rows = [counter("login", now), code_row(unique("c"), now + timedelta(minutes=5))]
    seed(dead_rows + live_rows)
    settings = get_settings()
    start = threading.Barrier(2)

    def run(_: int) -> sweeper.CleanupReport:
        start.wait()
        return run_cleanup(settings)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(run, range(2)))

    assert all(report.complete for report in reports)
    assert sum(sum(report.deleted.values()) for report in reports) == len(dead_rows)
    assert row_keys(app_env) == keys_of(live_rows)


def test_more_rows_than_a_query_page(app_env: AppEnvironment) -> None:
    """1,500 dead counters (two pages of a query) all go; the live ones among them stay."""
    now = datetime.now(UTC)
    dead_rows = [counter("login", now - timedelta(days=3), f"{n % 15:02x}") for n in range(1500)]
    live_rows = [counter("login", now, f"{n:02x}") for n in range(15)]
    seed(dead_rows + live_rows)
    assert len(dead_rows) > sweeper.PAGE_SIZE

    report = run_cleanup(get_settings())

    assert (report.deleted["counters"], report.complete) == (1500, True)
    assert row_keys(app_env) == keys_of(live_rows)


def test_the_budget_stops_a_run_and_the_next_one_carries_on(app_env: AppEnvironment) -> None:
    """A run out of time stops cleanly, noting where; the next run finishes from there."""
    long_ago = datetime.now(UTC) - timedelta(days=3)
    dead_rows = [counter("login", long_ago, f"{n % 15:02x}") for n in range(1500)]
    dead_rows += [code_row(unique("c"), long_ago) for _ in range(5)]
    seed(dead_rows)
    ticks = itertools.count()  # a clock that moves a second each time it is read

    first = run_cleanup(get_settings(), budget=timedelta(seconds=12), clock=lambda: float(next(ticks)))

    assert not first.complete
    assert 0 < first.deleted["counters"] < 1500
    state = table().get_entity("cleanup", "state")
    assert state["ResumeSweep"] == "counters"
    assert state["ResumePartitionKey"], "stopped after a page, at the next one's position"

    second = run_cleanup(get_settings())

    assert second.complete
    assert first.deleted["counters"] + second.deleted["counters"] == 1500
    assert second.deleted["codes"] == 5
    assert row_keys(app_env) == set()
    assert table().get_entity("cleanup", "state")["ResumeSweep"] == ""


def test_unverified_accounts_go_only_under_required_verification_and_past_the_age(
    app_env: AppEnvironment,
) -> None:
    """Sign-ups never verified, registered under the requirement, older than the setting: nothing else."""
    now = datetime.now(UTC)
    store = AccountStore(get_settings().storage)

    def account(name: str, days_old: float) -> str:
        email = unique(name)
        store.create(
            email, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", now=now - timedelta(days=days_old)
        )
        return email

    abandoned, young, verified, ancient, moving, disabled = (
        account(name, days)
        for name, days in [
            ("abandoned", 8),
            ("young", 6),
            ("verified", 8),
            ("ancient", 40),
            ("moving", 8),
            ("disabled", 8),
        ]
    )
    abandoned_id = user_id_of(abandoned)
    seed(
        [{"PartitionKey": partition_for_email(abandoned), "RowKey": mfa_row_key(abandoned_id), "Secret": "x"}]
    )
    settings = get_settings()
    OneTimeCodes(settings.storage, settings.tokens.keys, settings.mail.code_lifetime).issue(
        abandoned, CodePurpose.VERIFY, user_id=abandoned_id, address=abandoned
    )
    changes: list[tuple[str, dict[str, Any]]] = [
        (verified, {"EmailVerified": True}),
        (moving, {"MovingTo": unique("new")}),
    ]
    for email, change in changes:
        merge(login_key(email), **change)
        merge((partition_for_email(email), user_row_key(user_id_of(email))), **change)
    disabled_account = store.account(user_id_of(disabled))
    assert disabled_account is not None
    store.set_disabled(disabled_account, True)
    store.import_legacy("Custom:legacy1", unique("legacy"), "$legacy$hash", now - timedelta(days=8))
    everything = row_keys(app_env)

    # Off: no account is ever deleted.
    assert "unverified_accounts" not in run_cleanup(get_settings(), now=now).deleted
    # On: the first run notes since when (here, 30 days ago); then accounts registered since are judged.
    app_env.set(
        AUTH_REQUIRE_VERIFIED_EMAIL="true",
        AUTH_MAIL_SMTP_HOST="127.0.0.1",
        AUTH_MAIL_FROM="no-reply@example.com",
        AzureWebJobsStorage="UseDevelopmentStorage=true",
    )
    run_cleanup(get_settings(), now=now - timedelta(days=30))
    report = run_cleanup(get_settings(), now=now)

    assert report.deleted["unverified_accounts"] == 1
    owned = {login_key(abandoned), (partition_for_email(abandoned), user_row_key(abandoned_id))}
    owned |= {(partition_for_email(abandoned), mfa_row_key(abandoned_id))}
    owned |= {k for k in everything if k[1].startswith("code:") and k[0] == partition_for_email(abandoned)}
    assert len(owned) == 4, "login, account, second factor and code rows"
    assert row_keys(app_env) == everything - owned
    assert store.credentials(abandoned) is None, "the email can register again"

    app_env.set(AUTH_UNVERIFIED_MAX_DAYS="5")
    assert run_cleanup(get_settings(), now=now).deleted["unverified_accounts"] == 1
    assert store.credentials(young) is None
    assert store.credentials(ancient) is not None, "registered before verification was required"

    # Off forgets since when: turned on again, only accounts registered from then on are ever judged.
    app_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="false")
    run_cleanup(get_settings(), now=now)
    app_env.set(AUTH_REQUIRE_VERIFIED_EMAIL="true", AUTH_UNVERIFIED_MAX_DAYS="1")
    assert "unverified_accounts" not in run_cleanup(get_settings(), now=now + timedelta(days=2)).deleted
    assert store.credentials(ancient) is not None


def test_unverified_max_days_is_parsed_and_bounded() -> None:
    """AUTH_UNVERIFIED_MAX_DAYS: 7 days by default, 1 to 3650 taken, anything else refused by name."""
    base = {"AUTH_SIGNING_KEY": "ab" * 32, "ACCOUNTS_STORAGE_CONNECTION": "UseDevelopmentStorage=true"}
    assert load_settings(base).cleanup.unverified_max_age == timedelta(days=7)
    for days in (1, 3650):
        parsed = load_settings(base | {"AUTH_UNVERIFIED_MAX_DAYS": str(days)})
        assert parsed.cleanup.unverified_max_age == timedelta(days=days)
    for bad in ("0", "3651", "a week"):
        with pytest.raises(SettingError) as refused:
            load_settings(base | {"AUTH_UNVERIFIED_MAX_DAYS": bad})
        assert refused.value.setting == "AUTH_UNVERIFIED_MAX_DAYS"


def test_a_race_with_another_instance_deletes_no_live_row(app_env: AppEnvironment, tmp_path: Path) -> None:
    """Failing logins and sign-ups on a second instance while cleanups run: each account and lock survives."""
    app_env.set(
        AUTH_RATE_LIMIT_REGISTER="1000/2",
        AUTH_RATE_LIMIT_LOGIN="1000/2",
        AUTH_LOCKOUT_BASE_SECONDS="600",
        AUTH_LOCKOUT_MAX_SECONDS="600",
    )
    settings = get_settings()
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    lockers = [unique("locker") for _ in range(6)]
    claimers, newcomers, bystanders = (
        [unique("claimer") for _ in range(5)],
        [unique("new") for _ in range(3)],
        [],
    )
    bystanders = [unique("bystander") for _ in range(20)]
    # Dead failure records (an old lock, an old window) on the emails that the other instance is about to use.
    seed(
        [
            placeholder(email, locked_until=long_ago, window_start=long_ago, failures=7)
            for email in lockers + claimers + bystanders
        ]
    )
    host = start_local_host(tmp_path, dict(app_env.values))
    statuses: list[int] = []

    def post(route: str, email: str, password: str) -> int:
        body = {"email": email, "password": password}
        status = requests.post(f"{host.base_url}/api/{route}", json=body, timeout=60).status_code
        statuses.append(status)
        return status

    def lock(email: str) -> None:
        for _ in range(6):
            post("login", email, WRONG)

    def register(email: str) -> int:
        for _ in range(5):  # a claim that lost its placeholder to the cleanup is retried, as a client would
            status = post("register", email, PASSWORD)
            if status not in (409, 503):
                return status
        return status

    stop = threading.Event()
    reports: list[sweeper.CleanupReport] = []

    def clean() -> None:
        while not stop.is_set():
            reports.append(run_cleanup(settings))
            time.sleep(0.02)

    try:
        with ThreadPoolExecutor(6) as pool:
            cleaner = pool.submit(clean)
            locking = [pool.submit(lock, email) for email in lockers]
            registering = [pool.submit(register, email) for email in claimers + newcomers]
            for future in locking:
                future.result()
            registered = [future.result() for future in registering]
            stop.set()
            cleaner.result()

        assert registered == [201] * len(claimers + newcomers)
        for email in claimers + newcomers:
            assert post("login", email, PASSWORD) == 200, "the account survived"
        for email in lockers:
            assert post("login", email, WRONG) == 429, "the lock survived"
    finally:
        host.stop()
    assert 500 not in statuses
    assert len(reports) >= 2
    assert not keys_of(
        placeholder(e, locked_until=long_ago, window_start=long_ago) for e in bystanders
    ) & row_keys(app_env), "the cleanup was at work: the untouched dead records went"


def test_stale_failures_go_for_accounts_and_unknown_emails_alike(app_env: AppEnvironment) -> None:
    """An hour after the last lock, one more failure locks neither a known nor an unknown email."""
    from datetime import UTC, datetime

    from shared.errors import TooManyAttempts

    app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
    known, unknown = unique("known"), unique("unknown")
    account_service().register(known, "correct horse battery")
    for email in (known, unknown):
        for _ in range(2):
            fail_login(email)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    for email in (known, unknown):
        merge(login_key(email), FailureWindowStart=long_ago)
    report = run_cleanup(get_settings())
    assert report.deleted["failure_records"] == 1
    assert report.deleted["placeholders"] == 1
    for email in (known, unknown):
        fail_login(email)  # the first of a new count on both, not the third of the old one
        fail_login(email)
        with pytest.raises((InvalidCredentials, TooManyAttempts)) as third:
            log_in(account_service(), email, WRONG)
        assert isinstance(third.value, InvalidCredentials), f"{email} locked one failure early"

"""``make soak``: mixed traffic through the local host while storage restarts, then a full check.

    python -m tools.bench.soak [--seconds 180] [--clients 4]

Clients register, log in and call ``/api/me`` over loopback for a bounded time;
halfway through, Azurite is stopped and started again. Afterwards every
account that got 201 must log in, no email whose registration got anything
else may have an account, and no request may have got a 500.

The host runs the ``cleanup`` timer every 10 seconds, on a table that starts
with a backlog of dead rows, as one that ran a day without the cleanup would
hold: yesterday's counters (one per address and action, as many as the
clients' own), failure records from over an hour ago and expired codes. Apart
from the accounts registered, the table must not grow: the counters the
traffic writes take the place of the dead ones the cleanup deletes (see
:meth:`SoakReport.table_flat`).

The per-address limits are on, at their defaults: the host trusts one proxy
(``AUTH_TRUSTED_PROXY_COUNT=1``) and each client sends ``X-Forwarded-For`` as
that proxy would, from a pool of addresses of its own, so that the counters
are created, updated and raced over like those of many users.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from shared.accounts.store import email_row_key, partition_for_email
from shared.settings import CLEANUP_SCHEDULE_SETTING
from tools.bench.app import app_environment
from tools.devhost import host as devhost
from tools.emulators.azurite import Azurite, free_port

PASSWORD = "correct horse battery soak"  # noqa: S105 - the soak accounts' password
#: Under the default limits (30 registrations and 100 logins per 5 minutes per address) at soak rates.
ADDRESSES_PER_CLIENT = 200
CHECK_CLIENT = 255
TABLE = "Soak"
#: The cleanup's schedule in the soak (NCRONTAB with seconds): every 10 seconds, instead of hourly.
CLEANUP_SCHEDULE = "*/10 * * * * *"
#: What the traffic counts per client address (``/api/me`` is not counted).
COUNTED_ACTIONS = ("register", "login")
#: Dead failure records, and as many expired codes, in the backlog the table starts with.
BACKLOG_RECORDS = 200
#: How many more rows than at the start, accounts apart, the table may hold at the end: none. The
#: traffic's counters are at most one per address and action, as many as the backlog's dead ones; its
#: logins use right passwords (no failure records) and it sends no mail (no codes). More rows means
#: the cleanup is not keeping up.
TABLE_TOLERANCE = 0


@dataclass(frozen=True)
class TableCensus:
    """The table's rows by kind (the cleanup's own state row apart)."""

    #: Login rows of accounts, account rows, second-factor rows, aliases: what the service is for.
    accounts: int = 0
    counters: int = 0
    failure_records: int = 0
    codes: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.accounts + self.kept_for_itself

    @property
    def kept_for_itself(self) -> int:
        """The rows the service keeps for its own use, which the cleanup bounds."""
        return self.counters + self.failure_records + self.codes + self.other

    def describe(self) -> str:
        return (
            f"{self.total} ({self.accounts} of accounts, {self.counters} counters, "
            f"{self.failure_records} failure records, {self.codes} codes, {self.other} other)"
        )


@dataclass
class SoakReport:
    """What the run saw, and what the check after it found."""

    statuses: Counter[str] = field(default_factory=Counter)
    registered: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    restarts: int = 0
    unreachable_accounts: list[str] = field(default_factory=list)
    phantom_accounts: list[str] = field(default_factory=list)
    attempt_counters: int = 0
    table_at_start: TableCensus = field(default_factory=TableCensus)
    table_at_end: TableCensus = field(default_factory=TableCensus)
    #: Rows of the backlog still there at the end.
    backlog_left: int = 0
    #: Runs of the host's cleanup that reached their end.
    cleanup_runs: int = 0
    #: The end count was taken again after the cleanup's next run (a run was under way at the end).
    waited_for_cleanup: bool = False

    @property
    def server_errors(self) -> int:
        return sum(count for key, count in self.statuses.items() if key.endswith(" 500"))

    @property
    def table_flat(self) -> bool:
        """The cleanup ran, and the table grew by no more than its accounts (:data:`TABLE_TOLERANCE`)."""
        grown = self.table_at_end.kept_for_itself - self.table_at_start.kept_for_itself
        return self.cleanup_runs > 0 and grown <= TABLE_TOLERANCE

    @property
    def ok(self) -> bool:
        problems = self.server_errors or self.unreachable_accounts or self.phantom_accounts
        return not problems and self.table_flat

    def summary(self) -> str:
        lines = [f"requests: {sum(self.statuses.values())}, storage restarts: {self.restarts}"]
        lines += [f"  {key}: {count}" for key, count in sorted(self.statuses.items())]
        lines.append(
            f"accounts registered (201): {len(self.registered)}; registrations refused: {len(self.refused)}"
        )
        lines.append(f"201 accounts that cannot log in: {len(self.unreachable_accounts)}")
        lines.append(f"refused registrations that exist anyway: {len(self.phantom_accounts)}")
        lines.append(f"per-address attempt counters in the table: {self.attempt_counters}")
        lines.append(f"table rows at start: {self.table_at_start.describe()}")
        waited = " (after the cleanup's next run)" if self.waited_for_cleanup else ""
        lines.append(f"table rows at end{waited}: {self.table_at_end.describe()}")
        lines.append(
            f"rows beside accounts: {self.table_at_start.kept_for_itself} at start, "
            f"{self.table_at_end.kept_for_itself} at end (at most {TABLE_TOLERANCE} more allowed); "
            f"backlog rows left: {self.backlog_left}"
        )
        lines.append(f"complete runs of the host's cleanup: {self.cleanup_runs}")
        lines.append(f"500 responses: {self.server_errors}")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


class _Client:
    """One keep-alive connection, speaking for ``ADDRESSES_PER_CLIENT`` users behind a proxy."""

    def __init__(self, port: int, number: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        # 198.18.0.0/15 is for benchmarks (RFC 2544); each client has addresses of its own.
        self.addresses = [f"198.18.{number}.{host}" for host in range(1, ADDRESSES_PER_CLIENT + 1)]
        self.rng = random.Random(number)  # noqa: S311 - load shape, not a secret

    def close(self) -> None:
        self.connection.close()

    def call(self, method: str, route: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "X-Forwarded-For": self.rng.choice(self.addresses)}
        if token:
            headers["X-ZUMO-AUTH"] = token
        payload = json.dumps(body).encode() if body is not None else None
        try:
            self.connection.request(method, f"/api/{route}", body=payload, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, None
        return response.status, json.loads(data) if data else None


class _Traffic:
    """The clients' loop and what they saw."""

    def __init__(self, port: int, seconds: float, report: SoakReport) -> None:
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.report = report
        self.lock = threading.Lock()
        self.tokens: list[str] = []

    def client(self, number: int) -> None:
        client = _Client(self.port, number)
        rng = client.rng
        while time.monotonic() < self.deadline:
            with self.lock:
                known = sorted(self.report.registered)
            choice = rng.random()
            if choice < 0.4 or not known:
                kind, status = "register", self._register(client)
            elif choice < 0.8:
                kind, status = "login", self._login(client, rng.choice(known))
            else:
                with self.lock:
                    token = rng.choice(self.tokens) if self.tokens else None
                kind, status = "me", client.call("GET", "me", token=token)[0]
            with self.lock:
                self.report.statuses[f"{kind} {status}"] += 1
        client.close()

    def _register(self, client: _Client) -> int:
        email = f"soak{secrets.token_hex(6)}@example.com"
        status, _ = client.call("POST", "register", {"email": email, "password": PASSWORD})
        with self.lock:
            (self.report.registered if status == 201 else self.report.refused).add(email)
        return status

    def _login(self, client: _Client, email: str) -> int:
        status, body = client.call("POST", "login", {"email": email, "password": PASSWORD})
        if status == 200 and body:
            with self.lock:
                self.tokens.append(body["token"])
        return status


def _check(report: SoakReport, port: int, connection_string: str) -> None:
    """Every 201 account logs in; no refused registration left an account behind."""
    check = _Client(port, CHECK_CLIENT)
    for email in sorted(report.registered):
        if check.call("POST", "login", {"email": email, "password": PASSWORD})[0] != 200:
            report.unreachable_accounts.append(email)
    check.close()
    with TableClient.from_connection_string(connection_string, TABLE) as table:
        for email in sorted(report.refused):
            try:
                row = table.get_entity(partition_for_email(email), email_row_key(email))
            except ResourceNotFoundError:
                continue  # no account, as it should be
            if "UserId" in row:
                report.phantom_accounts.append(email)
        counters = table.query_entities("PartitionKey ge 'rate-' and PartitionKey lt 'rate.'")
        report.attempt_counters = sum(1 for _ in counters)


def take_census(table: TableClient) -> TableCensus:
    """Count the table's rows by kind."""
    tally: Counter[str] = Counter()
    for row in table.list_entities(select=["PartitionKey", "RowKey", "UserId"]):
        partition, key = str(row["PartitionKey"]), str(row["RowKey"])
        if partition == "cleanup":
            continue  # the cleanup's own state row
        if partition.startswith("rate-"):
            tally["counters"] += 1
        elif key.startswith("email:"):
            tally["accounts" if row.get("UserId") else "failure_records"] += 1
        elif key.startswith("code:"):
            tally["codes"] += 1
        elif key.startswith(("user:", "mfa:")) or partition.startswith("alias-"):
            tally["accounts"] += 1
        else:
            tally["other"] += 1
    return TableCensus(**tally)


def seed_backlog(table: TableClient, addresses: int) -> set[tuple[str, str]]:
    """Write the dead rows a day without the cleanup leaves behind; return their keys.

    A counter for each of ``addresses`` and each counted action, from yesterday;
    :data:`BACKLOG_RECORDS` failure records of emails whose last failure was
    two hours ago; as many codes that expired an hour ago.
    """
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for action, _ in itertools.product(COUNTED_ACTIONS, range(addresses)):
        digest = secrets.token_hex(16)
        window = {"WindowStart": now - timedelta(days=1), "Attempts": 7, "PreviousAttempts": 3}
        rows.append({"PartitionKey": "rate-" + digest[-2:], "RowKey": f"rate:{action}:{digest}", **window})
    for _ in range(BACKLOG_RECORDS):
        failed, coded = (f"gone{secrets.token_hex(6)}@example.com" for _ in range(2))
        failures = {"FailedLogins": 3, "FailureWindowCount": 3}
        past = {"LockedUntil": now - timedelta(hours=2), "FailureWindowStart": now - timedelta(hours=2)}
        rows.append(
            {"PartitionKey": partition_for_email(failed), "RowKey": email_row_key(failed), **failures, **past}
        )
        code_key = "code:reset:" + email_row_key(coded).removeprefix("email:")
        expired = {"UserId": "custom:gone", "Address": coded, "Digest": "0" * 64, "WrongTries": 0}
        expired |= {"IssuedAt": now - timedelta(hours=2), "ExpiresAt": now - timedelta(hours=1)}
        rows.append({"PartitionKey": partition_for_email(coded), "RowKey": code_key, **expired})
    with contextlib.suppress(ResourceExistsError):
        table.create_table()
    rows.sort(key=lambda row: str(row["PartitionKey"]))
    for _, group in itertools.groupby(rows, key=lambda row: str(row["PartitionKey"])):
        batch = list(group)
        for start in range(0, len(batch), 100):  # a transaction takes 100 rows of one partition
            table.submit_transaction([("create", row) for row in batch[start : start + 100]])
    return {(str(row["PartitionKey"]), str(row["RowKey"])) for row in rows}


def completed_cleanups(host_log: Path) -> int:
    """How many runs of the host's cleanup have reached their end, by its log."""
    lines = host_log.read_text("utf-8", "replace").splitlines()
    return sum("event=cleanup_finished" in line and " complete=true" in line for line in lines)


def _end_census(report: SoakReport, table: TableClient, host_log: Path) -> None:
    """Count the table as the traffic ends; if it is not flat yet, again after the cleanup's next run.

    A run may be under way (or cut short by the storage restart) as the
    traffic ends: waiting for the next run, at most a minute, keeps a short
    soak from failing on timing alone.
    """
    report.table_at_end = take_census(table)
    runs, deadline = completed_cleanups(host_log), time.monotonic() + 60
    while not report.table_flat and time.monotonic() < deadline:
        time.sleep(0.5)
        if completed_cleanups(host_log) > runs:
            report.table_at_end = take_census(table)
            report.waited_for_cleanup = True
            break
    report.cleanup_runs = completed_cleanups(host_log)


def run_soak(seconds: float, clients: int = 4, *, restart_pause: float = 2.0) -> SoakReport:
    """Run the soak for ``seconds`` with ``clients`` concurrent clients; check; return the report."""
    report = SoakReport()
    with tempfile.TemporaryDirectory() as folder, Azurite(location=Path(folder) / "azurite") as azurite:
        environment = app_environment(
            azurite.connection_string,
            TABLE,
            {"AUTH_TRUSTED_PROXY_COUNT": "1", CLEANUP_SCHEDULE_SETTING: CLEANUP_SCHEDULE},
        )
        with TableClient.from_connection_string(azurite.connection_string, TABLE) as table:
            backlog = seed_backlog(table, clients * ADDRESSES_PER_CLIENT)
            report.table_at_start = take_census(table)
        print(f"table rows at start: {report.table_at_start.describe()}", flush=True)
        settings = Path(folder) / "local.settings.json"
        settings.write_text("{}")
        port = free_port()
        host_log = Path(folder) / "host.log"
        with host_log.open("wb") as log:  # a file: a pipe read only at the end fills up and blocks the host
            host = devhost.spawn(port, settings, environment, stdout=subprocess.DEVNULL, stderr=log)
        traffic = _Traffic(port, seconds, report)
        threads = [threading.Thread(target=traffic.client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(seconds / 2)
        azurite.stop()
        time.sleep(restart_pause)
        azurite.start()
        report.restarts += 1
        for thread in threads:
            thread.join()
        with TableClient.from_connection_string(azurite.connection_string, TABLE) as table:
            _end_census(report, table, host_log)
            left = table.list_entities(select=["PartitionKey", "RowKey"])
            report.backlog_left = len(backlog & {(str(r["PartitionKey"]), str(r["RowKey"])) for r in left})
        _check(report, port, azurite.connection_string)
        host.terminate()
        host.wait(timeout=10)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=180.0, help="how long the traffic runs (default 180)"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    args = parser.parse_args(argv)
    report = run_soak(args.seconds, args.clients)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

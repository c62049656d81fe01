"""``make soak``: mixed traffic through the local host while storage restarts, then a full check.

    python -m tools.soak [--seconds 180] [--clients 4]

Clients register, log in and call ``/api/me`` over loopback for a bounded time;
halfway through, Azurite is stopped and started again. Afterwards every
account that got 201 must log in, no email whose registration got anything
else may have an account, and no request may have got a 500.

The per-address limits are on, at their defaults: the host trusts one proxy
(``AUTH_TRUSTED_PROXY_COUNT=1``) and each client sends ``X-Forwarded-For`` as
that proxy would, from a pool of addresses of its own, so that the counters
are created, updated and raced over like those of many users.
"""

from __future__ import annotations

import argparse
import http.client
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
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.account_store import email_row_key, partition_for_email
from tools import devhost
from tools.azurite import Azurite, free_port

PASSWORD = "correct horse battery soak"  # noqa: S105 - the soak accounts' password
#: Under the default limits (30 registrations and 100 logins per 5 minutes per address) at soak rates.
ADDRESSES_PER_CLIENT = 200
CHECK_CLIENT = 255


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

    @property
    def server_errors(self) -> int:
        return sum(count for key, count in self.statuses.items() if key.endswith(" 500"))

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.unreachable_accounts or self.phantom_accounts)

    def summary(self) -> str:
        lines = [f"requests: {sum(self.statuses.values())}, storage restarts: {self.restarts}"]
        lines += [f"  {key}: {count}" for key, count in sorted(self.statuses.items())]
        lines.append(
            f"accounts registered (201): {len(self.registered)}; registrations refused: {len(self.refused)}"
        )
        lines.append(f"201 accounts that cannot log in: {len(self.unreachable_accounts)}")
        lines.append(f"refused registrations that exist anyway: {len(self.phantom_accounts)}")
        lines.append(f"per-address attempt counters in the table: {self.attempt_counters}")
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
    with TableClient.from_connection_string(connection_string, "Soak") as table:
        for email in sorted(report.refused):
            try:
                row = table.get_entity(partition_for_email(email), email_row_key(email))
            except ResourceNotFoundError:
                continue  # no account, as it should be
            if "UserId" in row:
                report.phantom_accounts.append(email)
        counters = table.query_entities("PartitionKey ge 'rate-' and PartitionKey lt 'rate.'")
        report.attempt_counters = sum(1 for _ in counters)


def run_soak(seconds: float, clients: int = 4, *, restart_pause: float = 2.0) -> SoakReport:
    """Run the soak for ``seconds`` with ``clients`` concurrent clients; check; return the report."""
    report = SoakReport()
    with tempfile.TemporaryDirectory() as folder, Azurite(location=Path(folder) / "azurite") as azurite:
        environment = devhost.app_environment(
            {
                "AUTH_SIGNING_KEY": secrets.token_hex(32),
                "ACCOUNTS_STORAGE_CONNECTION": azurite.connection_string,
                "ACCOUNTS_TABLE": "Soak",
                "AUTH_TRUSTED_PROXY_COUNT": "1",
            }
        )
        settings = Path(folder) / "local.settings.json"
        settings.write_text("{}")
        port = free_port()
        host = devhost.spawn(
            port, settings, environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
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
        _check(report, port, azurite.connection_string)
        host.terminate()
        host.wait(timeout=10)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.splitlines()[0])
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

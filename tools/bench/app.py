"""What the figures measure through: the local host on its own Azurite, and a thin client for it."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient

from shared.accounts.store import email_row_key, partition_for_email
from tools.bench.measuring import status_kib
from tools.devhost import host as devhost
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port

#: The folder of the Argon2id meter a measured host imports at start-up (``sitecustomize``).
METER_FOLDER = Path(__file__).resolve().parent / "meter"

PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark accounts' password


def app_environment(connection_string: str, table: str, settings: dict[str, str]) -> dict[str, str]:
    """The environment of a function process (the local host, or a child calling the functions).

    A fresh signing key, the accounts table ``table`` on the Azurite of
    ``connection_string``, then ``settings``.
    """
    return devhost.app_environment(
        {
            "AUTH_SIGNING_KEY": secrets.token_hex(32),
            "ACCOUNTS_STORAGE_CONNECTION": connection_string,
            "ACCOUNTS_TABLE": table,
        }
        | settings
    )


def run_script(script: str, arguments: list[str], environment: dict[str, str]) -> str:
    """Run ``script`` in a fresh interpreter at the project's root (where the functions import); its output.

    :raises RuntimeError: the script failed; the end of what it wrote to stderr says why.
    """
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the script failed:\n{result.stderr[-3000:]}")
    return result.stdout


class Client:
    """A thin HTTP/1.1 client on one keep-alive connection.

    The load comes from the same machine, so its own cost counts against the
    server's share of the cores: ``http.client`` spends about a third of what
    ``requests`` does per call. Real clients are mobile SDKs elsewhere.
    """

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, route: str, body: dict[str, Any], *, token: str | None = None, expect: int = 200) -> Any:
        headers = {"Content-Type": "application/json"} | ({"X-ZUMO-AUTH": token} if token else {})
        self.connection.request("POST", f"/api/{route}", body=json.dumps(body).encode(), headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status >= 300 and response.status != expect:
            raise RuntimeError(f"{route} answered {response.status}: {payload!r}")
        return json.loads(payload)

    def get(self, route: str, *, token: str | None = None) -> Any:
        """GET ``/api/<route>``, or ``route`` itself when it starts with ``/``."""
        path = route if route.startswith("/") else f"/api/{route}"
        self.connection.request("GET", path, headers={"X-ZUMO-AUTH": token} if token else {})
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{route} answered {response.status}: {payload!r}")
        return json.loads(payload)

    def close(self) -> None:
        self.connection.close()


class App:
    """The local host on its own Azurite, and a client for it."""

    def __init__(
        self,
        azurite: Azurite,
        folder: Path,
        *,
        address_limits: str = "0",
        extra_settings: dict[str, str] | None = None,
        cpus: set[int] | None = None,
        argon2_meter: bool = False,
    ) -> None:
        """``cpus``, when given, confines the host process (every thread of it) to those CPUs.

        With ``argon2_meter``, the host times its own Argon2id work (:mod:`tools.bench.meter`), read with
        :meth:`argon2_cpu`.
        """
        self.table_name = "Bench" + secrets.token_hex(4)
        self.environment = app_environment(
            azurite.connection_string,
            self.table_name,
            {
                "PYTHON_THREADPOOL_THREAD_COUNT": "8",
                # All load comes from one loopback address: limits off, or too high to refuse (but counted).
                "AUTH_RATE_LIMIT_REGISTER": address_limits,
                "AUTH_RATE_LIMIT_LOGIN": address_limits,
                "AUTH_RATE_LIMIT_MAIL": address_limits,
                "AUTH_ENCRYPTION_KEY": secrets.token_hex(32),
            }
            | (extra_settings or {}),
        )
        self.meter_file: Path | None = None
        if argon2_meter:
            self.meter_file = folder / "argon2-meter.txt"
            self.environment["BENCH_ARGON2_METER"] = str(self.meter_file)
            self.environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(METER_FOLDER), self.environment.get("PYTHONPATH")])
            )
        settings = folder / "local.settings.json"
        settings.write_text(json.dumps({"Values": {}}))
        self.port = free_port()
        self.process = devhost.spawn(
            self.port,
            settings,
            self.environment,
            cpus=cpus,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = Client(self.port)
        self.azurite_pid = azurite.pid
        self.table = TableClient.from_connection_string(azurite.connection_string, self.table_name)

    def register(self, email: str) -> Any:
        return self.client.post("register", {"email": email, "password": PASSWORD})

    def login(self, email: str, client: Client | None = None) -> Any:
        return (client or self.client).post("login", {"email": email, "password": PASSWORD})

    def argon2_cpu(self) -> tuple[float, int]:
        """The host's CPU seconds in Argon2id so far, and how many hashes and verifications took them.

        Asks the host (``SIGUSR1``) and waits for its answer in the meter's file.
        """
        if self.meter_file is None:
            raise RuntimeError("this host was started without the Argon2id meter")
        self.meter_file.unlink(missing_ok=True)
        os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not self.meter_file.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the host did not report its Argon2id time")
            time.sleep(0.01)
        seconds, count = self.meter_file.read_text(encoding="utf-8").split()
        return float(seconds), int(count)

    def memory_kib(self, field: str) -> int:
        return status_kib(self.process.pid, field)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def running_app(
    azurite: Azurite, address_limits: str = "0", extra_settings: dict[str, str] | None = None
) -> Iterator[App]:
    """An :class:`App` in a folder of its own, stopped after."""
    with tempfile.TemporaryDirectory() as folder:
        app = App(azurite, Path(folder), address_limits=address_limits, extra_settings=extra_settings)
        try:
            yield app
        finally:
            app.stop()


def stored_login_hash(app: App) -> str:
    """The stored hash of the bench's login account."""
    entity = app.table.get_entity(
        partition_for_email("login@example.com"), email_row_key("login@example.com")
    )
    return str(entity["PasswordHash"])

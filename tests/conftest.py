"""Fixtures: a real Azurite Table service, isolated tables and settings, the local host."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared import settings, storage
from shared.accounts import service as accounts
from shared.mail import courier
from tools.devhost import host as devhost
from tools.emulators.azurite import Azurite, free_port

#: Every app setting the code reads; tests clear them all so nothing leaks in from the shell.
APP_SETTINGS = (
    "AUTH_SIGNING_KEY",
    "WEBSITE_AUTH_SIGNING_KEY",
    "AUTH_PREVIOUS_SIGNING_KEYS",
    "AUTH_TOKEN_FORMAT",
    "AUTH_TOKEN_ISSUER",
    "AUTH_TOKEN_AUDIENCE",
    "AUTH_TOKEN_LIFETIME_SECONDS",
    "ACCOUNTS_STORAGE_CONNECTION",
    "AzureWebJobsStorage",
    "ACCOUNTS_TABLE",
    "WEBSITE_HOSTNAME",
    "AUTH_PASSWORD_MIN_LENGTH",
    "AUTH_PASSWORD_MAX_LENGTH",
    "AUTH_ARGON2_MEMORY_KIB",
    "AUTH_ARGON2_TIME_COST",
    "AUTH_ARGON2_PARALLELISM",
    "AUTH_PASSWORD_CONTEXT_WORDS",
    "AUTH_LOCKOUT_THRESHOLD",
    "AUTH_LOCKOUT_BASE_SECONDS",
    "AUTH_LOCKOUT_MAX_SECONDS",
    "AUTH_LEGACY_MASTER_KEY",
    "AUTH_LEGACY_MAX_AGE_DAYS",
    "ACCOUNTS_TABLE_ENDPOINT",
    "AUTH_STORAGE_TIMEOUT_SECONDS",
    "AUTH_SESSION_MAX_SECONDS",
    "AUTH_RATE_LIMIT_REGISTER",
    "AUTH_RATE_LIMIT_LOGIN",
    "AUTH_RATE_LIMIT_FAIL_OPEN",
    "AUTH_TRUSTED_PROXY_COUNT",
    "AUTH_RATE_LIMIT_MAIL",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__accountName",
    "AUTH_MAIL_QUEUE",
    "AUTH_MAIL_SMTP_HOST",
    "AUTH_MAIL_SMTP_PORT",
    "AUTH_MAIL_SMTP_SECURITY",
    "AUTH_MAIL_SMTP_USERNAME",
    "AUTH_MAIL_SMTP_PASSWORD",
    "AUTH_MAIL_ACS_ENDPOINT",
    "AUTH_MAIL_FROM",
    "AUTH_APP_NAME",
    "AUTH_MAIL_TEMPLATES",
    "AUTH_MAIL_LIMIT",
    "AUTH_MAIL_DELAY_SECONDS",
    "AUTH_CODE_LIFETIME_SECONDS",
    "AUTH_PUBLIC_BASE_URL",
    "AUTH_APP_LINK_BASE",
    "AUTH_REQUIRE_VERIFIED_EMAIL",
    "AUTH_ENCRYPTION_KEY",
    "AUTH_PREVIOUS_ENCRYPTION_KEYS",
    "AUTH_MFA_ISSUER",
    "AUTH_MFA_CHALLENGE_SECONDS",
    "AUTH_SESSION_IDLE_SECONDS",
    "AUTH_MAX_SESSIONS",
    "AUTH_CLEANUP_SCHEDULE",
    "AUTH_UNVERIFIED_MAX_DAYS",
    "AUTH_TOKEN_ALGORITHM",
    "AUTH_SIGNING_PRIVATE_KEY",
    "AUTH_NEXT_SIGNING_PUBLIC_KEY",
    "AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS",
    "AUTH_ACCEPT_HS256_TOKENS",
    "AUTH_JWKS_MAX_AGE_SECONDS",
    "AUTH_REFRESH_REUSE_SECONDS",
    "AUTH_PASSKEY_RP_ID",
    "AUTH_PASSKEY_RP_NAME",
    "AUTH_PASSKEY_ORIGINS",
    "AUTH_PASSKEY_IOS_APP_IDS",
    "AUTH_PASSKEY_ANDROID_APPS",
    "AUTH_PASSKEY_CHALLENGE_SECONDS",
    "AUTH_MAX_PASSKEYS",
)

pytest_plugins = ["tests.mailtest"]

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text())


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One in-memory Azurite (Table, Queue and Blob services) for the whole run, on free ports."""
    with Azurite(all_services=True) as server:
        yield server


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test alone, keeping data on disk across restarts."""
    server = Azurite(location=tmp_path / "azurite").start()
    yield server
    server.stop()


def unique_table_name() -> str:
    return "T" + secrets.token_hex(8)


@dataclass
class AppEnvironment:
    """The app settings of one test, applied to ``os.environ``."""

    values: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def signing_key(self) -> bytes:
        return bytes.fromhex(self.values["AUTH_SIGNING_KEY"])

    def set(self, **changes: str | None) -> None:
        """Change settings and make the app re-read them, as a restart would."""
        for name, value in changes.items():
            if value is None:
                self.values.pop(name, None)
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.values[name] = value
                self.monkeypatch.setenv(name, value)
        reset_app_caches()

    def table(self) -> TableClient:
        return TableClient.from_connection_string(
            self.values["ACCOUNTS_STORAGE_CONNECTION"], self.values["ACCOUNTS_TABLE"]
        )

    def entities(self) -> list[dict[str, Any]]:
        """Every entity in this test's table, read with the bare SDK (none if no table)."""
        try:
            return list(self.table().list_entities())
        except ResourceNotFoundError:
            return []


def reset_app_caches() -> None:
    settings.reset_settings()
    accounts.reset_services()
    storage.reset_clients()
    storage.reset_queues()
    courier.reset_courier()


def app_settings_for(connection_string: str) -> dict[str, str]:
    """A new app's settings; the defaults, but for per-address limits and the mail delay.

    Every request of the suite comes from one loopback address, so the
    per-address limits are off; the tests of those limits turn them on.
    """
    return {
        "AUTH_SIGNING_KEY": secrets.token_hex(32),
        "ACCOUNTS_STORAGE_CONNECTION": connection_string,
        "ACCOUNTS_TABLE": unique_table_name(),
        "AUTH_RATE_LIMIT_REGISTER": "0",
        "AUTH_RATE_LIMIT_LOGIN": "0",
        "AUTH_ENCRYPTION_KEY": secrets.token_hex(32),
        "AUTH_CLEANUP_SCHEDULE": "0 0 * * * *",
        # Queued mail is visible at once, so tests wait on the mail, not on the random delay.
        "AUTH_MAIL_DELAY_SECONDS": "0",
    }


@pytest.fixture
def app_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnvironment]:
    """Settings for an app on the shared Azurite, with a table of its own."""
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    environment = AppEnvironment(values={}, monkeypatch=monkeypatch)
    environment.set(**app_settings_for(azurite.connection_string))
    yield environment
    reset_app_caches()


def http_request(
    method: str,
    route: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    *,
    token: str | None = None,
    client: str | None = None,
) -> func.HttpRequest:
    """Build the request the Functions host would hand a function's ``main``.

    ``token`` goes in X-ZUMO-AUTH; ``client`` is the X-Forwarded-For value.
    """
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-ZUMO-AUTH"] = token
    if client:
        headers["X-Forwarded-For"] = client
    return func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{route}",
        headers=headers,
        params={},
        route_params={},
        body=raw,
    )


def problem(response: func.HttpResponse) -> dict[str, Any]:
    """The problem body of an error response, after checking its media type."""
    assert response.mimetype == "application/problem+json"
    document: dict[str, Any] = json.loads(response.get_body())
    assert document["status"] == response.status_code
    return document


class LocalHost:
    """``python -m tools.devhost`` as a child process with its own settings file."""

    def __init__(self, settings_file: Path, environment: dict[str, str], *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings_file = settings_file
        self.environment = environment
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    def start(self) -> LocalHost:
        env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS} | self.environment
        # The log goes to a file: a pipe read only at the end fills up and blocks the host.
        self.log_path = self.settings_file.with_name("host.log")
        with self.log_path.open("wb") as log:
            self.process = devhost.spawn(
                self.port, self.settings_file, env, stdout=subprocess.DEVNULL, stderr=log
            )
        return self

    def stop(self) -> str:
        """Stop the host and return what it logged."""
        self.session.close()
        if self.process is None:
            return ""
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None
        return self.log_path.read_text("utf-8", "replace")

    def post(self, route: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", route, body, **kwargs)

    def call(
        self, method: str, route: str, body: Any = None, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send a request, with ``token`` in X-ZUMO-AUTH as the client SDKs send it."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["X-ZUMO-AUTH"] = token
        url = f"{self.base_url}/api/{route}"
        return self.session.request(method, url, json=body, headers=headers, timeout=60, **kwargs)


def start_local_host(
    folder: Path, environment: dict[str, str], *, cors: str = "https://app.example", port: int | None = None
) -> LocalHost:
    """Start the local host on ``port`` (default: a free one) with ``environment`` as its app settings."""
    settings_file = folder / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {}, "Host": {"CORS": cors}}))
    return LocalHost(settings_file, environment, port=port).start()


@pytest.fixture
def local_host(azurite: Azurite, tmp_path: Path) -> Iterator[LocalHost]:
    """The local host serving the app over real HTTP, on the shared Azurite."""
    host = start_local_host(tmp_path, app_settings_for(azurite.connection_string))
    yield host
    host.stop()


@pytest.fixture(scope="module")
def module_host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    """One local host for a whole test module (tests use distinct emails)."""
    host = start_local_host(tmp_path_factory.mktemp("host"), app_settings_for(azurite.connection_string))
    yield host
    host.stop()


@pytest.fixture
def two_hosts(azurite: Azurite, tmp_path: Path) -> Iterator[tuple[LocalHost, LocalHost]]:
    """Two instances of the app over real HTTP on one storage account, as two instances in Azure."""
    yield from two_local_hosts(tmp_path, app_settings_for(azurite.connection_string))


def two_local_hosts(tmp_path: Path, settings: dict[str, str]) -> Iterator[tuple[LocalHost, LocalHost]]:
    """Two local-host instances of the app with ``settings``, each in a folder of its own; stopped after."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = start_local_host(tmp_path / "a", settings), start_local_host(tmp_path / "b", settings)
    yield first, second
    first.stop()
    second.stop()

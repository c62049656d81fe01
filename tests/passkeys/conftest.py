"""Fixtures of the passkey tests: an app with passkeys on, its function folders called as the host does."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import login
import passkey
import passkeys
import passkeys_authentication
import passkeys_authentication_options
import passkeys_registration
import passkeys_registration_options
import register
from shared.settings.passkeys import android_origin
from tests.conftest import AppEnvironment
from tools.devhost.worker import InvocationContext
from tools.software_authenticator import SoftwareAuthenticator

PASSWORD = "correct horse battery"
RP_ID = "auth.example.com"
WEB_ORIGIN = f"https://{RP_ID}"
ANDROID_PACKAGE = "com.example.birdwatch"
ANDROID_FINGERPRINT = bytes(range(32))
IOS_APP_ID = "ABCDE12345.com.example.birdwatch"


def fingerprint_text(fingerprint: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in fingerprint)


def passkey_settings() -> dict[str, str]:
    return {
        "AUTH_PASSKEY_RP_ID": RP_ID,
        "AUTH_PASSKEY_IOS_APP_IDS": IOS_APP_ID,
        # Lower case, as keytool's output is sometimes pasted: the origin and assetlinks.json must not care.
        "AUTH_PASSKEY_ANDROID_APPS": f"{ANDROID_PACKAGE}:{fingerprint_text(ANDROID_FINGERPRINT).lower()}",
    }


ANDROID_ORIGIN = android_origin(ANDROID_FINGERPRINT)


@pytest.fixture
def passkey_env(app_env: AppEnvironment) -> AppEnvironment:
    """``app_env`` with passkeys on for ``auth.example.com``, an iOS app and an Android app."""
    app_env.set(**passkey_settings())
    return app_env


def call(
    function: Any,
    method: str,
    body: Any = None,
    *,
    token: str | None = None,
    route_params: dict[str, str] | None = None,
    client: str | None = None,
) -> func.HttpResponse:
    """Call a function folder's ``main`` with the request the host would build."""
    headers = {"Content-Type": "application/json", "User-Agent": "Birdwatch/2.1 (iPhone)"}
    if token:
        headers["X-ZUMO-AUTH"] = token
    if client:
        headers["X-Forwarded-For"] = client
    request = func.HttpRequest(
        method=method,
        url="http://localhost:7071/api/passkeys",
        headers=headers,
        params={},
        route_params=route_params or {},
        body=b"" if body is None else json.dumps(body).encode(),
    )
    response: func.HttpResponse = function.main(request, InvocationContext("test", str(Path.cwd())))
    return response


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


class Client:
    """An app's calls to the passkey routes, one user at a time."""

    def __init__(self, email: str | None = None) -> None:
        self.email = email or f"pk{secrets.token_hex(5)}@example.com"
        registered = call(register, "POST", {"email": self.email, "password": PASSWORD})
        assert registered.status_code == 201, registered.get_body()
        self.token: str = body_of(registered)["token"]

    def log_in(self) -> str:
        response = call(login, "POST", {"email": self.email, "password": PASSWORD})
        assert response.status_code == 200, response.get_body()
        self.token = body_of(response)["token"]
        return self.token

    def registration_options(self, body: Any = None) -> func.HttpResponse:
        return call(passkeys_registration_options, "POST", body, token=self.token)

    def add(
        self, authenticator: SoftwareAuthenticator, name: str | None = None, **answer: Any
    ) -> func.HttpResponse:
        options = self.registration_options({"password": PASSWORD})
        assert options.status_code == 200, options.get_body()
        body: dict[str, Any] = {"credential": authenticator.create(body_of(options), **answer)}
        if name is not None:
            body["name"] = name
        return call(passkeys_registration, "POST", body, token=self.token)

    def list(self) -> list[dict[str, Any]]:
        response = call(passkeys, "GET", token=self.token)
        assert response.status_code == 200, response.get_body()
        listed: list[dict[str, Any]] = body_of(response)["passkeys"]
        return listed

    def rename(self, passkey_id: str, name: Any) -> func.HttpResponse:
        return call(passkey, "PATCH", {"name": name}, token=self.token, route_params={"id": passkey_id})

    def remove(self, passkey_id: str, body: Any) -> func.HttpResponse:
        return call(passkey, "DELETE", body, token=self.token, route_params={"id": passkey_id})


def authentication_options() -> dict[str, Any]:
    response = call(passkeys_authentication_options, "POST")
    assert response.status_code == 200, response.get_body()
    options: dict[str, Any] = body_of(response)
    return options


def sign_in(credential: Any, client: str | None = None) -> func.HttpResponse:
    return call(passkeys_authentication, "POST", {"credential": credential}, client=client)

"""End to end over real HTTP: the local host serving the functions on a real Azurite."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests

from tests.conftest import LocalHost
from tools.devhost.local_settings import load_local_settings
from tools.devhost.routes import route_pattern

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host

PASSWORD = "correct horse battery"


class TestOverHttp:
    """What a mobile client sees."""

    def test_register_then_login(self, local_host: LocalHost) -> None:
        """A token from /api/login verifies with PyJWT and the configured key."""
        created = local_host.post("register", {"email": "Nia@Example.com", "password": PASSWORD})
        assert created.status_code == 201
        assert created.headers["Content-Type"].startswith("application/json")
        response = local_host.post("login", {"email": "nia@example.com", "password": PASSWORD})
        assert response.status_code == 200
        body = response.json()
        key = bytes.fromhex(local_host.environment["AUTH_SIGNING_KEY"])
        claims = jwt.decode(
            body["authenticationToken"],
            key,
            algorithms=["HS256"],
            audience="urn:microsoft:windows-azure:zumo",
        )
        assert claims["sub"] == body["user"]["userId"] == created.json()["userId"]

    def test_problem_responses_over_http(self, local_host: LocalHost) -> None:
        response = local_host.session.post(f"{local_host.base_url}/api/login", data=b"{", timeout=10)
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_request"

    def test_twenty_concurrent_registrations_of_one_email(self, local_host: LocalHost) -> None:
        """Exactly one wins; the rest get 409; case variants count as the same email."""
        emails = [("Race@Example.com" if i % 2 else "race@example.COM") for i in range(20)]

        def attempt(email: str) -> int:
            with requests.Session() as session:
                response = session.post(
                    f"{local_host.base_url}/api/register",
                    json={"email": email, "password": PASSWORD},
                    timeout=60,
                )
                return response.status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(attempt, emails))
        assert sorted(statuses) == [201] + [409] * 19
        assert (
            local_host.post("login", {"email": "race@example.com", "password": PASSWORD}).status_code == 200
        )

    def test_unknown_route_and_wrong_method_are_404(self, local_host: LocalHost) -> None:
        assert local_host.session.get(f"{local_host.base_url}/api/login", timeout=10).status_code == 404
        assert local_host.post("nothing-here", {}).status_code == 404
        assert local_host.session.post(f"{local_host.base_url}/login", timeout=10).status_code == 404

    def test_cors_as_configured(self, local_host: LocalHost) -> None:
        """Host.CORS from the settings file: preflight answered, allowed origin echoed, others not."""
        preflight = local_host.session.options(
            f"{local_host.base_url}/api/login",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-zumo-auth",
            },
            timeout=10,
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type,x-zumo-auth"
        allowed = local_host.post("login", {}, headers={"Origin": "https://app.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        other = local_host.post("login", {}, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers

    def test_host_logs_hold_no_secrets(self, local_host: LocalHost) -> None:
        token = local_host.post("register", {"email": "ola@example.com", "password": PASSWORD}).json()[
            "token"
        ]
        local_host.post("login", {"email": "ola@example.com", "password": "wrong password!"})
        logged = local_host.stop()
        assert "POST /api/register -> 201" in logged
        assert "login_failed" in logged
        for secret in (PASSWORD, "wrong password!", token, local_host.environment["AUTH_SIGNING_KEY"]):
            assert secret not in logged
        assert "$argon2id$" not in logged


class TestRoutes:
    """Route templates compile the way the Functions host reads them."""

    @pytest.mark.parametrize(
        ("template", "path", "params"),
        [
            ("login", "/api/login", {}),
            ("login", "/api/LOGIN", {}),
            ("orders/{id}", "/api/orders/42", {"id": "42"}),
            ("orders/{id:int}", "/api/orders/42", {"id": "42"}),
            ("orders/{id?}", "/api/orders", {}),
            ("files/{*path}", "/api/files/a/b/c", {"path": "a/b/c"}),
        ],
    )
    def test_matches(self, template: str, path: str, params: dict[str, str]) -> None:
        found = route_pattern("api", template).fullmatch(path)
        assert found is not None
        assert {k: v for k, v in found.groupdict().items() if v is not None} == params

    @pytest.mark.parametrize(("template", "path"), [("login", "/api/login2"), ("orders/{id}", "/api/orders")])
    def test_does_not_match(self, template: str, path: str) -> None:
        assert route_pattern("api", template).fullmatch(path) is None


def test_local_settings_never_override_the_environment(tmp_path: Path) -> None:
    """As func start does: Values fill in what the environment lacks, and only that."""
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {"Values": {"A": "from file", "B": "from file"}, "Host": {"LocalHttpPort": 7100, "CORS": "*"}}
        )
    )
    environ = {"A": "from environment"}
    config = load_local_settings(path, environ)
    assert environ == {"A": "from environment", "B": "from file"}
    assert config.port == 7100
    assert config.cors_origins == ("*",)

"""python -m tools.admin keys new / keys status: the operator side of a rotation, against Azurite."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

import jwks
import register
from tests.conftest import AppEnvironment, http_request
from tests.operations.test_admin import run, run_json


def test_keys_new_prints_a_pair_the_app_accepts(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The private key signs, the public half is published, and both name the same kid."""
    new = run_json(capsys, "keys", "new")
    assert new["algorithm"] == "ES256"
    assert new["privateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    assert new["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    status, out, _ = run(capsys, "keys", "new", "--algorithm", "RS256")
    assert status == 0
    one_line_private = next(line for line in out.splitlines() if "PRIVATE KEY" in line and "\\n" in line)
    app_env.set(AUTH_NEXT_SIGNING_PUBLIC_KEY=new["publicKey"])
    (entry,) = json.loads(jwks.main(http_request("GET", ".well-known/jwks.json")).get_body())["keys"]
    assert entry["kid"] == new["kid"]
    app_env.set(AUTH_TOKEN_ALGORITHM="RS256", AUTH_SIGNING_PRIVATE_KEY=one_line_private.split(": ", 1)[1])
    response = register.main(
        http_request("POST", "register", {"email": "k@example.com", "password": "correct horse battery"})
    )
    assert jwt.get_unverified_header(json.loads(response.get_body())["token"])["alg"] == "RS256"


def test_keys_status_says_what_signs_what_is_published_and_since_when(
    app_env: AppEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    current, following = run_json(capsys, "keys", "new"), run_json(capsys, "keys", "new")
    status: dict[str, Any] = run_json(capsys, "keys", "status")
    assert (status["algorithm"], status["published"]) == ("HS256", [])
    assert "HMAC" in status["signs"]
    app_env.set(
        AUTH_TOKEN_ALGORITHM="ES256",
        AUTH_SIGNING_PRIVATE_KEY=current["privateKey"],
        AUTH_NEXT_SIGNING_PUBLIC_KEY=following["publicKey"],
    )
    before = run_json(capsys, "keys", "status")
    assert [(e["role"], e["kid"], e["signingSince"]) for e in before["published"]] == [
        ("current", current["kid"], "-"),
        ("next", following["kid"], "-"),
    ]
    register.main(
        http_request("POST", "register", {"email": "s@example.com", "password": "correct horse battery"})
    )
    after = run_json(capsys, "keys", "status")
    assert after["signs"] == current["kid"]
    assert after["currentPublicKey"] == current["publicKey"]
    signing, upcoming = after["published"]
    assert signing["signingSince"] != "-"
    assert signing["publishedSince"] != "-"
    assert (upcoming["publishedSince"] != "-", upcoming["signingSince"]) == (True, "-")
    status_code, out, _ = run(capsys, "keys", "status")
    assert status_code == 0
    assert current["kid"] in out
    assert "PRIVATE" not in out

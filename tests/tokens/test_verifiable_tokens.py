"""Tokens other services verify: PyJWT's PyJWKClient and Node's jose against the local host, over HTTP.

Each consumer starts from the discovery document (``issuer``, ``jwks_uri``,
algorithms), fetches the key set, and checks signature, issuer and audience,
as an API in front of this service would. A full key rotation runs through the
same consumers and the service's own gate.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from shared.settings.signing import SigningAlgorithm, generate_private_key, parse_private_key
from tests.conftest import LocalHost, app_settings_for, start_local_host
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port

PASSWORD = "correct horse battery"
AUDIENCE = "api://orders"
JOSE_SCRIPT = Path(__file__).with_name("verify-with-jose.mjs")


def one_line(pem: str) -> str:
    r"""A PEM as a portal keeps it: on one line, with ``\n`` for each newline."""
    return pem.strip().replace("\n", "\\n")


def public_pem(private_pem: str, algorithm: SigningAlgorithm) -> str:
    from shared.settings.signing import public_key_pem

    return public_key_pem(parse_private_key(private_pem, algorithm, setting="test").public.key)


def kid_of(private_pem: str, algorithm: SigningAlgorithm) -> str:
    return parse_private_key(private_pem, algorithm, setting="test").kid


class Rotation:
    """Hosts of one app (one table, one issuer: the same port) started with changing key settings."""

    def __init__(self, azurite: Azurite, folder: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/"
        self.base = app_settings_for(azurite.connection_string) | {
            "AUTH_TOKEN_ISSUER": self.issuer,
            "AUTH_TOKEN_AUDIENCE": AUDIENCE,
            "AUTH_TOKEN_LIFETIME_SECONDS": "900",
        }
        self.folder = folder
        self.host: LocalHost | None = None
        self.runs = 0

    def start(self, **settings: str) -> LocalHost:
        """Stop the running host (if any) and start one with ``settings`` on the same port."""
        self.stop()
        self.runs += 1
        folder = self.folder / f"run{self.runs}"
        folder.mkdir()
        self.host = start_local_host(folder, self.base | settings, port=self.port)
        return self.host

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None


@pytest.fixture
def rotation(azurite: Azurite, tmp_path: Path) -> Iterator[Rotation]:
    app = Rotation(azurite, tmp_path)
    yield app
    app.stop()


def log_in(host: LocalHost, email: str) -> str:
    response = host.post("login", {"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def register(host: LocalHost) -> tuple[str, str]:
    email = f"k{secrets.token_hex(5)}@example.com"
    response = host.post("register", {"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email, response.json()["token"]


def discovery(host: LocalHost) -> dict[str, Any]:
    response = requests.get(f"{host.base_url}/.well-known/openid-configuration", timeout=30)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def verify_with_pyjwt(host: LocalHost, token: str) -> dict[str, Any] | str:
    """PyJWT as an API would use it: the discovery document, then PyJWKClient. The claims, or the error."""
    document = discovery(host)
    client = jwt.PyJWKClient(document["jwks_uri"], cache_keys=False, cache_jwk_set=False)
    try:
        key = client.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=document["id_token_signing_alg_values_supported"],
            audience=AUDIENCE,
            issuer=document["issuer"],
        )
    except jwt.PyJWTError as error:
        return type(error).__name__
    return claims


def verify_with_jose(host: LocalHost, tokens: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Node's jose: createRemoteJWKSet from discovery's jwks_uri, jwtVerify with issuer and audience."""
    request = {
        "discovery": f"{host.base_url}/.well-known/openid-configuration",
        "audience": AUDIENCE,
        "tokens": tokens,
    }
    finished = subprocess.run(
        ["node", str(JOSE_SCRIPT)],  # noqa: S607 - node from the PATH, as make test needs it anyway
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=True,
    )
    answer = json.loads(finished.stdout)
    return answer["discovery"], answer["results"]


@pytest.mark.parametrize("algorithm", [SigningAlgorithm.ES256, SigningAlgorithm.RS256])
def test_a_login_token_verifies_with_pyjwt_and_jose(rotation: Rotation, algorithm: SigningAlgorithm) -> None:
    """Both consumers find the key through discovery and accept the token; the header names the key."""
    private = generate_private_key(algorithm)
    host = rotation.start(AUTH_TOKEN_ALGORITHM=str(algorithm), AUTH_SIGNING_PRIVATE_KEY=one_line(private))
    email, _ = register(host)
    token = log_in(host, email)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": str(algorithm), "typ": "JWT", "kid": kid_of(private, algorithm)}

    document = discovery(host)
    assert document["issuer"] == rotation.issuer
    assert document["jwks_uri"] == f"{rotation.issuer}.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == [str(algorithm)]
    assert document["subject_types_supported"] == ["public"]
    assert not {"authorization_endpoint", "token_endpoint", "userinfo_endpoint"} & document.keys()

    key_set = requests.get(document["jwks_uri"], timeout=30)
    assert key_set.headers["Cache-Control"] == "public, max-age=600"
    (entry,) = key_set.json()["keys"]
    assert entry["kid"] == header["kid"]
    assert entry["alg"] == str(algorithm)
    assert entry["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & entry.keys()

    claims = verify_with_pyjwt(host, token)
    assert isinstance(claims, dict)
    assert claims["iss"] == rotation.issuer
    assert claims["aud"] == AUDIENCE
    jose_discovery, (result,) = verify_with_jose(host, [token])
    assert jose_discovery == document
    assert result["ok"], result
    assert result["payload"]["sub"] == claims["sub"]
    assert result["header"]["kid"] == header["kid"]
    assert host.call("GET", "me", token=token).status_code == 200


def test_a_token_for_another_audience_is_refused_by_both_consumers(rotation: Rotation) -> None:
    """Audience is checked: a token of this service is not one for an API that expects another."""
    private = generate_private_key(SigningAlgorithm.ES256)
    host = rotation.start(
        AUTH_TOKEN_ALGORITHM="ES256", AUTH_SIGNING_PRIVATE_KEY=private, AUTH_TOKEN_AUDIENCE="api://billing"
    )
    email, _ = register(host)
    token = log_in(host, email)
    assert verify_with_pyjwt(host, token) == "InvalidAudienceError"
    _, (result,) = verify_with_jose(host, [token])
    assert result == {"ok": False, "code": "ERR_JWT_CLAIM_VALIDATION_FAILED"}


def test_a_full_rotation_keeps_every_live_token_working(rotation: Rotation, tmp_path: Path) -> None:
    """Next key published, instances promoted one by one, old tokens verify, the retired key's are refused."""
    old = generate_private_key(SigningAlgorithm.ES256)
    new = generate_private_key(SigningAlgorithm.ES256)
    old_public, new_public = public_pem(old, SigningAlgorithm.ES256), public_pem(new, SigningAlgorithm.ES256)
    es256 = {"AUTH_TOKEN_ALGORITHM": "ES256"}

    host = rotation.start(**es256, AUTH_SIGNING_PRIVATE_KEY=old)
    email, _ = register(host)
    old_token = log_in(host, email)

    # 1. Publish the next key: nothing signs with it yet, every consumer can fetch it.
    host = rotation.start(
        **es256, AUTH_SIGNING_PRIVATE_KEY=old, AUTH_NEXT_SIGNING_PUBLIC_KEY=one_line(new_public)
    )
    kids = [entry["kid"] for entry in requests.get(discovery(host)["jwks_uri"], timeout=30).json()["keys"]]
    assert kids == [kid_of(old, SigningAlgorithm.ES256), kid_of(new, SigningAlgorithm.ES256)]
    assert jwt.get_unverified_header(log_in(host, email))["kid"] == kids[0]

    # 2. Promote one instance: while the others still sign with the old key, each accepts the other's tokens.
    (tmp_path / "promoted").mkdir()
    promoted = start_local_host(
        tmp_path / "promoted",
        rotation.base
        | es256
        | {"AUTH_SIGNING_PRIVATE_KEY": new, "AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS": old_public},
    )
    try:
        promoted_token = log_in(promoted, email)
        assert jwt.get_unverified_header(promoted_token)["kid"] == kids[1]
        assert host.call("GET", "me", token=promoted_token).status_code == 200, "the next key passes the gate"
        assert promoted.call("GET", "me", token=old_token).status_code == 200
    finally:
        promoted.stop()

    # 3. Promoted everywhere: the new key signs, the old one stays published until its tokens expire.
    host = rotation.start(**es256, AUTH_SIGNING_PRIVATE_KEY=new, AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS=old_public)
    new_token = log_in(host, email)
    assert jwt.get_unverified_header(new_token)["kid"] == kids[1]
    assert [e["kid"] for e in requests.get(discovery(host)["jwks_uri"], timeout=30).json()["keys"]] == kids[
        ::-1
    ]
    for token in (old_token, new_token):
        assert host.call("GET", "me", token=token).status_code == 200
        assert isinstance(verify_with_pyjwt(host, token), dict)
    _, results = verify_with_jose(host, [old_token, new_token])
    assert [result["ok"] for result in results] == [True, True]

    # 4. Retire the old key: its tokens are refused by the gate and by both consumers.
    host = rotation.start(**es256, AUTH_SIGNING_PRIVATE_KEY=new)
    assert [e["kid"] for e in requests.get(discovery(host)["jwks_uri"], timeout=30).json()["keys"]] == kids[
        1:
    ]
    refused = host.call("GET", "me", token=old_token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    assert verify_with_pyjwt(host, old_token) == "PyJWKClientError"
    assert isinstance(verify_with_pyjwt(host, new_token), dict)
    _, results = verify_with_jose(host, [old_token, new_token])
    assert results[0] == {"ok": False, "code": "ERR_JWKS_NO_MATCHING_KEY"}
    assert results[1]["ok"]
    assert host.call("GET", "me", token=new_token).status_code == 200

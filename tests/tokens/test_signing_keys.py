"""Asymmetric signing keys: parsing, naming, publishing, the switch from HS256, and failing closed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import jwks
import login
import me
import openid_configuration
import register
from shared.errors import SettingError
from shared.settings.signing import (
    SigningAlgorithm,
    generate_private_key,
    parse_private_key,
    parse_public_keys,
    private_key_pem,
    public_key_pem,
    thumbprint,
)
from tests.conftest import AppEnvironment, http_request, problem

PASSWORD = "correct horse battery"


def public_of(private_pem: str) -> str:
    return public_key_pem(serialization.load_pem_private_key(private_pem.encode(), None).public_key())


def hs256_by_hand(claims: dict[str, Any], header: dict[str, Any], key: bytes) -> str:
    """What an attacker would send: HS256 keyed with the published public key (PyJWT refuses to make it)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    return f"{signing_input}.{part(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def body(response: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def registered_token(email: str) -> str:
    response = register.main(http_request("POST", "register", {"email": email, "password": PASSWORD}))
    assert response.status_code == 201, response.get_body()
    token: str = body(response)["token"]
    return token


class TestKeys:
    """Keys are read as portals keep them and named by their RFC 7638 thumbprint."""

    def test_thumbprint_is_rfc_7638s_example(self) -> None:
        """The RSA example key of RFC 7638 section 3.1 has the thumbprint the RFC gives."""
        n = (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
            "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnY"
            "b9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw"
            "0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        )
        assert thumbprint({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256"}) == (
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        )

    def test_kid_is_the_thumbprint_of_the_public_jwk(self) -> None:
        key = parse_private_key(
            generate_private_key(SigningAlgorithm.ES256), SigningAlgorithm.ES256, setting="x"
        )
        members = {name: key.public.jwk[name] for name in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
        expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
        assert key.kid == expected
        assert key.public.jwk == members | {"kid": expected, "alg": "ES256", "use": "sig"}

    def test_escaped_newlines_and_several_public_keys(self) -> None:
        r"""A setting on one line with ``\n``, and two PEM blocks in one setting."""
        first, second = (generate_private_key(SigningAlgorithm.ES256) for _ in range(2))
        pems = [public_of(first), public_of(second)]
        one_line = "".join(pems).replace("\n", "\\n")
        keys = parse_public_keys(one_line, setting="AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS")
        assert [key.kid for key in keys] == [
            parse_private_key(pem, SigningAlgorithm.ES256, setting="x").kid for pem in (first, second)
        ]

    @pytest.mark.parametrize(
        ("make", "algorithm", "problem_text"),
        [
            (lambda: "not a key", SigningAlgorithm.ES256, "is not an unencrypted PEM private key"),
            (
                lambda: generate_private_key(SigningAlgorithm.RS256),
                SigningAlgorithm.ES256,
                "is a key for RS256",
            ),
            (
                lambda: generate_private_key(SigningAlgorithm.ES256),
                SigningAlgorithm.RS256,
                "is a key for ES256",
            ),
            (
                lambda: private_key_pem(ec.generate_private_key(ec.SECP384R1())),
                SigningAlgorithm.ES256,
                "only P-256",
            ),
            (
                lambda: private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - refused
                SigningAlgorithm.RS256,
                "at least 2048",
            ),
        ],
    )
    def test_a_wrong_key_names_the_setting(
        self, make: Any, algorithm: SigningAlgorithm, problem_text: str
    ) -> None:
        with pytest.raises(SettingError) as raised:
            parse_private_key(make(), algorithm, setting="AUTH_SIGNING_PRIVATE_KEY")
        assert raised.value.setting == "AUTH_SIGNING_PRIVATE_KEY"
        assert problem_text in raised.value.problem


class TestPublishing:
    """The key set holds public keys only; under HS256, only a configured next key."""

    def test_hs256_publishes_nothing(self, app_env: AppEnvironment) -> None:
        response = jwks.main(http_request("GET", ".well-known/jwks.json"))
        assert response.status_code == 200
        assert response.mimetype == "application/jwk-set+json"
        assert response.headers["Cache-Control"] == "public, max-age=600"
        assert body(response) == {"keys": []}
        assert app_env.values["AUTH_SIGNING_KEY"] not in response.get_body().decode()

    def test_hs256_publishes_the_next_key_before_it_signs(self, app_env: AppEnvironment) -> None:
        """The first asymmetric key is published while HS256 still signs; the gate accepts its tokens."""
        next_key = generate_private_key(SigningAlgorithm.ES256)
        app_env.set(AUTH_NEXT_SIGNING_PUBLIC_KEY=public_of(next_key), AUTH_JWKS_MAX_AGE_SECONDS="3600")
        response = jwks.main(http_request("GET", ".well-known/jwks.json"))
        (entry,) = body(response)["keys"]
        assert entry["kid"] == parse_private_key(next_key, SigningAlgorithm.ES256, setting="x").kid
        assert set(entry) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        hs256_token = registered_token("pub@example.com")
        assert jwt.get_unverified_header(hs256_token)["alg"] == "HS256", "HS256 still signs"
        # An instance already promoted signs with the next key: this one's gate accepts its tokens.
        app_env.set(AUTH_TOKEN_ALGORITHM="ES256", AUTH_SIGNING_PRIVATE_KEY=next_key)
        es256_token = body(
            login.main(http_request("POST", "login", {"email": "pub@example.com", "password": PASSWORD}))
        )["token"]
        app_env.set(AUTH_TOKEN_ALGORITHM=None, AUTH_SIGNING_PRIVATE_KEY=None)
        assert me.main(http_request("GET", "me", token=es256_token)).status_code == 200

    def test_discovery_names_no_endpoint_that_does_not_exist(self, app_env: AppEnvironment) -> None:
        app_env.set(
            WEBSITE_HOSTNAME="auth.example.net",
            AUTH_TOKEN_ALGORITHM="RS256",
            AUTH_SIGNING_PRIVATE_KEY=generate_private_key(SigningAlgorithm.RS256),
        )
        response = openid_configuration.main(http_request("GET", ".well-known/openid-configuration"))
        assert response.headers["Cache-Control"] == "public, max-age=600"
        document = body(response)
        assert document["issuer"] == "https://auth.example.net/"
        assert document["jwks_uri"] == "https://auth.example.net/.well-known/jwks.json"
        assert document["id_token_signing_alg_values_supported"] == ["RS256"]
        assert document["subject_types_supported"] == ["public"]
        assert not [name for name in document if name.endswith("_endpoint")]


class TestSwitchingFromHs256:
    """Tokens issued before the switch keep working until AUTH_ACCEPT_HS256_TOKENS is turned off."""

    def test_hs256_tokens_pass_until_turned_off(self, app_env: AppEnvironment) -> None:
        old = registered_token("switch@example.com")
        app_env.set(
            AUTH_TOKEN_ALGORITHM="ES256",
            AUTH_SIGNING_PRIVATE_KEY=generate_private_key(SigningAlgorithm.ES256),
        )
        assert me.main(http_request("GET", "me", token=old)).status_code == 200
        new = body(
            login.main(http_request("POST", "login", {"email": "switch@example.com", "password": PASSWORD}))
        )
        assert jwt.get_unverified_header(new["token"])["alg"] == "ES256"
        app_env.set(AUTH_ACCEPT_HS256_TOKENS="false")
        refused = me.main(http_request("GET", "me", token=old))
        assert refused.status_code == 401
        assert problem(refused)["code"] == "invalid_token"
        assert me.main(http_request("GET", "me", token=new["token"])).status_code == 200

    def test_a_token_signed_with_hs256_under_a_public_kid_is_refused(self, app_env: AppEnvironment) -> None:
        """No algorithm confusion: a public key's kid with alg HS256 (keyed with the public key) fails."""
        private = generate_private_key(SigningAlgorithm.ES256)
        app_env.set(AUTH_TOKEN_ALGORITHM="ES256", AUTH_SIGNING_PRIVATE_KEY=private)
        good = body(
            register.main(
                http_request("POST", "register", {"email": "conf@example.com", "password": PASSWORD})
            )
        )
        claims = jwt.decode(good["token"], options={"verify_signature": False})
        kid = jwt.get_unverified_header(good["token"])["kid"]
        header = {"alg": "HS256", "typ": "JWT", "kid": kid}
        forged = hs256_by_hand(claims, header, public_of(private).encode())
        assert me.main(http_request("GET", "me", token=forged)).status_code == 401
        other = ec.generate_private_key(ec.SECP256R1())
        forged_es = jwt.encode(claims, other, algorithm="ES256", headers={"kid": kid})
        assert me.main(http_request("GET", "me", token=forged_es)).status_code == 401

    def test_zumo_format_signs_with_the_key_too(self, app_env: AppEnvironment) -> None:
        private = generate_private_key(SigningAlgorithm.ES256)
        app_env.set(AUTH_TOKEN_FORMAT="zumo", AUTH_TOKEN_ALGORITHM="ES256", AUTH_SIGNING_PRIVATE_KEY=private)
        token = registered_token("zumo@example.com")
        header = jwt.get_unverified_header(token)
        assert header == {
            "alg": "ES256",
            "typ": "JWT",
            "kid": parse_private_key(private, SigningAlgorithm.ES256, setting="x").kid,
        }
        assert "uid" in jwt.decode(token, options={"verify_signature": False})
        assert me.main(http_request("GET", "me", token=token)).status_code == 200


class TestFailingClosed:
    """A bad key: 500 server_misconfigured where tokens are signed, naming the setting; verifying goes on."""

    @pytest.mark.parametrize(
        ("settings", "setting"),
        [
            ({"AUTH_TOKEN_ALGORITHM": "ES256"}, "AUTH_SIGNING_PRIVATE_KEY"),
            (
                {"AUTH_TOKEN_ALGORITHM": "ES256", "AUTH_SIGNING_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----"},
                None,
            ),
            ({"AUTH_TOKEN_ALGORITHM": "RS256", "AUTH_SIGNING_PRIVATE_KEY": "es256"}, None),
            ({"AUTH_NEXT_SIGNING_PUBLIC_KEY": "garbage"}, "AUTH_NEXT_SIGNING_PUBLIC_KEY"),
        ],
    )
    def test_signing_routes_fail_closed(
        self,
        app_env: AppEnvironment,
        caplog: pytest.LogCaptureFixture,
        settings: dict[str, str],
        setting: str | None,
    ) -> None:
        token = registered_token("closed@example.com")
        if settings.get("AUTH_SIGNING_PRIVATE_KEY") == "es256":
            settings = settings | {"AUTH_SIGNING_PRIVATE_KEY": generate_private_key(SigningAlgorithm.ES256)}
        app_env.set(**settings)
        with caplog.at_level(logging.ERROR):
            response = login.main(
                http_request("POST", "login", {"email": "closed@example.com", "password": PASSWORD})
            )
        assert response.status_code == 500
        assert problem(response)["code"] == "server_misconfigured"
        expected = setting or "AUTH_SIGNING_PRIVATE_KEY"
        assert any(f"setting={expected}" in record.getMessage() for record in caplog.records)
        assert "PRIVATE KEY" not in caplog.text
        # Tokens already issued still verify, and the key set still answers.
        assert me.main(http_request("GET", "me", token=token)).status_code == 200
        assert jwks.main(http_request("GET", ".well-known/jwks.json")).status_code == 200

"""Token issuing and verification, in both formats, against the Mobile Services vector."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from shared.errors import InvalidToken
from shared.tokens.access_tokens import (
    MAX_TOKEN_LENGTH,
    ZUMO_ISSUER,
    TokenFormat,
    TokenSettings,
    issue_token,
    key_id,
    verify_token,
    zumo_signing_key,
)
from tests.conftest import VECTORS

ZUMO = VECTORS["zumo_v2_token"]


def appservice_settings(*keys: bytes, **overrides: Any) -> TokenSettings:
    values: dict[str, Any] = {
        "format": TokenFormat.APPSERVICE,
        "keys": keys or (secrets.token_bytes(32),),
        "issuer": "https://myapp.azurewebsites.net/",
        "audience": "https://myapp.azurewebsites.net/",
        "lifetime": timedelta(hours=1),
    }
    return TokenSettings(**(values | overrides))


def zumo_settings(master_key: str = "m" * 32, **overrides: Any) -> TokenSettings:
    values: dict[str, Any] = {
        "format": TokenFormat.ZUMO,
        "keys": (zumo_signing_key(master_key),),
        "issuer": ZUMO_ISSUER,
        "audience": "Custom",
        "lifetime": timedelta(hours=1),
    }
    return TokenSettings(**(values | overrides))


def segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def rejection(settings: TokenSettings, token: str) -> str:
    """Verify a token that must fail and return the logged reason."""
    with pytest.raises(InvalidToken) as refused:
        verify_token(settings, token)
    assert str(refused.value) == "The authentication token is missing or invalid"
    return refused.value.reason


def forge(payload: dict[str, Any], key: bytes, **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers=headers or None)


class TestZumoVector:
    """The Mobile Services JWT v2 vector, byte for byte."""

    def test_issues_the_vector_token_exactly(self) -> None:
        """Same master key, claims and time give the vector's exact bytes."""
        claims = ZUMO["claims"]
        settings = zumo_settings(ZUMO["master_key"], lifetime=timedelta(seconds=100))
        token = issue_token(settings, claims["uid"], now=datetime.fromtimestamp(claims["exp"] - 100, UTC))
        assert token.token == ZUMO["token"]

    def test_header_is_the_mobile_services_header(self) -> None:
        """alg, typ, kid "0" in that order."""
        assert segment(ZUMO["token"], 0) == ZUMO["header"]
        token = issue_token(zumo_settings(), "Custom:abc").token
        header_json = base64.urlsafe_b64decode(token.split(".")[0] + "==")
        assert header_json == b'{"alg":"HS256","typ":"JWT","kid":"0"}'

    def test_vector_token_verifies(self) -> None:
        """The vector verifies with its master key and yields its uid."""
        verified = verify_token(zumo_settings(ZUMO["master_key"]), ZUMO["token"])
        assert verified.user_id == "Custom:abc"
        assert verified.expires_at == datetime.fromtimestamp(1_900_000_000, UTC)

    def test_vector_token_fails_with_another_master_key(self) -> None:
        """A different master key means a different signing key."""
        with pytest.raises(InvalidToken):
            verify_token(zumo_settings("another master key of enough length"), ZUMO["token"])


class TestRoundTrip:
    """Both formats verify what they issue, with the documented claims."""

    def test_appservice_claims(self) -> None:
        """sub, iss, aud, iat, nbf, exp (seconds), ver "3"; kid names the key."""
        settings = appservice_settings()
        now = datetime(2030, 1, 1, tzinfo=UTC)
        issued = issue_token(settings, "custom:abc", now=now)
        claims = segment(issued.token, 1)
        assert claims == {
            "sub": "custom:abc",
            "iss": settings.issuer,
            "aud": settings.audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(now.timestamp()) + 3600,
            "ver": "3",
        }
        assert segment(issued.token, 0) == {"alg": "HS256", "typ": "JWT", "kid": key_id(settings.keys[0])}
        assert issued.expires_at == now + timedelta(hours=1)

    @pytest.mark.parametrize("settings", [appservice_settings(), zumo_settings()], ids=["appservice", "zumo"])
    def test_round_trip(self, settings: TokenSettings) -> None:
        """A fresh token verifies and names its user."""
        issued = issue_token(settings, "custom:someone")
        verified = verify_token(settings, issued.token)
        assert verified.user_id == "custom:someone"
        assert verified.expires_at == issued.expires_at

    def test_pyjwt_verifies_appservice_tokens_with_the_plain_key(self) -> None:
        """What App Service and the Mobile Apps server SDKs do: HS256 with the hex key's bytes."""
        key = secrets.token_bytes(32)
        settings = appservice_settings(key)
        token = issue_token(settings, "custom:x").token
        claims = jwt.decode(token, key, algorithms=["HS256"], audience=settings.audience)
        assert claims["sub"] == "custom:x"

    def test_session_claims(self) -> None:
        """sv and sat travel in the token and come back verified."""
        settings = appservice_settings()
        started = datetime(2030, 1, 1, tzinfo=UTC)
        issued = issue_token(settings, "custom:a", session_version=3, session_started=started)
        assert segment(issued.token, 1)["sat"] == int(started.timestamp())
        verified = verify_token(settings, issued.token)
        assert (verified.session_version, verified.session_started) == (3, started)

    def test_key_id_does_not_reveal_the_key(self) -> None:
        """The kid is short and contains no part of the key."""
        key = secrets.token_bytes(32)
        kid = key_id(key)
        assert len(kid) == 12
        assert key.hex() not in kid
        assert base64.urlsafe_b64encode(key).decode() not in kid


class TestRejection:
    """Every way a token can be wrong is refused."""

    def test_tampered_payload(self) -> None:
        """Changing the payload breaks the signature."""
        settings = appservice_settings()
        header, _, signature = issue_token(settings, "custom:alice").token.split(".")
        payload = (
            base64.urlsafe_b64encode(json.dumps({"sub": "custom:mallory"}).encode()).decode().rstrip("=")
        )
        with pytest.raises(InvalidToken):
            verify_token(settings, f"{header}.{payload}.{signature}")

    def test_tampered_signature(self) -> None:
        """A flipped signature byte is refused."""
        settings = appservice_settings()
        token = issue_token(settings, "custom:alice").token
        flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        with pytest.raises(InvalidToken):
            verify_token(settings, flipped)

    @pytest.mark.parametrize("make", [appservice_settings, zumo_settings], ids=["appservice", "zumo"])
    def test_expired(self, make: Any) -> None:
        """A token past exp (beyond the leeway) is refused."""
        settings = make()
        old = datetime.now(UTC) - settings.lifetime - settings.leeway - timedelta(seconds=5)
        assert "ExpiredSignature" in rejection(settings, issue_token(settings, "custom:a", now=old).token)

    def test_within_leeway_is_accepted(self) -> None:
        """Clock skew smaller than the leeway does not log users out."""
        settings = appservice_settings()
        slightly_old = datetime.now(UTC) - settings.lifetime - timedelta(seconds=10)
        assert verify_token(settings, issue_token(settings, "custom:a", now=slightly_old).token)

    def test_not_yet_valid(self) -> None:
        """A token whose nbf/iat is in the future (beyond leeway) is refused."""
        settings = appservice_settings()
        future = datetime.now(UTC) + timedelta(minutes=10)
        assert "ImmatureSignature" in rejection(settings, issue_token(settings, "custom:a", now=future).token)

    @pytest.mark.parametrize("field", ["audience", "issuer"])
    def test_wrong_audience_or_issuer(self, field: str) -> None:
        """A token for another site is refused."""
        settings = appservice_settings()
        other = appservice_settings(*settings.keys, **{field: "https://other.example/"})
        with pytest.raises(InvalidToken):
            verify_token(settings, issue_token(other, "custom:a").token)

    def test_alg_none(self) -> None:
        """An unsigned token is refused even with a valid payload."""
        settings = appservice_settings()
        claims = segment(issue_token(settings, "custom:a").token, 1)
        unsigned = jwt.encode(claims, "", algorithm="none")
        assert "alg" in rejection(settings, unsigned)

    def test_other_hmac_algorithm(self) -> None:
        """HS512 with the right key is still refused: the algorithm is pinned."""
        settings = appservice_settings(secrets.token_bytes(64))
        claims = segment(issue_token(settings, "custom:a").token, 1)
        token = jwt.encode(
            claims, settings.keys[0], algorithm="HS512", headers={"kid": key_id(settings.keys[0])}
        )
        assert "alg" in rejection(settings, token)

    @pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub", "iat"])
    def test_missing_required_claim(self, missing: str) -> None:
        """Tokens without a required claim are refused, even when correctly signed."""
        settings = appservice_settings()
        claims = segment(issue_token(settings, "custom:a").token, 1)
        del claims[missing]
        with pytest.raises(InvalidToken):
            verify_token(settings, forge(claims, settings.keys[0], kid=key_id(settings.keys[0])))

    @pytest.mark.parametrize(
        "token",
        ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30", "x" * (MAX_TOKEN_LENGTH + 1)],
        ids=["empty", "word", "garbage", "dots", "two-parts", "oversized"],
    )
    def test_malformed(self, token: str) -> None:
        """Garbage never raises anything but InvalidToken."""
        with pytest.raises(InvalidToken):
            verify_token(appservice_settings(), token)

    @pytest.mark.parametrize("claim", [{"sv": -1}, {"sv": "1"}, {"sat": "soon"}, {"sat": 1.5}])
    def test_malformed_session_claims(self, claim: dict[str, Any]) -> None:
        settings = appservice_settings()
        claims = segment(issue_token(settings, "custom:a").token, 1) | claim
        assert "session" in rejection(settings, forge(claims, settings.keys[0], kid=key_id(settings.keys[0])))

    def test_empty_user_id(self) -> None:
        """A signed token with an empty subject names nobody."""
        settings = appservice_settings()
        claims = segment(issue_token(settings, "custom:a").token, 1) | {"sub": ""}
        with pytest.raises(InvalidToken):
            verify_token(settings, forge(claims, settings.keys[0], kid=key_id(settings.keys[0])))


class TestKeys:
    """Rotation: the current key signs, previous keys still verify, unknown keys do not."""

    def test_previous_key_still_verifies(self) -> None:
        """A token signed before a rotation verifies while its key is listed as previous."""
        old, new = secrets.token_bytes(32), secrets.token_bytes(32)
        token = issue_token(appservice_settings(old), "custom:a").token
        assert verify_token(appservice_settings(new, old), token).user_id == "custom:a"

    def test_unknown_key_is_refused(self) -> None:
        """A token signed with a key that is not configured is refused."""
        token = issue_token(appservice_settings(), "custom:a").token
        with pytest.raises(InvalidToken):
            verify_token(appservice_settings(), token)

    def test_new_tokens_use_the_current_key(self) -> None:
        """keys[0] signs."""
        old, new = secrets.token_bytes(32), secrets.token_bytes(32)
        token = issue_token(appservice_settings(new, old), "custom:a").token
        assert segment(token, 0)["kid"] == key_id(new)
        jwt.decode(token, new, algorithms=["HS256"], audience="https://myapp.azurewebsites.net/")

    def test_zumo_tries_every_key(self) -> None:
        """zumo tokens all say kid "0", so every configured key is tried."""
        old_settings = zumo_settings("o" * 32)
        token = issue_token(old_settings, "Custom:a").token
        both = zumo_settings("n" * 32, keys=(zumo_signing_key("n" * 32), *old_settings.keys))
        assert verify_token(both, token).user_id == "Custom:a"

    def test_settings_refuse_empty_keys(self) -> None:
        """No token can be signed with an empty key."""
        with pytest.raises(ValueError, match="key"):
            appservice_settings(b"")
        with pytest.raises(ValueError, match="key"):
            appservice_settings(keys=())

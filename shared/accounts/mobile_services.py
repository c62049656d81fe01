"""Compatibility with Azure Mobile Services custom auth, for apps moving off it.

Two things survive a move and must keep working for a while:

Password hashes
    The ``jwthelper`` shared script stored PBKDF2-HMAC-SHA1 (1,000 iterations,
    32 bytes, base64) with a 32-byte random salt kept as a base64 string, and
    fed that *string's* ASCII bytes to PBKDF2 as the salt. Imported accounts
    keep such a hash as ``$mobileservices-pbkdf2-sha1$i=1000$<salt>$<hash>``
    until their owner's next login re-hashes it with Argon2id.

Tokens
    Apps in users' hands hold Mobile Services tokens, HS256 with the key
    SHA-256(master key + "JWTSig"): version 2 with header ``kid: "0"`` and
    ``exp`` in seconds, and the widely copied script's tokens with an integer
    ``kid: 0`` and ``exp`` in milliseconds. With ``AUTH_LEGACY_MASTER_KEY``
    set, the gate accepts both (so ``/api/refresh`` can trade them for a
    current token), within ``AUTH_LEGACY_MAX_AGE_DAYS``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidToken
from shared.settings.tokens import LegacyTokenSettings
from shared.tokens.access_tokens import (
    ALGORITHM,
    MAX_NUMERIC_DATE,
    MAX_TOKEN_LENGTH,
    ZUMO_ISSUER,
    VerifiedToken,
)

__all__ = [
    "LEGACY_AUDIENCE",
    "LEGACY_HASH_PREFIX",
    "LegacyTokenSettings",
    "is_legacy_hash",
    "legacy_hash",
    "legacy_stored_hash",
    "verify_legacy_password",
    "verify_legacy_token",
]

LEGACY_HASH_PREFIX = "$mobileservices-pbkdf2-sha1$i=1000$"
LEGACY_ITERATIONS = 1000
LEGACY_HASH_BYTES = 32
LEGACY_AUDIENCE = "Custom"
#: exp values above this are milliseconds (as seconds they would be after the year 5000).
_MILLISECOND_THRESHOLD = 100_000_000_000
#: The latest exp accepted, in milliseconds (as seconds, anything up to the threshold is earlier).
_MAX_EXP_MILLISECONDS = MAX_NUMERIC_DATE * 1000


def legacy_hash(password: str, salt: str) -> str:
    """Return the base64 hash the Mobile Services script stored for ``password`` and ``salt``.

    The salt is the stored base64 string itself, used as ASCII bytes (not decoded).
    """
    derived = hashlib.pbkdf2_hmac(
        "sha1", password.encode("utf-8"), salt.encode("ascii"), LEGACY_ITERATIONS, LEGACY_HASH_BYTES
    )
    return base64.b64encode(derived).decode("ascii")


def legacy_stored_hash(salt: str, hash_b64: str) -> str:
    """Return the stored form of an imported legacy hash.

    :raises ValueError: ``salt`` or ``hash_b64`` is not valid base64, or the
        hash is not 32 bytes.
    """
    for name, value in (("salt", salt), ("hash", hash_b64)):
        if not value or "$" in value:
            raise ValueError(f"{name} is empty")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name} is not valid base64") from None
        if name == "hash" and len(decoded) != LEGACY_HASH_BYTES:
            raise ValueError(f"hash is {len(decoded)} bytes, not {LEGACY_HASH_BYTES}")
    return f"{LEGACY_HASH_PREFIX}{salt}${hash_b64}"


def is_legacy_hash(stored: str) -> bool:
    """Whether ``stored`` is an imported Mobile Services hash."""
    return stored.startswith(LEGACY_HASH_PREFIX)


def verify_legacy_password(stored: str, password: str) -> bool:
    """Check ``password`` against an imported hash, comparing in constant time."""
    salt, _, expected = stored[len(LEGACY_HASH_PREFIX) :].partition("$")
    try:
        actual = legacy_hash(password, salt)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(actual.encode("ascii"), expected.encode("ascii", "replace"))


@functools.cache
def _mobile_services_jws() -> Any:
    """A PyJWS that also accepts the integer ``kid: 0`` of the copied script's tokens.

    Built on first use, like every PyJWT import here (see ``shared.tokens.access_tokens``).
    """
    import jwt  # noqa: PLC0415 - kept out of cold-start imports

    class MobileServicesJWS(jwt.PyJWS):
        def _validate_kid(self, kid: Any) -> None:
            if type(kid) is int and kid == 0:
                return
            super()._validate_kid(kid)

    return MobileServicesJWS(algorithms=[ALGORITHM])


def verify_legacy_token(
    settings: LegacyTokenSettings, token: str, *, now: datetime | None = None
) -> VerifiedToken:
    """Verify a Mobile Services token and return its claims.

    The signature is checked by PyJWT (HS256 only). Then: ``iss`` must be the
    Mobile Services URN and ``aud`` ``Custom``; ``uid`` names the user; ``exp``
    is required, must be a number (not a string or bool), is read as
    milliseconds when it is too large to be seconds, must not have passed,
    and must lie within ``settings.max_age`` from now (a token that claims to
    live longer is not honoured).

    :raises InvalidToken: for any problem, a claim of the wrong type or out of
        range included; ``reason`` says which.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("legacy: token too long")
    import jwt  # noqa: PLC0415 - already imported by _mobile_services_jws; kept out of cold start

    try:
        decoded = _mobile_services_jws().decode_complete(token, settings.key, algorithms=[ALGORITHM])
    except jwt.PyJWTError as error:
        raise InvalidToken(f"legacy: {type(error).__name__}") from None
    header = decoded["header"]
    if header.get("alg") != ALGORITHM or header.get("kid") not in ("0", 0):
        raise InvalidToken("legacy: not a Mobile Services header")
    try:
        claims = json.loads(decoded["payload"])
    except ValueError:
        raise InvalidToken("legacy: payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidToken("legacy: payload is not an object")
    return _verified_legacy_claims(settings, claims, now or datetime.now(UTC))


def _verified_legacy_claims(
    settings: LegacyTokenSettings, claims: dict[str, Any], now: datetime
) -> VerifiedToken:
    if claims.get("iss") != ZUMO_ISSUER or claims.get("aud") != LEGACY_AUDIENCE:
        raise InvalidToken("legacy: wrong iss or aud")
    user_id = claims.get("uid")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidToken("legacy: no uid")
    exp = claims.get("exp")
    # NaN fails the comparison; the upper bound also keeps a huge int from overflowing the
    # float division below.
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not 0 < exp <= _MAX_EXP_MILLISECONDS:
        raise InvalidToken("legacy: exp missing, not a number or out of range")
    seconds = exp / 1000 if exp > _MILLISECOND_THRESHOLD else exp
    try:
        expires_at = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise InvalidToken("legacy: exp out of range") from None
    if expires_at + settings.leeway < now:
        raise InvalidToken("legacy: expired")
    if expires_at - now > settings.max_age:
        raise InvalidToken("legacy: lives longer than AUTH_LEGACY_MAX_AGE_DAYS")
    return VerifiedToken(user_id=user_id, expires_at=expires_at, issued_at=None, session_version=0)

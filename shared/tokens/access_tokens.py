"""Issuing and verifying the service's authentication tokens (a thin layer over PyJWT).

Two wire formats are supported, both JWTs signed with HS256 by default:

``appservice``
    What Azure App Service authentication and the Azure Mobile Apps server SDKs
    accept: the key is the bytes of a hex string (like ``WEBSITE_AUTH_SIGNING_KEY``),
    claims ``sub``, ``iss``, ``aud``, ``iat``, ``nbf``, ``exp`` and ``ver: "3"``.

``zumo``
    Azure Mobile Services JWT version 2: header ``{"alg":"HS256","typ":"JWT","kid":"0"}``,
    key ``SHA-256(master key + "JWTSig")``, claims ``exp`` (seconds), ``iss``,
    ``ver: 2``, ``aud``, ``uid``.

With ``AUTH_TOKEN_ALGORITHM`` ``ES256`` or ``RS256`` (see
:mod:`shared.settings.signing`), both formats are signed with the private key
instead, their header's ``kid`` the key's RFC 7638 thumbprint; the claims stay
the same.

Everything a caller could get wrong is fixed here: the algorithm is pinned
(HS256 to the HMAC keys; each public key to the one algorithm of its type;
never ``none``, never chosen by the token), the key never comes from the
token, and ``exp``, ``iss`` and ``aud`` are always required and checked. Every
claim the service reads must also have its type and range, even in a correctly
signed token: a wrong one is an invalid token, never a server error.

Why one module of some 470 lines: issuing and verifying share the claim rules,
the key ids and the algorithm pinning, and keeping them in one file is what lets
a reader check that every path applies every rule (PyJWT's own ``api_jwt`` is
kept whole for the same reason). The keys' parsing is :mod:`shared.settings.signing`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import InvalidToken
from shared.settings.tokens import (
    ZUMO_ISSUER,
    TokenFormat,
    TokenSettings,
    appservice_signing_key,
    zumo_signing_key,
)

__all__ = [
    "ALGORITHM",
    "AMR_CLAIM",
    "CHALLENGE_AUDIENCE_SUFFIX",
    "MAX_NUMERIC_DATE",
    "MAX_SESSION_VERSION",
    "MAX_TOKEN_LENGTH",
    "SESSION_ID_CLAIM",
    "SESSION_STARTED_CLAIM",
    "SESSION_VERSION_CLAIM",
    "ZUMO_ISSUER",
    "IssuedToken",
    "TokenFormat",
    "TokenSettings",
    "VerifiedToken",
    "appservice_signing_key",
    "issue_challenge",
    "issue_token",
    "key_id",
    "verify_challenge",
    "verify_token",
    "zumo_signing_key",
]

ALGORITHM = "HS256"
ZUMO_KEY_ID = "0"
SESSION_VERSION_CLAIM = "sv"
#: RFC 8176 authentication method references: how the session was proven.
AMR_CLAIM = "amr"
#: The device session a token belongs to (OpenID Connect's ``sid``).
SESSION_ID_CLAIM = "sid"
#: Tokens of the second step of a login with a second factor carry this audience suffix.
CHALLENGE_AUDIENCE_SUFFIX = "#mfa-challenge"
_MAX_AMR_VALUES = 8
SESSION_STARTED_CLAIM = "sat"
#: Tokens longer than this are rejected before any parsing.
MAX_TOKEN_LENGTH = 4096
#: The latest time claim accepted (seconds): 9999-12-31T23:59:59Z, the end of ``datetime``'s range.
MAX_NUMERIC_DATE = 253_402_300_799
#: The largest session version (claim ``sv``) accepted: what an Int64 table property holds.
MAX_SESSION_VERSION = 2**63 - 1


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token and the facts a response reports about it."""

    token: str = field(repr=False)
    user_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of a token that passed every check.

    ``session_version`` is the account's session version when the token was
    issued (claim ``sv``); a token without the claim counts as version 0.
    """

    user_id: str
    expires_at: datetime
    issued_at: datetime | None
    session_version: int = 0
    session_started: datetime | None = None
    #: ``amr``: how the session was proven (``()`` for tokens issued before sessions had it).
    amr: tuple[str, ...] = ()
    #: ``sid``: the device session (``None`` for tokens issued before sessions per device).
    session_id: str | None = None

    @property
    def has_second_factor(self) -> bool:
        """Whether the session was proven with a second factor."""
        return "mfa" in self.amr


def key_id(key: bytes) -> str:
    """Return a short public identifier of ``key`` that does not reveal it."""
    digest = hmac.new(key, b"key-id", hashlib.sha256).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def issue_token(
    settings: TokenSettings,
    user_id: str,
    *,
    session_version: int | None = None,
    session_started: datetime | None = None,
    amr: tuple[str, ...] = (),
    session_id: str | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Sign a token for ``user_id`` in the configured format, valid for ``settings.lifetime``.

    ``session_version`` becomes the claim ``sv``, which lets the service revoke
    every token of an account issued before a logout or password change;
    ``session_started`` (claim ``sat``) is when the user last gave a password,
    which refreshed tokens carry over so that a session's age can be capped.
    """
    issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
    expires_at = issued_at + settings.lifetime
    key: Any = settings.keys[0]
    algorithm, kid = ALGORITHM, None
    signer = settings.signing_keys.signer()  # raises SettingError for a bad key setting
    if signer is not None:
        key, algorithm, kid = signer.key, str(signer.algorithm), signer.kid
    payload: dict[str, Any]
    if settings.format is TokenFormat.ZUMO:
        payload = {
            "exp": _seconds(expires_at),
            "iss": settings.issuer,
            "ver": 2,
            "aud": settings.audience,
            "uid": user_id,
        }
        headers = {"kid": kid or ZUMO_KEY_ID}
    else:
        payload = {
            "sub": user_id,
            "iss": settings.issuer,
            "aud": settings.audience,
            "iat": _seconds(issued_at),
            "nbf": _seconds(issued_at),
            "exp": _seconds(expires_at),
            "ver": "3",
        }
        headers = {"kid": kid or key_id(key)}
    if session_version is not None:
        payload[SESSION_VERSION_CLAIM] = session_version
    if session_started is not None:
        payload[SESSION_STARTED_CLAIM] = _seconds(session_started)
    if amr:
        payload[AMR_CLAIM] = list(amr)
    if session_id is not None:
        payload[SESSION_ID_CLAIM] = session_id
    pyjwt = _pyjwt()
    token = pyjwt.encode(
        payload,
        key,
        algorithm=algorithm,
        headers=headers,
        json_encoder=_HeaderOrderEncoder,
        sort_headers=False,
    )
    return IssuedToken(token=token, user_id=user_id, issued_at=issued_at, expires_at=expires_at)


def verify_token(settings: TokenSettings, token: str) -> VerifiedToken:
    """Check every property of ``token`` and return its claims.

    An HS256 token's key is chosen from ``settings.keys`` by the header ``kid``
    (``appservice``) or tried in order (``zumo``, whose ``kid`` is always
    ``"0"``); HS256 passes only under ``AUTH_TOKEN_ALGORITHM=HS256`` or while
    ``AUTH_ACCEPT_HS256_TOKENS`` is on. Any other token's ``kid`` must name a
    published public key (current, next or previous) and its ``alg`` must be
    that key's one algorithm. ``exp``, ``iss`` and ``aud`` must be present and right;
    ``nbf`` and ``iat`` are checked when present; ``settings.leeway`` absorbs
    clock skew. Then every claim read must have its type and range (see
    :func:`_verified`), which PyJWT does not fully check.

    :raises InvalidToken: for any problem, a claim of the wrong type or out of
        range included; ``reason`` says which, for logs only.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token too long")
    return _verifier(settings).verify(token)


@functools.lru_cache(maxsize=16)
def _verifier(settings: TokenSettings) -> _Verifier:
    """The verifier of ``settings``, built once per process (settings are parsed once)."""
    return _Verifier(settings)


class _Verifier:
    """Everything :func:`verify_token` needs that does not depend on the token, computed once.

    Per call, only PyJWT's own work remains: one parse of the token, the
    HMAC, and the registered-claim checks; then the type and range checks of
    :func:`_verified`. With a single candidate key the header is not parsed
    twice: the key id is checked on the header PyJWT returns. With several
    (a rotation window), the header's ``kid`` picks the key first.
    """

    def __init__(self, settings: TokenSettings) -> None:
        pyjwt = self._jwt = _pyjwt()
        self._format = settings.format
        self._decoder = pyjwt.PyJWT(
            options={"require": _required_claims(settings.format), "verify_sub": False}
        )
        self._arguments = {
            "algorithms": [ALGORITHM],
            "audience": settings.audience,
            "issuer": settings.issuer,
            "leeway": settings.leeway,
        }
        #: (key, the kid a token signed with it must carry; None: any, as in the zumo format)
        self._keys: tuple[tuple[bytes, str | None], ...] = tuple(
            (key, None if settings.format is TokenFormat.ZUMO else key_id(key)) for key in settings.keys
        )
        self._signing_keys = settings.signing_keys
        #: Only HS256 and no public key: the header need not be read before PyJWT's decode.
        self._hmac_only = settings.signing_keys.accept_hs256 and not settings.signing_keys.published

    def verify(self, token: str) -> VerifiedToken:
        pyjwt = self._jwt
        candidates = self._keys
        try:
            if not self._hmac_only:
                header = pyjwt.get_unverified_header(token)
                if header.get("alg") != ALGORITHM:
                    return self._verify_public(token, header)
                if not self._signing_keys.accept_hs256:
                    raise InvalidToken("rejected: HS256 tokens are no longer accepted")
            if len(candidates) > 1 and self._format is TokenFormat.APPSERVICE:
                kid = pyjwt.get_unverified_header(token).get("kid")
                candidates = tuple(pair for pair in candidates if pair[1] == kid)
            last_error: Exception | None = None
            for key, expected_kid in candidates:
                try:
                    decoded = self._decoder.decode_complete(token, key, **self._arguments)
                except pyjwt.InvalidSignatureError as error:
                    last_error = error
                    continue
                if expected_kid is not None and decoded["header"].get("kid") != expected_kid:
                    raise InvalidToken("rejected: unknown key id")
                return _verified(self._format, decoded["payload"])
        except pyjwt.InvalidAlgorithmError:
            raise InvalidToken("wrong or missing alg") from None
        except pyjwt.DecodeError as error:  # not a bad signature: those are caught above, per key
            raise InvalidToken(f"malformed token: {type(error).__name__}") from None
        except pyjwt.PyJWTError as error:
            raise InvalidToken(f"rejected: {type(error).__name__}") from None
        except (TypeError, OverflowError):
            # PyJWT releases before jpadilla/pyjwt#1186 int() exp, nbf and iat catching only
            # ValueError, so a signed list, null or Infinity escaped decode() as these.
            raise InvalidToken("rejected: a time claim PyJWT could not read") from None
        reason = type(last_error).__name__ if last_error else "unknown key id"
        raise InvalidToken(f"rejected: {reason}")

    def _verify_public(self, token: str, header: dict[str, Any]) -> VerifiedToken:
        """Verify with the published key the header's ``kid`` names, in that key's one algorithm.

        Runs inside :meth:`verify`'s ``try``, which maps PyJWT's errors.
        """
        public = self._signing_keys.verifier(header.get("kid"))
        if public is None:
            raise InvalidToken("rejected: unknown key id")
        if header.get("alg") != public.algorithm:
            raise InvalidToken("wrong or missing alg")
        arguments = self._arguments | {"algorithms": [str(public.algorithm)]}
        try:
            decoded = self._decoder.decode_complete(token, public.key, **arguments)
        except self._jwt.InvalidSignatureError:
            raise InvalidToken("rejected: InvalidSignatureError") from None
        return _verified(self._format, decoded["payload"])


def _pyjwt() -> Any:
    """PyJWT, imported on first use.

    PyJWT imports ``cryptography`` whenever it is installed (azure-identity
    installs it), which costs tens of milliseconds; importing it here keeps
    that out of every function's cold-start import and charges it once, to
    the first token a process signs or checks.
    """
    import jwt  # noqa: PLC0415 - see the docstring

    return jwt


class _HeaderOrderEncoder(json.JSONEncoder):
    """Writes the JOSE header as ``{"alg","typ","kid"}``, the byte order Mobile Services used.

    PyJWT starts its header with ``typ``; token bytes only match the Mobile
    Services vectors with ``alg`` first. Claim sets (no ``alg``) pass unchanged.
    """

    def encode(self, o: Any) -> str:
        if isinstance(o, dict) and "alg" in o:
            o = {name: o[name] for name in ("alg", "typ", "kid") if name in o} | o
        return super().encode(o)


def _required_claims(token_format: TokenFormat) -> list[str]:
    if token_format is TokenFormat.ZUMO:
        return ["exp", "iss", "aud", "uid"]
    return ["exp", "iss", "aud", "sub", "iat"]


def _verified(token_format: TokenFormat, claims: dict[str, Any]) -> VerifiedToken:
    """Return the claims of a token PyJWT accepted, after checking the type and range of each one read.

    PyJWT checks ``iss`` and ``aud`` (strings) but compares ``exp``, ``nbf`` and
    ``iat`` after ``int()``, so it lets through numeric strings, booleans,
    negative and huge numbers; they are refused here. A claim present with
    ``null`` counts as present.

    :raises InvalidToken: a claim has the wrong type or is out of range.
    """
    user_id = claims.get("uid" if token_format is TokenFormat.ZUMO else "sub")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidToken("user id claim is not a non-empty string")
    expires_at = _numeric_date(claims, "exp")
    if expires_at is None:  # PyJWT requires it; kept so that no path depends on that
        raise InvalidToken("exp claim is missing")
    _numeric_date(claims, "nbf")
    issued_at = _numeric_date(claims, "iat")
    session_version = claims.get(SESSION_VERSION_CLAIM, 0)
    if type(session_version) is not int or not 0 <= session_version <= MAX_SESSION_VERSION:
        raise InvalidToken("session version claim is not a whole number in range")
    session_started = _numeric_date(claims, SESSION_STARTED_CLAIM, whole_seconds=True, what="session start")
    return VerifiedToken(
        user_id=user_id,
        expires_at=expires_at,
        issued_at=issued_at,
        session_version=session_version,
        session_started=session_started,
        amr=_amr(claims),
        session_id=_session_id(claims),
    )


def _session_id(claims: dict[str, Any]) -> str | None:
    """:raises InvalidToken: ``sid`` is present but not a short string."""
    if SESSION_ID_CLAIM not in claims:
        return None
    value = claims[SESSION_ID_CLAIM]
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not value.isalnum():
        raise InvalidToken("sid claim is not a session id")
    return value


def _amr(claims: dict[str, Any]) -> tuple[str, ...]:
    """:raises InvalidToken: ``amr`` is present but not a short list of short strings."""
    if AMR_CLAIM not in claims:
        return ()
    value = claims[AMR_CLAIM]
    if (
        not isinstance(value, list)
        or len(value) > _MAX_AMR_VALUES
        or not all(isinstance(item, str) and 0 < len(item) <= 32 for item in value)
    ):
        raise InvalidToken("amr claim is not a list of method names")
    return tuple(value)


def issue_challenge(settings: TokenSettings, user_id: str, challenge_id: str, lifetime: timedelta) -> str:
    """Sign the token of a login's second step: for ``user_id`` and this challenge only.

    Its audience is the service's with :data:`CHALLENGE_AUDIENCE_SUFFIX`, so
    :func:`verify_token` (the gate, every route) refuses it.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    payload = {
        "sub": user_id,
        "iss": settings.issuer,
        "aud": settings.audience + CHALLENGE_AUDIENCE_SUFFIX,
        "iat": _seconds(now),
        "exp": _seconds(now + lifetime),
        "jti": challenge_id,
    }
    key = settings.keys[0]
    token: str = _pyjwt().encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
    return token


def verify_challenge(settings: TokenSettings, token: str) -> tuple[str, str]:
    """Return the user id and challenge id of a second-step token.

    No leeway: a challenge lives exactly as long as configured.

    :raises InvalidToken: forged, expired, malformed, or not a challenge token.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token too long")
    pyjwt = _pyjwt()
    try:
        kid = pyjwt.get_unverified_header(token).get("kid")
        for key in settings.keys:
            if kid != key_id(key):
                continue
            claims = pyjwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=settings.audience + CHALLENGE_AUDIENCE_SUFFIX,
                issuer=settings.issuer,
                options={"require": ["exp", "iss", "aud", "sub", "jti"]},
            )
            user_id, challenge_id = claims["sub"], claims["jti"]
            if not isinstance(user_id, str) or not isinstance(challenge_id, str) or not user_id:
                raise InvalidToken("challenge claims are not strings")
            _numeric_date(claims, "exp")
            return user_id, challenge_id
    except (pyjwt.PyJWTError, TypeError, OverflowError) as error:
        raise InvalidToken(f"challenge rejected: {type(error).__name__}") from None
    raise InvalidToken("challenge signed with an unknown key")


def _numeric_date(
    claims: dict[str, Any], name: str, *, whole_seconds: bool = False, what: str | None = None
) -> datetime | None:
    """Return the time claim ``name`` (a JWT NumericDate), or None if the token has no such claim.

    The value must be an ``int`` (or, unless ``whole_seconds``, a finite
    ``float``; never a ``bool``) from 0 to :data:`MAX_NUMERIC_DATE`.

    :raises InvalidToken: the claim is present with any other value; the
        reason names it as ``what`` (default: the claim's name).
    """
    if name not in claims:
        return None
    value = claims[name]
    kinds: tuple[type, ...] = (int,) if whole_seconds else (int, float)
    # type() rather than isinstance(): bool is an int. NaN fails the comparison.
    if type(value) not in kinds or not 0 <= value <= MAX_NUMERIC_DATE:
        raise InvalidToken(f"{what or name} claim is not a time in range")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):  # platforms whose gmtime stops before year 9999
        raise InvalidToken(f"{what or name} claim is out of range") from None


def _seconds(instant: datetime) -> int:
    return int(instant.timestamp())

"""Asymmetric signing keys: what signs tokens, what verifies them, and how each is named.

``AUTH_TOKEN_ALGORITHM`` chooses how access tokens are signed:

``HS256`` (the default)
    The HMAC key ``AUTH_SIGNING_KEY``, exactly as before. Only this service
    (and the Azure Mobile Apps server SDKs holding the same key) can verify.
``ES256`` (recommended for new apps) or ``RS256``
    The private key ``AUTH_SIGNING_PRIVATE_KEY`` (PKCS#8 PEM: a P-256 key for
    ``ES256``, an RSA key of at least 2048 bits for ``RS256``). Its public half is
    published at ``/.well-known/jwks.json`` so any service can verify.

Every key is named by its RFC 7638 JWK thumbprint (the token header's ``kid``
and the key set's ``kid``), so a key's name is fixed by the key alone and the
same on every instance. Beside the current key, ``AUTH_NEXT_SIGNING_PUBLIC_KEY``
(published before it signs) and ``AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS`` (kept until
the tokens they signed have expired) verify tokens; each key verifies only with
the one algorithm its type allows.

Settings portals keep a value on one line, so in every key setting the two
characters ``\\n`` stand for a newline. A key that does not parse, or whose
type does not match the algorithm, never stops the service: it is kept as
:attr:`SigningKeys.problem` and raised by :meth:`SigningKeys.signer`, so the
routes that sign answer ``500 server_misconfigured`` naming the setting, while
tokens of the keys that did parse still verify.

Keys are parsed and used through ``cryptography`` and PyJWT only, both
imported on first use (out of every function's cold start).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import SettingError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

__all__ = [
    "ACCEPT_HS256_SETTING",
    "ALGORITHM_SETTING",
    "JWKS_MAX_AGE_SETTING",
    "NEXT_KEY_SETTING",
    "PREVIOUS_KEYS_SETTING",
    "PRIVATE_KEY_SETTING",
    "REFRESH_REUSE_SETTING",
    "PublicKey",
    "SettingsReader",
    "SigningAlgorithm",
    "SigningKeys",
    "SigningSettings",
    "generate_private_key",
    "load_signing_settings",
    "parse_private_key",
    "parse_public_keys",
    "private_key_pem",
    "public_key_pem",
    "thumbprint",
]

ALGORITHM_SETTING = "AUTH_TOKEN_ALGORITHM"
PRIVATE_KEY_SETTING = "AUTH_SIGNING_PRIVATE_KEY"
NEXT_KEY_SETTING = "AUTH_NEXT_SIGNING_PUBLIC_KEY"
PREVIOUS_KEYS_SETTING = "AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS"
ACCEPT_HS256_SETTING = "AUTH_ACCEPT_HS256_TOKENS"
JWKS_MAX_AGE_SETTING = "AUTH_JWKS_MAX_AGE_SECONDS"
REFRESH_REUSE_SETTING = "AUTH_REFRESH_REUSE_SECONDS"

#: RSA keys shorter than this are refused (NIST SP 800-131A; PyJWT warns below it too).
MIN_RSA_BITS = 2048
_PUBLIC_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)
#: RFC 7638: the required members of each key type, the only ones the thumbprint covers.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
#: Members of a JWK that only a private key has (RFC 7518 6.2.2, 6.3.2) and the symmetric ``k``.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class SigningAlgorithm(StrEnum):
    """How access tokens are signed (``AUTH_TOKEN_ALGORITHM``)."""

    HS256 = "HS256"
    ES256 = "ES256"
    RS256 = "RS256"

    @property
    def asymmetric(self) -> bool:
        """Whether tokens of this algorithm verify with a public key."""
        return self is not SigningAlgorithm.HS256


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key that verifies tokens: its ``kid``, its one algorithm and its JWK.

    Compared and hashed by ``kid`` and ``algorithm`` (the thumbprint fixes the key).
    """

    kid: str
    algorithm: SigningAlgorithm
    #: The ``cryptography`` key object.
    key: PublicKeyTypes = field(compare=False, repr=False)
    #: The public JWK (``kty``, ``kid``, ``alg``, ``use`` and the key's public members only).
    jwk: dict[str, str] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """The key that signs: its private half, and its public half as published."""

    public: PublicKey
    key: PrivateKeyTypes = field(compare=False, repr=False)

    @property
    def kid(self) -> str:
        return self.public.kid

    @property
    def algorithm(self) -> SigningAlgorithm:
        return self.public.algorithm


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """Which key signs and which keys verify, fixed once per process.

    ``published`` is every public key that may verify a live token, current
    first, then next, then previous (no two with one ``kid``); it never holds
    an HMAC key.
    """

    algorithm: SigningAlgorithm = SigningAlgorithm.HS256
    current: PrivateKey | None = None
    next: PublicKey | None = None
    previous: tuple[PublicKey, ...] = ()
    #: Whether HS256 tokens of ``AUTH_SIGNING_KEY`` still pass the gate (always, under HS256).
    accept_hs256: bool = True
    #: The first key setting that did not parse or match; raised by :meth:`signer`.
    problem: SettingError | None = field(default=None, compare=False)

    @property
    def published(self) -> tuple[PublicKey, ...]:
        """Every public key that may verify a live token, each ``kid`` once."""
        keys: list[PublicKey] = []
        candidates = [self.current.public if self.current else None, self.next, *self.previous]
        for key in candidates:
            if key is not None and all(key.kid != seen.kid for seen in keys):
                keys.append(key)
        return tuple(keys)

    def verifier(self, kid: object) -> PublicKey | None:
        """The published key named ``kid``, or ``None``."""
        return next((key for key in self.published if key.kid == kid), None)

    def signer(self) -> PrivateKey | None:
        """The key that signs access tokens; ``None`` under HS256 (the HMAC key signs).

        :raises SettingError: a key setting is missing, malformed or of the wrong type.
        """
        if self.problem is not None:
            raise SettingError(self.problem.setting, self.problem.problem)
        if not self.algorithm.asymmetric:
            return None
        if self.current is None:  # load_signing_settings records a problem instead; kept for safety
            raise SettingError(PRIVATE_KEY_SETTING, f"is not set ({ALGORITHM_SETTING}={self.algorithm})")
        return self.current


@dataclass(frozen=True, slots=True)
class SigningSettings:
    """Signing keys, how long the key set may be cached, and the refresh-token reuse grace."""

    keys: SigningKeys = field(default_factory=SigningKeys)
    #: ``AUTH_JWKS_MAX_AGE_SECONDS``: the key set's and discovery document's ``Cache-Control: max-age``.
    jwks_max_age: int = 600
    #: ``AUTH_REFRESH_REUSE_SECONDS``: how long the last spent refresh token may be retried.
    refresh_reuse_grace: timedelta = timedelta(seconds=10)


class SettingsReader(Protocol):
    """What :func:`load_signing_settings` needs of the settings reader."""

    def optional(self, name: str) -> str | None: ...

    def boolean(self, name: str, *, default: bool) -> bool: ...

    def integer(self, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int: ...


def load_signing_settings(reader: SettingsReader) -> SigningSettings:
    """Parse the signing settings.

    :raises SettingError: ``AUTH_TOKEN_ALGORITHM``, ``AUTH_ACCEPT_HS256_TOKENS``,
        ``AUTH_JWKS_MAX_AGE_SECONDS`` or ``AUTH_REFRESH_REUSE_SECONDS`` is invalid.
        A bad key is not raised here but kept in :attr:`SigningKeys.problem`.
    """
    raw_algorithm = reader.optional(ALGORITHM_SETTING) or SigningAlgorithm.HS256
    try:
        algorithm = SigningAlgorithm(raw_algorithm.upper())
    except ValueError:
        raise SettingError(ALGORITHM_SETTING, f"has an unknown value {raw_algorithm!r}") from None
    accept_hs256 = reader.boolean(ACCEPT_HS256_SETTING, default=True) or not algorithm.asymmetric
    settings = SigningSettings(
        jwks_max_age=reader.integer(JWKS_MAX_AGE_SETTING, default=600, minimum=60, maximum=86_400),
        refresh_reuse_grace=timedelta(
            seconds=reader.integer(REFRESH_REUSE_SETTING, default=10, minimum=0, maximum=300)
        ),
    )
    keys = SigningKeys(algorithm=algorithm, accept_hs256=accept_hs256)
    problems: list[SettingError] = []

    def attempt(parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except SettingError as problem:
            problems.append(problem)
            return None

    private_pem = reader.optional(PRIVATE_KEY_SETTING)
    current = None
    if algorithm.asymmetric:
        if private_pem is None:
            problems.append(
                SettingError(PRIVATE_KEY_SETTING, f"is not set ({ALGORITHM_SETTING}={algorithm})")
            )
        else:
            current = attempt(lambda: parse_private_key(private_pem, algorithm, setting=PRIVATE_KEY_SETTING))
    next_pem = reader.optional(NEXT_KEY_SETTING)
    next_keys = attempt(lambda: parse_public_keys(next_pem, setting=NEXT_KEY_SETTING)) if next_pem else ()
    if next_keys and len(next_keys) > 1:
        problems.append(SettingError(NEXT_KEY_SETTING, "holds more than one key"))
    previous_pem = reader.optional(PREVIOUS_KEYS_SETTING)
    previous = (
        attempt(lambda: parse_public_keys(previous_pem, setting=PREVIOUS_KEYS_SETTING))
        if previous_pem
        else ()
    )
    keys = dataclasses.replace(
        keys,
        current=current,
        next=next_keys[0] if next_keys else None,
        previous=previous or (),
        problem=problems[0] if problems else None,
    )
    return dataclasses.replace(settings, keys=keys)


def _pem_text(raw: str) -> bytes:
    r"""The PEM text of a setting: ``\n`` (two characters) as a newline, surrounding quotes dropped."""
    return raw.strip().strip('"').replace("\\r", "").replace("\\n", "\n").encode("ascii", "replace")


def parse_private_key(raw: str, algorithm: SigningAlgorithm, *, setting: str) -> PrivateKey:
    """Load a PEM private key (PKCS#8) that signs with ``algorithm``.

    :raises SettingError: not an unencrypted PEM private key, or not of the algorithm's type.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - out of cold start

    try:
        key = serialization.load_pem_private_key(_pem_text(raw), password=None)
    except (ValueError, TypeError):
        raise SettingError(setting, "is not an unencrypted PEM private key (PKCS#8)") from None
    public = _public(key.public_key(), setting=setting)
    if public.algorithm is not algorithm:
        raise SettingError(setting, f"is a key for {public.algorithm}, not {ALGORITHM_SETTING}={algorithm}")
    return PrivateKey(public=public, key=key)


def parse_public_keys(raw: str, *, setting: str) -> tuple[PublicKey, ...]:
    """Load one or more PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) blocks.

    :raises SettingError: no block, or a block that is not a P-256 or RSA (2048+) public key.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - out of cold start

    text = _pem_text(raw).decode("ascii")
    blocks = _PUBLIC_BLOCK.findall(text)
    leftover = _PUBLIC_BLOCK.sub("", text).replace(",", "").strip()
    if not blocks or leftover:
        raise SettingError(setting, "is not one or more PEM public keys (-----BEGIN PUBLIC KEY-----)")
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block.encode("ascii"))
        except (ValueError, TypeError):
            raise SettingError(setting, "holds a block that is not a PEM public key") from None
        keys.append(_public(key, setting=setting))
    return tuple(keys)


def _public(key: PublicKeyTypes, *, setting: str) -> PublicKey:
    """Name a public key and fix its algorithm by its type.

    :raises SettingError: neither a P-256 key nor an RSA key of at least 2048 bits.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415 - out of cold start
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm  # noqa: PLC0415 - out of cold start

    jwk: dict[str, Any]
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SettingError(setting, f"is an EC key on {key.curve.name}; only P-256 (ES256) is supported")
        algorithm = SigningAlgorithm.ES256
        jwk = dict(ECAlgorithm.to_jwk(key, as_dict=True))
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SettingError(setting, f"is an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
        algorithm = SigningAlgorithm.RS256
        jwk = dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    else:
        raise SettingError(setting, "is neither a P-256 (ES256) nor an RSA (RS256) key")
    kid = thumbprint(jwk)
    members = {name: str(jwk[name]) for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    published = {**members, "kid": kid, "alg": str(algorithm), "use": "sig"}
    assert not PRIVATE_MEMBERS & published.keys()  # noqa: S101 - built from a public key object only
    return PublicKey(kid=kid, algorithm=algorithm, key=key, jwk=published)


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a public JWK.

    The JSON of the key type's required members only, in lexicographic order,
    without whitespace (RFC 7638 section 3).
    """
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_private_key(algorithm: SigningAlgorithm) -> str:
    """A new private key for ``algorithm`` as PKCS#8 PEM (P-256 for ES256, RSA 3072 for RS256)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415 - out of cold start

    key: PrivateKeyTypes
    if algorithm is SigningAlgorithm.ES256:
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm is SigningAlgorithm.RS256:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError("HS256 has no key pair")
    return private_key_pem(key)


def private_key_pem(key: PrivateKeyTypes) -> str:
    """``key`` as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - out of cold start

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_key_pem(key: PublicKeyTypes) -> str:
    """``key`` as a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - out of cold start

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")

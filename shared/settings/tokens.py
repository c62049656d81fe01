"""Token settings (``AUTH_TOKEN_*``, ``AUTH_SIGNING_KEY``, ``AUTH_LEGACY_*``): the types and their parsing.

:mod:`shared.tokens.access_tokens` issues and verifies with a :class:`TokenSettings`;
:mod:`shared.accounts.mobile_services` accepts Mobile Services tokens with a
:class:`LegacyTokenSettings`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from shared.errors import SettingError
from shared.settings.reader import Reader
from shared.settings.signing import SigningKeys

__all__ = [
    "MIN_KEY_BYTES",
    "ZUMO_ISSUER",
    "LegacyTokenSettings",
    "TokenFormat",
    "TokenSettings",
    "appservice_signing_key",
    "legacy_token_settings",
    "token_settings",
    "zumo_signing_key",
]

ZUMO_ISSUER = "urn:microsoft:windows-azure:zumo"
MIN_KEY_BYTES = 32
_MAX_LIFETIME_SECONDS = 365 * 86_400
_MAX_LEGACY_AGE_DAYS = 3650


class TokenFormat(StrEnum):
    """The wire format of issued tokens (app setting ``AUTH_TOKEN_FORMAT``)."""

    APPSERVICE = "appservice"
    ZUMO = "zumo"


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Everything needed to issue and verify tokens, fixed in one object.

    ``keys[0]`` signs; every key in ``keys`` verifies (the later ones are
    previous keys kept during a rotation window).
    """

    format: TokenFormat
    keys: tuple[bytes, ...] = field(repr=False)
    issuer: str
    audience: str
    lifetime: timedelta
    leeway: timedelta = timedelta(seconds=60)
    #: The asymmetric keys (``AUTH_TOKEN_ALGORITHM``); by default none: HS256 with ``keys`` alone.
    signing_keys: SigningKeys = field(default_factory=SigningKeys)

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise ValueError("at least one non-empty signing key is required")


@dataclass(frozen=True, slots=True)
class LegacyTokenSettings:
    """How Mobile Services tokens are accepted during a move."""

    key: bytes = field(repr=False)
    max_age: timedelta
    leeway: timedelta = timedelta(seconds=60)

    @classmethod
    def from_master_key(cls, master_key: str, max_age: timedelta) -> LegacyTokenSettings:
        return cls(key=zumo_signing_key(master_key), max_age=max_age)


def appservice_signing_key(hex_key: str) -> bytes:
    """Return the HMAC key of the App Service format: the bytes a hex string spells.

    :raises ValueError: ``hex_key`` is not an even-length hex string.
    """
    return bytes.fromhex(hex_key)


def zumo_signing_key(master_key: str) -> bytes:
    """Return the HMAC key of the Mobile Services format: SHA-256(master key + "JWTSig")."""
    return hashlib.sha256((master_key + "JWTSig").encode("utf-8")).digest()


def token_settings(reader: Reader) -> TokenSettings:
    """``AUTH_TOKEN_FORMAT``, the signing keys, issuer, audience and lifetime."""
    token_format = reader.choice("AUTH_TOKEN_FORMAT", TokenFormat, default=TokenFormat.APPSERVICE)
    signing_key_setting = reader.name_in_use("AUTH_SIGNING_KEY", fallback="WEBSITE_AUTH_SIGNING_KEY")
    keys = tuple(
        _signing_key(token_format, setting, raw)
        for setting, raw in [
            (signing_key_setting, reader.required("AUTH_SIGNING_KEY", fallback="WEBSITE_AUTH_SIGNING_KEY")),
            *(("AUTH_PREVIOUS_SIGNING_KEYS", raw) for raw in reader.listed("AUTH_PREVIOUS_SIGNING_KEYS")),
        ]
    )
    if token_format is TokenFormat.ZUMO:
        default_issuer, default_audience = ZUMO_ISSUER, "Custom"
    else:
        hostname = reader.optional("WEBSITE_HOSTNAME")
        default_issuer = default_audience = f"https://{hostname}/" if hostname else ZUMO_ISSUER
    lifetime = timedelta(
        seconds=reader.integer(
            "AUTH_TOKEN_LIFETIME_SECONDS", default=2_592_000, minimum=60, maximum=_MAX_LIFETIME_SECONDS
        )
    )
    return TokenSettings(
        format=token_format,
        keys=keys,
        issuer=reader.optional("AUTH_TOKEN_ISSUER") or default_issuer,
        audience=reader.optional("AUTH_TOKEN_AUDIENCE") or default_audience,
        lifetime=lifetime,
    )


def _signing_key(token_format: TokenFormat, setting: str, raw: str) -> bytes:
    if token_format is TokenFormat.ZUMO:
        if len(raw.encode("utf-8")) < MIN_KEY_BYTES:
            raise SettingError(setting, f"is shorter than {MIN_KEY_BYTES} bytes")
        return zumo_signing_key(raw)
    try:
        key = appservice_signing_key(raw)
    except ValueError:
        raise SettingError(
            setting, "is not a hex string (required by AUTH_TOKEN_FORMAT=appservice)"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise SettingError(setting, f"is shorter than {MIN_KEY_BYTES} bytes ({2 * MIN_KEY_BYTES} hex digits)")
    return key


def legacy_token_settings(reader: Reader) -> LegacyTokenSettings | None:
    """``AUTH_LEGACY_MASTER_KEY`` and ``AUTH_LEGACY_MAX_AGE_DAYS`` (``None``: no legacy tokens)."""
    master_key = reader.optional("AUTH_LEGACY_MASTER_KEY")
    max_age_days = reader.integer(
        "AUTH_LEGACY_MAX_AGE_DAYS", default=30, minimum=1, maximum=_MAX_LEGACY_AGE_DAYS
    )
    if master_key is None:
        return None
    return LegacyTokenSettings.from_master_key(master_key, timedelta(days=max_age_days))

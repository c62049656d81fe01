"""Second-factor settings (``AUTH_MFA_*``, ``AUTH_ENCRYPTION_KEY``, ``AUTH_PREVIOUS_ENCRYPTION_KEYS``).

The types and their parsing: the encryption keys as 32-byte values (from 64 hex
digits each), which :mod:`shared.mfa.encryption` seals and opens secrets with.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from shared.errors import SettingError
from shared.settings.mail import MailSettings
from shared.settings.reader import Reader

__all__ = ["KEY_BYTES", "EncryptionKeys", "MfaSettings", "mfa_settings"]

KEY_BYTES = 32
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class EncryptionKeys:
    """The current key (which seals) and the previous keys (which only open), 32 bytes each."""

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if any(len(key) != KEY_BYTES for key in (self.current, *self.previous)):
            raise ValueError(f"every encryption key must be {KEY_BYTES} bytes")

    @classmethod
    def from_hex(cls, current: str, previous: Sequence[str] = ()) -> EncryptionKeys:
        """Build the keys from their settings: each exactly 64 hex digits (around it, whitespace is ignored).

        :raises ValueError: a value is not 64 hex digits; the message says which
            (``AUTH_ENCRYPTION_KEY`` or the position in ``AUTH_PREVIOUS_ENCRYPTION_KEYS``),
            never the value.
        :raises TypeError: ``previous`` is a single string rather than a sequence of them.
        """
        if isinstance(previous, str):
            raise TypeError("previous keys must be a sequence of strings, not one string")
        return cls(
            current=_key_from_hex(current, "the current encryption key (AUTH_ENCRYPTION_KEY)"),
            previous=tuple(
                _key_from_hex(value, f"previous encryption key {number} (AUTH_PREVIOUS_ENCRYPTION_KEYS)")
                for number, value in enumerate(previous, start=1)
            ),
        )


@dataclass(frozen=True, slots=True)
class MfaSettings:
    """The second factor: the name authenticator apps show, the challenge's life, the encryption keys.

    A missing or malformed ``AUTH_ENCRYPTION_KEY`` does not stop the service:
    it is kept as ``key_problem`` and raised by :meth:`keys`, so only what
    needs the key (the second-factor routes, login of accounts that have one)
    fails closed, naming the setting.
    """

    issuer: str = "Mobile app"
    challenge_lifetime: timedelta = timedelta(seconds=300)
    encryption: EncryptionKeys | None = field(default=None, repr=False)
    key_problem: SettingError | None = None

    def keys(self) -> EncryptionKeys:
        """:raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed."""
        if self.encryption is None:
            problem = self.key_problem or SettingError("AUTH_ENCRYPTION_KEY", "is not set")
            raise SettingError(problem.setting, problem.problem)
        return self.encryption


def mfa_settings(reader: Reader) -> MfaSettings:
    """``AUTH_MFA_*`` and the encryption keys (kept as ``key_problem`` when they are bad)."""
    lifetime = reader.integer("AUTH_MFA_CHALLENGE_SECONDS", default=300, minimum=5, maximum=3600)
    issuer = reader.optional("AUTH_MFA_ISSUER") or reader.optional("AUTH_APP_NAME") or MailSettings().app_name
    if ":" in issuer:
        raise SettingError("AUTH_MFA_ISSUER", "must not contain a colon (authenticator apps split on it)")
    settings = MfaSettings(issuer=issuer, challenge_lifetime=timedelta(seconds=lifetime))
    try:
        current = reader.optional("AUTH_ENCRYPTION_KEY")
        if current is None:
            raise SettingError("AUTH_ENCRYPTION_KEY", "is not set (the second factor needs it)")
        previous = reader.listed("AUTH_PREVIOUS_ENCRYPTION_KEYS")
        try:
            keys = EncryptionKeys.from_hex(current, previous)
        except ValueError as error:
            setting = "AUTH_PREVIOUS_ENCRYPTION_KEYS" if "PREVIOUS" in str(error) else "AUTH_ENCRYPTION_KEY"
            raise SettingError(setting, "is not 64 hex digits (32 bytes)") from None
    except SettingError as problem:
        return dataclasses.replace(settings, key_problem=problem)
    return dataclasses.replace(settings, encryption=keys)


def _key_from_hex(value: str, name: str) -> bytes:
    candidate = value.strip()
    if not _HEX_KEY.fullmatch(candidate):
        raise ValueError(f"{name} must be exactly 64 hex digits ({KEY_BYTES} bytes)")
    return bytes.fromhex(candidate)

"""App settings: read from the environment once, validated, and kept frozen.

Azure Functions exposes app settings (and ``local.settings.json`` ``Values``
under ``func start``) as environment variables. :func:`get_settings` parses them
on first use and caches the result for the life of the process; a bad setting
raises :class:`~shared.errors.SettingError` naming the setting, every time, so
the service fails closed instead of issuing tokens with a weak or empty key.

One module per concern holds its settings types and their parsing
(:mod:`~shared.settings.tokens`, :mod:`~shared.settings.storage`,
:mod:`~shared.settings.passwords`, :mod:`~shared.settings.throttling`,
:mod:`~shared.settings.sessions`, :mod:`~shared.settings.mail`,
:mod:`~shared.settings.mfa`, :mod:`~shared.settings.cleanup`, :mod:`~shared.settings.signing`,
:mod:`~shared.settings.passkeys`), all read
through one :class:`~shared.settings.reader.Reader`. The package imports
nothing of ours but :mod:`shared.errors`, so every concern can import its
settings from here without a cycle.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.errors import SettingError
from shared.settings.cleanup import CLEANUP_SCHEDULE_SETTING, CleanupSettings, cleanup_settings
from shared.settings.mail import MailSettings, mail_settings
from shared.settings.mfa import MfaSettings, mfa_settings
from shared.settings.passkeys import PasskeySettings, parse_passkey_settings
from shared.settings.passwords import Argon2Parameters, PasswordPolicy, argon2_parameters, password_policy
from shared.settings.reader import KEY_VAULT_REFERENCE_PREFIX, Reader
from shared.settings.sessions import max_sessions, session_idle, session_max_age
from shared.settings.signing import SigningSettings, load_signing_settings
from shared.settings.storage import (
    MAX_STORAGE_TIMEOUT_SECONDS,
    StorageSettings,
    load_storage_settings,
    storage_settings,
)
from shared.settings.throttling import AddressLimits, LockoutPolicy, address_limits, lockout_policy
from shared.settings.tokens import (
    MIN_KEY_BYTES,
    LegacyTokenSettings,
    TokenSettings,
    legacy_token_settings,
    token_settings,
)

__all__ = [
    "CLEANUP_SCHEDULE_SETTING",
    "KEY_VAULT_REFERENCE_PREFIX",
    "MAX_STORAGE_TIMEOUT_SECONDS",
    "MIN_KEY_BYTES",
    "CleanupSettings",
    "MfaSettings",
    "Settings",
    "StorageSettings",
    "get_settings",
    "load_settings",
    "load_storage_settings",
    "reset_settings",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service, validated."""

    tokens: TokenSettings
    storage: StorageSettings
    password_policy: PasswordPolicy
    argon2: Argon2Parameters
    legacy_tokens: LegacyTokenSettings | None = None
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    address_limits: AddressLimits = field(default_factory=AddressLimits)
    #: How long a session may be refreshed after the user last gave a password (None: forever).
    session_max_age: timedelta | None = timedelta(days=90)
    mail: MailSettings = field(default_factory=MailSettings)
    mfa: MfaSettings = field(default_factory=MfaSettings)
    #: ``AUTH_SESSION_IDLE_SECONDS``: a session unused for longer ends (None: never).
    session_idle: timedelta | None = None
    #: ``AUTH_MAX_SESSIONS``: beyond it, the least recently used session ends.
    max_sessions: int = 50
    cleanup: CleanupSettings = field(default_factory=CleanupSettings)
    #: Signing keys, the key set's caching, the refresh-token grace (:mod:`shared.settings.signing`).
    signing: SigningSettings = field(default_factory=SigningSettings)
    #: ``AUTH_PASSKEY_*`` (:mod:`shared.settings.passkeys`); ``None`` while ``AUTH_PASSKEY_RP_ID`` is unset.
    passkeys: PasskeySettings | None = None


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse and validate settings from ``environ``.

    :raises SettingError: the first setting that is missing or invalid.
    """
    reader = Reader(environ)
    signing = load_signing_settings(reader)
    return Settings(
        tokens=dataclasses.replace(token_settings(reader), signing_keys=signing.keys),
        signing=signing,
        storage=storage_settings(reader),
        password_policy=password_policy(reader),
        argon2=argon2_parameters(reader),
        legacy_tokens=legacy_token_settings(reader),
        lockout=lockout_policy(reader),
        address_limits=address_limits(reader),
        session_max_age=session_max_age(reader),
        mail=mail_settings(reader),
        mfa=mfa_settings(reader),
        session_idle=session_idle(reader),
        max_sessions=max_sessions(reader),
        cleanup=cleanup_settings(reader),
        passkeys=parse_passkey_settings(
            reader, app_name=reader.optional("AUTH_APP_NAME") or MailSettings().app_name
        ),
    )


def get_settings() -> Settings:
    """Return the process's settings, parsing ``os.environ`` on first use.

    :raises SettingError: on every call while a setting is bad (logged once).
    """
    loaded = _load_from_environment()
    if isinstance(loaded, SettingError):
        raise SettingError(loaded.setting, loaded.problem)
    return loaded


def reset_settings() -> None:
    """Forget the cached settings so the next call re-reads the environment (tests, reloads)."""
    _load_from_environment.cache_clear()


@functools.cache
def _load_from_environment() -> Settings | SettingError:
    try:
        return load_settings(os.environ)
    except SettingError as error:
        logger.error("Refusing to serve: %s", error)
        return error

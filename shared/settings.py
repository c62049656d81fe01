"""App settings: read from the environment once, validated, and kept frozen.

Azure Functions exposes app settings (and ``local.settings.json`` ``Values``
under ``func start``) as environment variables. :func:`get_settings` parses them
on first use and caches the result for the life of the process; a bad setting
raises :class:`~shared.errors.SettingError` naming the setting, every time, so
the service fails closed instead of issuing tokens with a weak or empty key.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from shared.accounts.emails import normalize_email
from shared.accounts.mobile_services import LegacyTokenSettings
from shared.accounts.passwords import Argon2Parameters, PasswordPolicy
from shared.errors import InvalidRequest, SettingError
from shared.mail.config import (
    DEFAULT_QUEUE_NAME,
    AcsSettings,
    MailSettings,
    QueueSettings,
    SmtpSecurity,
    SmtpSettings,
)
from shared.mfa.encryption import EncryptionKeys
from shared.passkeys.config import PasskeySettings, parse_passkey_settings
from shared.throttling.lockout import AddressLimits, LockoutPolicy, RateLimit
from shared.tokens.access_tokens import (
    ZUMO_ISSUER,
    TokenFormat,
    TokenSettings,
    appservice_signing_key,
    zumo_signing_key,
)

__all__ = [
    "CLEANUP_SCHEDULE_SETTING",
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
_Choice = TypeVar("_Choice", bound=StrEnum)

MIN_KEY_BYTES = 32
KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_MAX_PASSWORD_LENGTH_LIMIT = 4096
_MAX_LIFETIME_SECONDS = 365 * 86_400
_MAX_LEGACY_AGE_DAYS = 3650
_MAX_TRUSTED_PROXIES = 10
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,54}[a-z0-9]")  # leaves room for "-poison"
_MIN_CODE_LIFETIME, _MAX_CODE_LIFETIME = 60, 3600
_MIN_IDLE_SECONDS = 4
_MAX_UNVERIFIED_DAYS = 3650
#: When ``cleanup`` runs (NCRONTAB, six fields): read by the Functions host from
#: ``cleanup/function.json`` (``%AUTH_CLEANUP_SCHEDULE%``), never by this code. The host
#: reports the function in error while it is unset, so every settings source sets it.
CLEANUP_SCHEDULE_SETTING = "AUTH_CLEANUP_SCHEDULE"
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where accounts are stored, and how the service signs in to that storage.

    Exactly one of ``endpoint`` (a managed identity through
    ``DefaultAzureCredential``, the production default) and
    ``connection_string`` (local development and Azurite) is set.
    """

    table_name: str
    connection_string: str | None = field(default=None, repr=False)
    endpoint: str | None = None

    @property
    def uses_identity(self) -> bool:
        """Whether the client signs in with an Azure identity rather than an account key."""
        return self.endpoint is not None


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


@dataclass(frozen=True, slots=True)
class CleanupSettings:
    """The scheduled cleanup (:mod:`shared.operations.cleanup`), on ``AUTH_CLEANUP_SCHEDULE``.

    ``unverified_max_age`` (``AUTH_UNVERIFIED_MAX_DAYS``): under
    ``AUTH_REQUIRE_VERIFIED_EMAIL``, an account that registered under it and
    whose email is still not verified this long after is deleted, freeing the email.
    """

    unverified_max_age: timedelta = timedelta(days=7)


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
    #: ``AUTH_PASSKEY_*`` (:mod:`shared.passkeys.config`); ``None`` while ``AUTH_PASSKEY_RP_ID`` is unset.
    passkeys: PasskeySettings | None = None


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse and validate settings from ``environ``.

    :raises SettingError: the first setting that is missing or invalid.
    """
    reader = _Reader(environ)
    token_format = reader.choice("AUTH_TOKEN_FORMAT", TokenFormat, default=TokenFormat.APPSERVICE)
    return Settings(
        tokens=_token_settings(reader, token_format),
        storage=_storage_settings(reader),
        password_policy=_password_policy(reader),
        argon2=_argon2_parameters(reader),
        legacy_tokens=_legacy_token_settings(reader),
        lockout=_lockout_policy(reader),
        address_limits=_address_limits(reader),
        session_max_age=_session_max_age(reader),
        mail=_mail_settings(reader),
        mfa=_mfa_settings(reader),
        session_idle=_session_idle(reader),
        max_sessions=reader.integer("AUTH_MAX_SESSIONS", default=50, minimum=1, maximum=200),
        cleanup=_cleanup_settings(reader),
        passkeys=parse_passkey_settings(
            reader.optional, app_name=reader.optional("AUTH_APP_NAME") or MailSettings().app_name
        ),
    )


def _cleanup_settings(reader: _Reader) -> CleanupSettings:
    days = reader.integer("AUTH_UNVERIFIED_MAX_DAYS", default=7, minimum=1, maximum=_MAX_UNVERIFIED_DAYS)
    return CleanupSettings(unverified_max_age=timedelta(days=days))


def _session_idle(reader: _Reader) -> timedelta | None:
    seconds = reader.integer("AUTH_SESSION_IDLE_SECONDS", default=0, minimum=0, maximum=_MAX_LIFETIME_SECONDS)
    if 0 < seconds < _MIN_IDLE_SECONDS:
        raise SettingError("AUTH_SESSION_IDLE_SECONDS", f"must be 0 (off) or at least {_MIN_IDLE_SECONDS}")
    return timedelta(seconds=seconds) if seconds else None


def _mfa_settings(reader: _Reader) -> MfaSettings:
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


def _mail_settings(reader: _Reader) -> MailSettings:
    defaults = MailSettings()
    smtp_host = reader.optional("AUTH_MAIL_SMTP_HOST")
    acs_endpoint = reader.optional("AUTH_MAIL_ACS_ENDPOINT")
    transport: SmtpSettings | AcsSettings | None = None
    if smtp_host is not None and acs_endpoint is not None:
        raise SettingError(
            "AUTH_MAIL_ACS_ENDPOINT", "is set beside AUTH_MAIL_SMTP_HOST: choose one transport"
        )
    if smtp_host is not None:
        transport = SmtpSettings(
            host=smtp_host,
            port=reader.integer("AUTH_MAIL_SMTP_PORT", default=587, minimum=1, maximum=65_535),
            security=reader.choice("AUTH_MAIL_SMTP_SECURITY", SmtpSecurity, default=SmtpSecurity.STARTTLS),
            username=reader.optional("AUTH_MAIL_SMTP_USERNAME"),
            password=reader.optional("AUTH_MAIL_SMTP_PASSWORD"),
        )
    elif acs_endpoint is not None:
        transport = AcsSettings(endpoint=reader.url("AUTH_MAIL_ACS_ENDPOINT", acs_endpoint).rstrip("/"))
    sender = reader.optional("AUTH_MAIL_FROM")
    if transport is not None:
        if sender is None:
            raise SettingError("AUTH_MAIL_FROM", "is not set (a mail transport is configured)")
        reader.email("AUTH_MAIL_FROM", sender)
    require_verified = reader.boolean("AUTH_REQUIRE_VERIFIED_EMAIL", default=defaults.require_verified)
    if require_verified and transport is None:
        raise SettingError(
            "AUTH_REQUIRE_VERIFIED_EMAIL",
            "is true but no mail transport is configured (AUTH_MAIL_SMTP_HOST or AUTH_MAIL_ACS_ENDPOINT)",
        )
    templates = reader.optional("AUTH_MAIL_TEMPLATES")
    if templates is not None and not Path(templates).is_dir():
        raise SettingError("AUTH_MAIL_TEMPLATES", "is not a folder")
    public_base_url = reader.optional("AUTH_PUBLIC_BASE_URL")
    app_link_base = reader.optional("AUTH_APP_LINK_BASE")
    return MailSettings(
        queue=_queue_settings(reader, required=transport is not None),
        transport=transport,
        sender=sender,
        app_name=reader.optional("AUTH_APP_NAME") or defaults.app_name,
        templates=Path(templates) if templates else None,
        limit=reader.rate("AUTH_MAIL_LIMIT", default=defaults.limit),
        code_lifetime=timedelta(
            seconds=reader.integer(
                "AUTH_CODE_LIFETIME_SECONDS",
                default=int(defaults.code_lifetime.total_seconds()),
                minimum=_MIN_CODE_LIFETIME,
                maximum=_MAX_CODE_LIFETIME,
            )
        ),
        public_base_url=reader.url("AUTH_PUBLIC_BASE_URL", public_base_url).rstrip("/")
        if public_base_url
        else None,
        app_link_base=reader.url("AUTH_APP_LINK_BASE", app_link_base, any_scheme=True)
        if app_link_base
        else None,
        require_verified=require_verified,
    )


def _queue_settings(reader: _Reader, *, required: bool) -> QueueSettings:
    """The mail queue, in the storage account of ``AzureWebJobsStorage`` (as the queue trigger finds it).

    Like the Functions host: a connection string, or the identity-based
    ``AzureWebJobsStorage__queueServiceUri`` / ``AzureWebJobsStorage__accountName``.
    """
    name = reader.matching("AUTH_MAIL_QUEUE", _QUEUE_NAME, default=DEFAULT_QUEUE_NAME)
    connection_string = reader.optional("AzureWebJobsStorage")
    if connection_string is not None:
        return QueueSettings(name=name, connection_string=connection_string)
    service_uri = reader.optional("AzureWebJobsStorage__queueServiceUri")
    if service_uri is not None:
        return QueueSettings(
            name=name, endpoint=reader.url("AzureWebJobsStorage__queueServiceUri", service_uri)
        )
    account = reader.optional("AzureWebJobsStorage__accountName")
    if account is not None:
        return QueueSettings(name=name, endpoint=f"https://{account}.queue.core.windows.net")
    if required:
        raise SettingError("AzureWebJobsStorage", "is not set (the mail queue lives in its storage account)")
    return QueueSettings(name=name)


def _session_max_age(reader: _Reader) -> timedelta | None:
    seconds = reader.integer("AUTH_SESSION_MAX_SECONDS", default=7_776_000, minimum=0)
    if 0 < seconds < 60:
        raise SettingError("AUTH_SESSION_MAX_SECONDS", "must be 0 (no limit) or at least 60")
    return timedelta(seconds=seconds) if seconds else None


def _lockout_policy(reader: _Reader) -> LockoutPolicy:
    base = reader.integer("AUTH_LOCKOUT_BASE_SECONDS", default=1, minimum=1)
    maximum = reader.integer("AUTH_LOCKOUT_MAX_SECONDS", default=900, minimum=base)
    return LockoutPolicy(
        threshold=reader.integer("AUTH_LOCKOUT_THRESHOLD", default=5, minimum=0),
        base=timedelta(seconds=base),
        maximum=timedelta(seconds=maximum),
    )


def _address_limits(reader: _Reader) -> AddressLimits:
    defaults = AddressLimits()
    return AddressLimits(
        register=reader.rate("AUTH_RATE_LIMIT_REGISTER", default=defaults.register),
        login=reader.rate("AUTH_RATE_LIMIT_LOGIN", default=defaults.login),
        trusted_proxies=reader.integer(
            "AUTH_TRUSTED_PROXY_COUNT",
            default=defaults.trusted_proxies,
            minimum=0,
            maximum=_MAX_TRUSTED_PROXIES,
        ),
        fail_open=reader.boolean("AUTH_RATE_LIMIT_FAIL_OPEN", default=defaults.fail_open),
        mail=reader.rate("AUTH_RATE_LIMIT_MAIL", default=defaults.mail),
    )


def load_storage_settings(environ: Mapping[str, str]) -> StorageSettings:
    """Parse only where accounts are stored (for tools that issue no tokens).

    :raises SettingError: the storage settings are missing or invalid.
    """
    return _storage_settings(_Reader(environ))


def _storage_settings(reader: _Reader) -> StorageSettings:
    table_name = reader.matching("ACCOUNTS_TABLE", _TABLE_NAME, default="Accounts")
    endpoint = reader.optional("ACCOUNTS_TABLE_ENDPOINT")
    if endpoint is not None:
        parsed = urlsplit(endpoint)
        local = parsed.hostname in ("localhost", "127.0.0.1")
        if (
            parsed.scheme not in ("https", "http")
            or not parsed.hostname
            or (parsed.scheme == "http" and not local)
        ):
            raise SettingError("ACCOUNTS_TABLE_ENDPOINT", "is not an https:// URL of a Table service")
        return StorageSettings(table_name=table_name, endpoint=endpoint.rstrip("/"))
    connection_string = reader.required("ACCOUNTS_STORAGE_CONNECTION", fallback="AzureWebJobsStorage")
    return StorageSettings(table_name=table_name, connection_string=connection_string)


def _legacy_token_settings(reader: _Reader) -> LegacyTokenSettings | None:
    master_key = reader.optional("AUTH_LEGACY_MASTER_KEY")
    max_age_days = reader.integer(
        "AUTH_LEGACY_MAX_AGE_DAYS", default=30, minimum=1, maximum=_MAX_LEGACY_AGE_DAYS
    )
    if master_key is None:
        return None
    return LegacyTokenSettings.from_master_key(master_key, timedelta(days=max_age_days))


def _token_settings(reader: _Reader, token_format: TokenFormat) -> TokenSettings:
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


def _password_policy(reader: _Reader) -> PasswordPolicy:
    minimum = reader.integer("AUTH_PASSWORD_MIN_LENGTH", default=8, minimum=8)
    maximum = reader.integer(
        "AUTH_PASSWORD_MAX_LENGTH", default=256, minimum=minimum, maximum=_MAX_PASSWORD_LENGTH_LIMIT
    )
    words = tuple(reader.listed("AUTH_PASSWORD_CONTEXT_WORDS"))
    return PasswordPolicy(min_length=minimum, max_length=maximum, context_words=words)


def _argon2_parameters(reader: _Reader) -> Argon2Parameters:
    parameters = Argon2Parameters(
        memory_kib=reader.integer("AUTH_ARGON2_MEMORY_KIB", default=19_456, minimum=7_168),
        time_cost=reader.integer("AUTH_ARGON2_TIME_COST", default=2, minimum=1),
        parallelism=reader.integer("AUTH_ARGON2_PARALLELISM", default=1, minimum=1),
    )
    if not parameters.meets_owasp_minimum():
        raise SettingError("AUTH_ARGON2_MEMORY_KIB", "and AUTH_ARGON2_TIME_COST are below the OWASP minimum")
    return parameters


class _Reader:
    """Reads raw values, treating empty as unset and refusing unresolved Key Vault references."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        if value.startswith(KEY_VAULT_REFERENCE_PREFIX):
            raise SettingError(
                name, "is an unresolved Key Vault reference (check the app's identity and access)"
            )
        return value or None

    def name_in_use(self, name: str, *, fallback: str) -> str:
        return name if self.optional(name) is not None else fallback

    def required(self, name: str, *, fallback: str) -> str:
        value = self.optional(name) or self.optional(fallback)
        if value is None:
            raise SettingError(name, f"is not set (nor is {fallback})")
        return value

    def listed(self, name: str) -> list[str]:
        value = self.optional(name)
        return [item.strip() for item in value.split(",") if item.strip()] if value else []

    def choice(self, name: str, kind: Callable[[str], _Choice], *, default: _Choice) -> _Choice:
        value = self.optional(name)
        if value is None:
            return default
        try:
            return kind(value.lower())
        except ValueError:
            raise SettingError(name, f"has an unknown value {value!r}") from None

    def integer(self, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingError(name, "is not a whole number") from None
        if number < minimum:
            raise SettingError(name, f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise SettingError(name, f"must be at most {maximum}")
        return number

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() not in _BOOLEANS:
            raise SettingError(name, "is not true or false")
        return _BOOLEANS[value.lower()]

    def rate(self, name: str, *, default: RateLimit) -> RateLimit:
        value = self.optional(name)
        if value is None:
            return default
        try:
            return RateLimit.parse(value)
        except ValueError:
            raise SettingError(name, "is not COUNT/SECONDS (such as 30/300) or 0") from None

    def url(self, name: str, value: str, *, any_scheme: bool = False) -> str:
        """Check that ``value`` is an absolute https:// URL (http:// on loopback; any scheme if allowed)."""
        parsed = urlsplit(value)
        local = parsed.hostname in ("localhost", "127.0.0.1")
        web = parsed.scheme == "https" or (parsed.scheme == "http" and local)
        if not parsed.scheme or not (parsed.hostname or any_scheme) or not (web or any_scheme):
            raise SettingError(name, "is not an absolute https:// URL")
        if parsed.query or parsed.fragment:
            raise SettingError(name, "must not have a query or a fragment")
        return value

    def email(self, name: str, value: str) -> str:
        try:
            return normalize_email(value)
        except InvalidRequest:
            raise SettingError(name, "is not a valid email address") from None

    def matching(self, name: str, pattern: re.Pattern[str], *, default: str) -> str:
        value = self.optional(name) or default
        if not pattern.fullmatch(value):
            raise SettingError(name, f"is not a valid value ({value!r})")
        return value


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

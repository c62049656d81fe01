"""Mail settings: the queue, the transport, the sender, the limits and the links; the kinds of mail.

Parsed from app settings (``AUTH_MAIL_*``, ``AUTH_CODE_LIFETIME_SECONDS``,
``AUTH_PUBLIC_BASE_URL``, ``AUTH_APP_LINK_BASE``, ``AUTH_REQUIRE_VERIFIED_EMAIL``,
``AUTH_MAIL_DELAY_SECONDS``, and the queue's ``AzureWebJobsStorage``) by :func:`mail_settings`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from shared.errors import SettingError
from shared.settings.reader import Reader
from shared.settings.storage import DEFAULT_STORAGE_TIMEOUT_SECONDS, storage_timeout
from shared.settings.throttling import RateLimit, rate

__all__ = [
    "DEFAULT_QUEUE_NAME",
    "MAX_MAIL_DELAY_SECONDS",
    "AcsSettings",
    "MailDelay",
    "MailKind",
    "MailSettings",
    "QueueSettings",
    "SmtpSecurity",
    "SmtpSettings",
    "mail_settings",
]

DEFAULT_QUEUE_NAME = "auth-mail"
_QUEUE_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,54}[a-z0-9]")  # leaves room for "-poison"
_MIN_CODE_LIFETIME, _MAX_CODE_LIFETIME = 60, 3600
#: RFC 5321 path limit (as :data:`shared.accounts.emails.MAX_EMAIL_LENGTH`).
_MAX_EMAIL_LENGTH = 254
#: The longest ``AUTH_MAIL_DELAY_SECONDS`` accepted: mail that proves an address should not wait long.
MAX_MAIL_DELAY_SECONDS = 60


class MailKind(StrEnum):
    """Every mail the service sends; each has a template folder of the same name."""

    #: A code (and link) to reset a forgotten password; to the account's address.
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a name, not a password
    #: A code (and link) that proves the account's address.
    VERIFY_EMAIL = "verify_email"
    #: A code that proves a new address the user wants to move the account to; to the new address.
    EMAIL_CHANGE = "email_change"
    #: To a new address that already has an account, instead of an email-change code.
    EMAIL_IN_USE = "email_in_use"
    #: To the owner of an address someone tried to register again (verified registration only).
    SIGNUP_EXISTING = "signup_existing"
    #: Notice: the password was changed or reset.
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a name, not a password
    #: Notice to the old address: the account's email was changed.
    EMAIL_CHANGED = "email_changed"
    #: Notice: the second factor was turned off.
    MFA_DISABLED = "mfa_disabled"
    #: Notice: a recovery code was used to sign in; how many are left.
    RECOVERY_CODE_USED = "recovery_code_used"
    #: Notice: a new set of recovery codes replaced the old one.
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    #: Notice: a passkey was added to the account.
    PASSKEY_ADDED = "passkey_added"
    #: Notice: a passkey was removed from the account.
    PASSKEY_REMOVED = "passkey_removed"

    @property
    def is_notice(self) -> bool:
        """A notice tells the owner of an account that something happened; it carries no code."""
        return self in (
            MailKind.PASSWORD_CHANGED,
            MailKind.EMAIL_CHANGED,
            MailKind.MFA_DISABLED,
            MailKind.RECOVERY_CODE_USED,
            MailKind.RECOVERY_CODES_REGENERATED,
            MailKind.PASSKEY_ADDED,
            MailKind.PASSKEY_REMOVED,
        )


class SmtpSecurity(StrEnum):
    """``AUTH_MAIL_SMTP_SECURITY``: how the SMTP connection is protected."""

    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587)
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # no protection: only for a local catcher


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """An SMTP relay (``AUTH_MAIL_SMTP_*``)."""

    host: str
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AcsSettings:
    """Azure Communication Services Email, reached with the app's identity (``AUTH_MAIL_ACS_ENDPOINT``)."""

    endpoint: str


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The Storage queue between the HTTP functions and the mail function.

    It lives in the storage account of ``AzureWebJobsStorage``: exactly one of
    ``connection_string`` and ``endpoint`` (the queue service URI, reached
    with the app's identity) is set.
    """

    name: str = DEFAULT_QUEUE_NAME
    connection_string: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    #: ``AUTH_STORAGE_TIMEOUT_SECONDS``: the most one call to the queue may take, its retries included.
    timeout_seconds: int = DEFAULT_STORAGE_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class MailDelay:
    """``AUTH_MAIL_DELAY_SECONDS``: a queued mail becomes visible to the mail function after a whole
    number of seconds drawn uniformly from ``minimum`` to ``maximum`` (``0``: at once)."""

    minimum: int = 1
    maximum: int = 5

    @classmethod
    def parse(cls, text: str) -> MailDelay:
        """Parse ``MIN-MAX`` (``1-5``) or one number of seconds (``0``).

        :raises ValueError: anything else, a minimum above the maximum, or more than a minute.
        """
        low, dash, high = text.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(text)
        minimum = int(low)
        maximum = int(high) if dash else minimum
        if minimum > maximum or maximum > MAX_MAIL_DELAY_SECONDS:
            raise ValueError(text)
        return cls(minimum, maximum)

    def draw(self) -> int:
        """Seconds for one message (from :mod:`secrets`: an observer cannot predict them)."""
        return self.minimum + secrets.randbelow(self.maximum - self.minimum + 1)

    def __str__(self) -> str:
        return f"{self.minimum}-{self.maximum}"


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Everything about mail and one-time codes."""

    queue: QueueSettings = field(default_factory=QueueSettings)
    #: ``None``: no transport is configured; mail routes answer ``mail_not_configured``.
    transport: SmtpSettings | AcsSettings | None = None
    #: ``AUTH_MAIL_FROM``; required with a transport.
    sender: str | None = None
    #: ``AUTH_APP_NAME``: the name mails show.
    app_name: str = "Mobile app"
    #: ``AUTH_MAIL_TEMPLATES``: a folder whose files override the built-in templates.
    templates: Path | None = None
    #: ``AUTH_MAIL_LIMIT``: mails of one kind to one address, beyond which they are dropped.
    limit: RateLimit = RateLimit(5, 3600)  # noqa: RUF009 - frozen, so safe to share
    #: ``AUTH_CODE_LIFETIME_SECONDS``.
    code_lifetime: timedelta = timedelta(seconds=600)
    #: ``AUTH_PUBLIC_BASE_URL``: where the bundle's reset and verification pages are served.
    public_base_url: str | None = None
    #: ``AUTH_APP_LINK_BASE``: the app's own universal/app link, used for links instead.
    app_link_base: str | None = None
    #: ``AUTH_REQUIRE_VERIFIED_EMAIL``.
    require_verified: bool = False
    #: ``AUTH_MAIL_DELAY_SECONDS``: how long a queued mail stays invisible, drawn per message.
    delay: MailDelay = MailDelay()

    @property
    def configured(self) -> bool:
        """Whether mail can be sent at all."""
        return self.transport is not None


def mail_settings(reader: Reader) -> MailSettings:
    """Every ``AUTH_MAIL_*`` setting and those mail depends on."""
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
        _check_email("AUTH_MAIL_FROM", sender)
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
        limit=rate(reader, "AUTH_MAIL_LIMIT", default=defaults.limit),
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
        delay=reader.parsed(
            "AUTH_MAIL_DELAY_SECONDS",
            MailDelay.parse,
            default=defaults.delay,
            problem=f"is not MIN-MAX seconds (such as 1-5) or one number, at most {MAX_MAIL_DELAY_SECONDS}",
        ),
    )


def _queue_settings(reader: Reader, *, required: bool) -> QueueSettings:
    """The mail queue, in the storage account of ``AzureWebJobsStorage`` (as the queue trigger finds it).

    Like the Functions host: a connection string, or the identity-based
    ``AzureWebJobsStorage__queueServiceUri`` / ``AzureWebJobsStorage__accountName``.
    """
    name = reader.matching("AUTH_MAIL_QUEUE", _QUEUE_NAME, default=DEFAULT_QUEUE_NAME)
    timeout = storage_timeout(reader)
    connection_string = reader.optional("AzureWebJobsStorage")
    if connection_string is not None:
        return QueueSettings(name=name, connection_string=connection_string, timeout_seconds=timeout)
    service_uri = reader.optional("AzureWebJobsStorage__queueServiceUri")
    if service_uri is not None:
        return QueueSettings(
            name=name,
            endpoint=reader.url("AzureWebJobsStorage__queueServiceUri", service_uri),
            timeout_seconds=timeout,
        )
    account = reader.optional("AzureWebJobsStorage__accountName")
    if account is not None:
        return QueueSettings(
            name=name, endpoint=f"https://{account}.queue.core.windows.net", timeout_seconds=timeout
        )
    if required:
        raise SettingError("AzureWebJobsStorage", "is not set (the mail queue lives in its storage account)")
    return QueueSettings(name=name, timeout_seconds=timeout)


def _check_email(name: str, value: str) -> None:
    """Refuse what :func:`shared.accounts.emails.normalize_email` refuses (syntax only, no DNS)."""
    # Imported on first use, as there: compiling its patterns costs ~20 ms of cold start.
    from email_validator import EmailNotValidError, validate_email  # noqa: PLC0415

    candidate = value.strip()
    try:
        if not candidate or len(candidate) > _MAX_EMAIL_LENGTH:
            raise EmailNotValidError("empty or too long")
        validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        raise SettingError(name, "is not a valid email address") from None

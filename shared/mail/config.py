"""What the mail settings say: the queue, the transport, the sender, the limits and the links.

Parsed from app settings by :mod:`shared.settings` (``AUTH_MAIL_*``,
``AUTH_CODE_LIFETIME_SECONDS``, ``AUTH_PUBLIC_BASE_URL``, ``AUTH_APP_LINK_BASE``,
``AUTH_REQUIRE_VERIFIED_EMAIL``); this module only holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from shared.throttling.lockout import RateLimit

__all__ = [
    "DEFAULT_QUEUE_NAME",
    "AcsSettings",
    "MailKind",
    "MailSettings",
    "QueueSettings",
    "SmtpSecurity",
    "SmtpSettings",
]

DEFAULT_QUEUE_NAME = "auth-mail"


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

    @property
    def configured(self) -> bool:
        """Whether mail can be sent at all."""
        return self.transport is not None

"""Email verification by a mailed code.

Registration queues a verification mail (when mail is configured).
``POST /api/email/verification {"email"}`` (:func:`request_verification`)
queues another, answering 202 the same whether or not the email has an
account or is verified already. ``POST /api/email/verify {"email", "code"}``
(:func:`verify_email`) marks the account verified, using the code up in the
same transaction.
"""

from __future__ import annotations

from shared.accounts.service import AccountService
from shared.events import log_event
from shared.recovery.codes import CodePurpose
from shared.recovery.mailed_codes import check_code, request_mail
from shared.recovery.store import RecoveryStore
from shared.settings.mail import MailKind

__all__ = ["request_verification", "verify_email"]


def request_verification(service: AccountService, email: str, *, forwarded_for: str | None = None) -> None:
    """Queue a verification mail for ``email`` (sent only if it has an unverified account).

    :raises: as :func:`shared.recovery.mailed_codes.request_mail`.
    """
    request_mail(service, MailKind.VERIFY_EMAIL, email, forwarded_for=forwarded_for)
    log_event("email_verification_requested")


def verify_email(service: AccountService, email: str, code: str, *, forwarded_for: str | None = None) -> None:
    """Mark the account of ``email`` verified with the code mailed to it.

    :raises ConflictError: the account changed meanwhile; the code is still good, retry.
    :raises: otherwise as :func:`shared.recovery.mailed_codes.check_code`.
    """
    credentials, checked = check_code(service, email, CodePurpose.VERIFY, code, forwarded_for=forwarded_for)
    RecoveryStore(service.store).mark_verified(credentials, checked.use())
    log_event("email_verified", user_id=credentials.user_id)

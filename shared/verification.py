"""Email verification by a mailed code.

Registration queues a verification mail (when mail is configured).
``POST /api/email/verification {"email"}`` (:func:`request_verification`)
queues another, answering 202 the same whether or not the email has an
account or is verified already. ``POST /api/email/verify {"email", "code"}``
(:func:`verify_email`) marks the account verified, using the code up in the
same transaction.
"""

from __future__ import annotations

from shared.accounts import AccountService
from shared.codes import CodePurpose
from shared.emails import normalize_email
from shared.errors import InvalidCode
from shared.events import log_event
from shared.mail.config import MailKind
from shared.mail.outbox import MailRequest
from shared.rate_limiter import Action

__all__ = ["request_verification", "verify_email"]


def request_verification(service: AccountService, email: str, *, forwarded_for: str | None = None) -> None:
    """Queue a verification mail for ``email`` (sent only if it has an unverified account).

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises TooManyAttempts: too many mail requests from the client's address.
    :raises StorageUnavailable: the queue or the counters could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    service.limiter.admit(Action.MAIL, forwarded_for).wait()
    service.outbox.send(MailRequest(MailKind.VERIFY_EMAIL, normalized))
    log_event("email_verification_requested")


def verify_email(service: AccountService, email: str, code: str, *, forwarded_for: str | None = None) -> None:
    """Mark the account of ``email`` verified with the code mailed to it.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises TooManyAttempts: too many attempts from the client's address (counted as logins:
        a code is a credential, and many users may share a carrier's address).
    :raises InvalidCode: wrong, expired, used, replaced or unknown code, or unknown email.
    :raises ConflictError: the account changed meanwhile; the code is still good, retry.
    :raises StorageUnavailable: storage could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    admission = service.limiter.admit(Action.LOGIN, forwarded_for)
    credentials = service.store.credentials(normalized)
    stored = service.codes.read(normalized, CodePurpose.VERIFY)
    admission.wait()
    user_id = credentials.user_id if credentials else None
    checked = service.codes.check(stored, code, user_id=user_id, address=normalized)
    if credentials is None:  # not reached: a code checks out only for an existing account
        raise InvalidCode("no account")
    service.store.mark_verified(credentials, checked.use())
    log_event("email_verified", user_id=credentials.user_id)

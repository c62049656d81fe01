"""The two halves every flow by mailed code shares: asking for a mail, and checking its code.

:func:`request_mail` is the first request of reset and verification: it
queues a mail for an email and never reads the account, so its answer and its
time are the same for any email. :func:`check_code` is the second: it reads
the account and the code (two point reads for any email) and checks the code,
counting a wrong try.
"""

from __future__ import annotations

from shared.accounts.emails import normalize_email
from shared.accounts.service import AccountService
from shared.accounts.store import Credentials
from shared.errors import InvalidCode
from shared.recovery.codes import CodePurpose, StoredCode
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest
from shared.throttling.rate_limiter import Action

__all__ = ["check_code", "request_mail"]


def request_mail(service: AccountService, kind: MailKind, email: str, *, forwarded_for: str | None) -> None:
    """Queue a mail of ``kind`` for ``email``; the mail function decides whether it goes out.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises TooManyAttempts: too many mail requests from the client's address.
    :raises StorageUnavailable: the queue or the counters could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    service.limiter.admit(Action.MAIL, forwarded_for).wait()
    service.outbox.send(MailRequest(kind, normalized))


def check_code(
    service: AccountService, email: str, purpose: CodePurpose, code: str, *, forwarded_for: str | None
) -> tuple[Credentials, StoredCode]:
    """Return the account of ``email`` and its code of ``purpose``, if ``code`` is that code.

    Attempts count against the client's login limit: a code is a credential,
    and many users may share a carrier's address.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises TooManyAttempts: too many attempts from the client's address.
    :raises InvalidCode: wrong, expired, used, replaced or unknown code, or unknown email.
    :raises StorageUnavailable: storage could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    admission = service.limiter.admit(Action.LOGIN, forwarded_for)
    credentials = service.store.credentials(normalized)
    stored = service.codes.read(normalized, purpose)
    admission.wait()
    user_id = credentials.user_id if credentials else None
    checked = service.codes.check(stored, code, user_id=user_id, address=normalized)
    if credentials is None:  # not reached: a code checks out only for an existing account
        raise InvalidCode("no account")
    return credentials, checked

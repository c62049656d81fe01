"""Password reset by a mailed code: the one place a password changes without the old one.

1. ``POST /api/password/forgot {"email"}``: :func:`request_reset` queues a
   reset mail and answers 202, always the same. It never reads the account:
   the mail function does (:mod:`shared.mail.courier`), so neither the answer
   nor its timing depends on whether the email has an account.
2. ``POST /api/password/reset {"email", "code", "newPassword"}``:
   :func:`reset_password` checks the new password against the policy first (a
   weak one spends no try), then the code, then stores the new hash, uses the
   code up, revokes every token, clears the lockout and marks the email
   verified in one transaction. The answer carries no token.

Any check a reset must pass besides the code (a second factor, a disabled
account) belongs in :func:`reset_password`.
"""

from __future__ import annotations

from shared.accounts import AccountService
from shared.codes import CodePurpose
from shared.emails import normalize_email
from shared.errors import InvalidCode
from shared.events import log_event
from shared.mail.config import MailKind
from shared.mail.outbox import MailRequest
from shared.passwords import check_password_policy
from shared.rate_limiter import Action

__all__ = ["request_reset", "reset_password"]


def request_reset(service: AccountService, email: str, *, forwarded_for: str | None = None) -> None:
    """Queue a reset mail for ``email`` (sent only if it has an account).

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises TooManyAttempts: too many mail requests from the client's address.
    :raises StorageUnavailable: the queue or the counters could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    service.limiter.admit(Action.MAIL, forwarded_for).wait()
    service.outbox.send(MailRequest(MailKind.PASSWORD_RESET, normalized))
    log_event("password_reset_requested")


def reset_password(
    service: AccountService, email: str, code: str, new_password: str, *, forwarded_for: str | None = None
) -> None:
    """Set a new password with a reset code, ending every session of the account.

    Known and unknown emails cost the same: two point reads and a conditional
    write when the code is refused.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the email is not valid.
    :raises WeakPassword: the new password breaks the policy (no try is spent).
    :raises TooManyAttempts: too many attempts from the client's address (counted as logins:
        a code is a credential, and many users may share a carrier's address).
    :raises InvalidCode: wrong, expired, used, replaced or unknown code, or unknown email.
    :raises ConflictError: the account changed meanwhile; the code is still good, retry.
    :raises StorageUnavailable: storage could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(email)
    check_password_policy(service.settings.password_policy, new_password, email=normalized)
    admission = service.limiter.admit(Action.LOGIN, forwarded_for)
    credentials = service.store.credentials(normalized)
    stored = service.codes.read(normalized, CodePurpose.RESET)
    admission.wait()
    user_id = credentials.user_id if credentials else None
    checked = service.codes.check(stored, code, user_id=user_id, address=normalized)
    if credentials is None:  # not reached: a code checks out only for an existing account
        raise InvalidCode("no account")
    service.store.reset_password(credentials, service.hasher.hash(new_password), checked.use())
    log_event("password_reset_completed", user_id=credentials.user_id)
    notice = MailRequest(MailKind.PASSWORD_CHANGED, normalized, user_id=credentials.user_id)
    service.outbox.send_after_change(notice)

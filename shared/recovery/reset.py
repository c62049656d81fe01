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

from shared.accounts.emails import normalize_email
from shared.accounts.passwords import check_password_policy
from shared.accounts.service import AccountService
from shared.events import log_event
from shared.recovery.codes import CodePurpose
from shared.recovery.mailed_codes import check_code, request_mail
from shared.recovery.store import RecoveryStore
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest

__all__ = ["request_reset", "reset_password"]


def request_reset(service: AccountService, email: str, *, forwarded_for: str | None = None) -> None:
    """Queue a reset mail for ``email`` (sent only if it has an account).

    :raises: as :func:`shared.recovery.mailed_codes.request_mail`.
    """
    request_mail(service, MailKind.PASSWORD_RESET, email, forwarded_for=forwarded_for)
    log_event("password_reset_requested")


def reset_password(
    service: AccountService, email: str, code: str, new_password: str, *, forwarded_for: str | None = None
) -> None:
    """Set a new password with a reset code, ending every session of the account.

    :raises WeakPassword: the new password breaks the policy (no try is spent).
    :raises ConflictError: the account changed meanwhile; the code is still good, retry.
    :raises: otherwise as :func:`shared.recovery.mailed_codes.check_code`.
    """
    service.outbox.require()
    check_password_policy(service.settings.password_policy, new_password, email=normalize_email(email))
    credentials, checked = check_code(service, email, CodePurpose.RESET, code, forwarded_for=forwarded_for)
    # A reset proves the mailbox, not the second factor: with one on, its failures keep counting.
    RecoveryStore(service.store).reset_password(
        credentials,
        service.hasher.hash(new_password),
        checked.use(),
        clear_failures=not credentials.mfa_totp,
    )
    log_event("password_reset_completed", user_id=credentials.user_id)
    notice = MailRequest(MailKind.PASSWORD_CHANGED, credentials.email, user_id=credentials.user_id)
    service.outbox.send_after_change(notice)

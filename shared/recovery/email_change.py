"""Changing an account's email: the password, then a code mailed to the new address.

1. ``POST /api/me/email {"password", "newEmail"}`` (:func:`request_change`):
   the password is checked (under the lockout), then 202 always. The mail
   function sends a code to the new address, or, if that address has an
   account, a notice instead; the answer is the same either way.
2. ``POST /api/me/email/confirm {"code"}`` (:func:`confirm_change`): the
   account moves to the new email (verified), using the code up; the old
   address gets a notice. Login then works with the new email only.

The move itself, and how an interrupted one is completed or undone, is
:meth:`shared.accounts.store.AccountStore.move_email`.
"""

from __future__ import annotations

from shared.accounts.emails import normalize_email
from shared.accounts.service import AccountService
from shared.accounts.store import Account, MoveOutcome
from shared.errors import EmailTaken, InvalidRequest, InvalidToken
from shared.events import log_event
from shared.recovery.codes import CodePurpose
from shared.recovery.store import RecoveryStore
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest
from shared.throttling.rate_limiter import Action

__all__ = ["confirm_change", "request_change"]


def request_change(
    service: AccountService,
    account: Account,
    password: str,
    new_email: str,
    *,
    forwarded_for: str | None = None,
) -> None:
    """Check the password and queue the mail to ``new_email``.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidRequest: the new email is not valid, or is the account's email already.
    :raises TooManyAttempts: the account is locked out, or too many mail requests from the client.
    :raises InvalidCredentials: the password is wrong.
    :raises StorageUnavailable: storage or the queue could not be reached.
    """
    service.outbox.require()
    normalized = normalize_email(new_email)
    admission = service.limiter.admit(Action.MAIL, forwarded_for)
    service.check_password(account, password)
    admission.wait()
    account = _settled(service, account)
    if normalized == account.email:
        raise InvalidRequest("This is the account's email already.")
    request = MailRequest(MailKind.EMAIL_CHANGE, account.email, user_id=account.user_id, new_email=normalized)
    service.outbox.send(request)
    log_event("email_change_requested", user_id=account.user_id)


def confirm_change(service: AccountService, account: Account, code: str) -> Account:
    """Move the account to the new email its code was sent to; return the account as it is now.

    :raises MailNotConfigured: no mail transport is configured.
    :raises InvalidCode: wrong, expired, used or replaced code.
    :raises EmailTaken: the new email got an account of its own since the code was sent.
    :raises ConflictError: the account changed meanwhile; retry.
    :raises StorageUnavailable: storage failed part way; retrying completes the change.
    """
    service.outbox.require()
    if account.in_move:  # a change interrupted after its code was used: complete it
        return _settled(service, account)
    stored = service.codes.read(account.email, CodePurpose.EMAIL_CHANGE)
    address = stored.address if stored else ""
    checked = service.codes.check(stored, code, user_id=account.user_id, address=address)
    outcome = RecoveryStore(service.store).move_email(account, checked.address, checked.use())
    if outcome is MoveOutcome.EMAIL_TAKEN:
        log_event("email_change_refused", user_id=account.user_id, reason="email_taken")
        raise EmailTaken()
    log_event("email_changed", user_id=account.user_id)
    notice = MailRequest(
        MailKind.EMAIL_CHANGED, account.email, user_id=account.user_id, new_email=checked.address
    )
    service.outbox.send_after_change(notice)
    return _reread(service, account.user_id)


def _settled(service: AccountService, account: Account) -> Account:
    """``account`` after completing (or undoing) an email change left half done."""
    old, new = account.moved_from or account.email, account.moving_to or account.email
    if old == new:
        return account
    if service.store.resume_move(account.user_id, old, new) is MoveOutcome.MOVED and account.moving_to:
        # Resumed from before the commit point: the old address has not been told yet.
        log_event("email_changed", user_id=account.user_id, resumed=True)
        _notify_old_address(service, account, new)
    return _reread(service, account.user_id)


def _notify_old_address(service: AccountService, account: Account, new_email: str) -> None:
    notice = MailRequest(MailKind.EMAIL_CHANGED, account.email, user_id=account.user_id, new_email=new_email)
    service.outbox.send_after_change(notice)


def _reread(service: AccountService, user_id: str) -> Account:
    account = service.store.account(user_id)
    if account is None:
        raise InvalidToken("account deleted during an email change")
    return account

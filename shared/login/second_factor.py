"""A login's second step: the challenge after the password, and a TOTP or recovery code.

Login with a second factor is two requests: ``POST /api/login`` answers
``403 mfa_required`` with an ``mfaToken`` after the password checked out
(:mod:`shared.login.password`), and ``POST /api/login/mfa`` trades that token
and a code for a session. The token is bound to the account and to one
challenge id stored on the row; a successful second step clears it, so it
works once. Each code tried with a challenge is counted on the row before it
is checked (an ETag-guarded write, so two instances cannot both spend the last
try); after :data:`MAX_CHALLENGE_TRIES` the token is refused even with the
right code, and a fresh login (if the lockout allows) gives a new one. Wrong
codes also count against the email's lockout, which only a completed second
step clears. The checks of a code are :mod:`shared.mfa.auth`'s.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime

from shared.accounts.service import AccountService, Session
from shared.accounts.store import Account
from shared.errors import ConflictError, InvalidCode, InvalidRequest, InvalidToken
from shared.events import log_event
from shared.mfa.auth import accept_code, log_resealed, store_of
from shared.mfa.store import MfaRecord
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest
from shared.tokens.access_tokens import issue_challenge, verify_challenge

__all__ = ["MAX_CHALLENGE_TRIES", "MAX_TRY_WRITES", "issue_challenge_for", "log_in_with_code"]

#: Codes one ``mfaToken`` may try; after that it is refused, right code or not.
MAX_CHALLENGE_TRIES = 5
#: A try that keeps losing ETag races to other requests for the same row gives up after this many reads.
MAX_TRY_WRITES = 20


def issue_challenge_for(service: AccountService, account: Account) -> str:
    """Store a new challenge on the account's second-factor row and return its token.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed (fail closed).
    """
    service.settings.mfa.keys()
    record = store_of(service).mfa_record(account)
    challenge_id = secrets.token_urlsafe(16)
    lifetime = service.settings.mfa.challenge_lifetime
    expires = datetime.now(UTC) + lifetime
    if not store_of(service).save_mfa(
        record, Challenge=challenge_id, ChallengeExpires=expires, ChallengeTries=0
    ):
        raise ConflictError()
    log_event("mfa_challenge_issued", user_id=account.user_id)
    return issue_challenge(service.settings.tokens, account.user_id, challenge_id, lifetime)


def log_in_with_code(
    service: AccountService, mfa_token: str, *, code: str | None, recovery_code: str | None
) -> Session:
    """The second step of a login: the challenge's token and a TOTP or recovery code.

    Each code tried is counted with the challenge first (at most
    :data:`MAX_CHALLENGE_TRIES`); a wrong code also counts against the email's
    lockout, like a wrong password. The right code clears the lockout's
    consecutive count, and re-seals the row under the current key if needed.
    A recovery code sends the owner a notice saying how many are left.

    :raises InvalidToken: the token is forged, expired, used, has spent its
        tries, or the account is gone.
    :raises InvalidRequest: neither or both of ``code`` and ``recovery_code``.
    :raises TooManyAttempts: the email is locked out.
    :raises InvalidCode: the code is wrong, used, or from a step not later than the last used one.
    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    """
    if (code is None) == (recovery_code is None):
        raise InvalidRequest("Send either 'code' or 'recoveryCode'.")
    user_id, challenge_id = verify_challenge(service.settings.tokens, mfa_token)
    keys = service.settings.mfa.keys()
    account = service.store.account(user_id)
    if account is None or account.disabled:
        raise InvalidToken("challenge of a deleted or disabled account")
    record = _live_challenge(store_of(service).mfa_record(account), challenge_id, user_id)
    login = service.refuse_if_locked_out(account.email)
    record = _spend_try(service, record, challenge_id)
    now = datetime.now(UTC)
    changes, amr = accept_code(keys, account, record, code=code, recovery_code=recovery_code, now=now)
    if changes is None:
        log_event(
            "mfa_failed", logging.WARNING, reason="wrong_code", user_id=user_id, tries=record.challenge_tries
        )
        service.count_failure(login, InvalidCode("wrong second factor"))
    changes |= {"Challenge": "", "ChallengeTries": 0}
    left = len(json.loads(str(changes["RecoveryCodes"]))) if "RecoveryCodes" in changes else None
    try:
        store_of(service).change_mfa(
            account, record, changes, recovery_codes_left=left, clear_failures=not login.throttle.is_clear
        )
    except ConflictError:
        # Another request used this challenge or a code first (the row's ETag moved on).
        log_event("mfa_failed", logging.WARNING, reason="replayed", user_id=user_id)
        raise InvalidCode("used concurrently") from None
    log_resealed(changes, user_id)
    log_event("mfa_succeeded", user_id=user_id, method=amr[1])
    if left is not None:
        log_event("recovery_code_used", user_id=user_id, left=left)
        notice = MailRequest(MailKind.RECOVERY_CODE_USED, account.email, user_id=account.user_id)
        service.outbox.send_after_change(notice)
    return service.start_session(account.user_id, account.email, account.session_version, amr)


def _live_challenge(record: MfaRecord, challenge_id: str, user_id: str) -> MfaRecord:
    """``record`` if its challenge is ``challenge_id``, unexpired and with tries left.

    :raises InvalidToken: the challenge was used, replaced, has expired or has spent its tries.
    """
    live = record.challenge_expires is not None and record.challenge_expires > datetime.now(UTC)
    if record.challenge != challenge_id or not live or record.secret is None:
        raise InvalidToken("challenge used, replaced or expired")
    if record.challenge_tries >= MAX_CHALLENGE_TRIES:
        log_event("mfa_failed", logging.WARNING, reason="challenge_spent", user_id=user_id)
        raise InvalidToken("challenge spent its tries")
    return record


def _spend_try(service: AccountService, record: MfaRecord, challenge_id: str) -> MfaRecord:
    """Count one try against the challenge before its code is checked; return the row as written.

    ``record`` is the row as read for this request. The write is guarded by its
    ETag: a writer that loses reads again, so concurrent tries (on any instance)
    are all counted and none beyond the last.

    :raises InvalidToken: the challenge is no longer live (see :func:`_live_challenge`), or the row is gone.
    :raises ConflictError: the row kept changing under us.
    """
    store = store_of(service)
    for _ in range(MAX_TRY_WRITES):
        spent = store.spend_challenge_try(record)
        if spent is not None:
            return spent
        again = store.mfa_record_again(record)
        if again is None:
            raise InvalidToken("challenge of a removed second factor")
        record = _live_challenge(again, challenge_id, record.user_id)
    raise ConflictError()

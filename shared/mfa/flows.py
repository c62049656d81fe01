"""The second factor's steps: enrol, confirm, log in with a code, regenerate recovery codes, disable.

Every step that changes the second factor asks for the password again (under
the lockout). A TOTP code is accepted once per account: the last used time
step is stored on the second-factor row, and the write that accepts a code is
guarded by the row's ETag, so the same code sent twice, even to two instances
at once, succeeds once. A recovery code is removed in the same guarded write.

Login with a second factor is two requests: ``POST /api/login`` answers
``403 mfa_required`` with an ``mfaToken`` after the password checked out, and
``POST /api/login/mfa`` trades that token and a code for a session. The token
is bound to the account and to one challenge id stored on the row; a
successful second step clears it, so it works once.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.accounts.service import AccountService, Session
from shared.accounts.store import Account, MfaRecord
from shared.errors import ConflictError, InvalidCode, InvalidRequest, InvalidToken, MfaAlreadyEnabled
from shared.events import log_event
from shared.mail.config import MailKind
from shared.mail.outbox import MailRequest
from shared.mfa import recovery_codes, totp
from shared.mfa.encryption import EncryptionKeys, SecretUnreadable, decrypt, encrypt
from shared.tokens.access_tokens import issue_challenge, verify_challenge

__all__ = [
    "AMR_PASSWORD",
    "AMR_RECOVERY_CODE",
    "AMR_TOTP",
    "Enrolment",
    "check_code",
    "confirm_enrolment",
    "disable",
    "issue_challenge_for",
    "log_in_with_code",
    "regenerate_recovery_codes",
    "start_enrolment",
]

#: ``amr`` of each way of signing in (RFC 8176; "rec" is ours, for a recovery code).
AMR_PASSWORD = ("pwd",)
AMR_TOTP = ("pwd", "otp", "mfa")
AMR_RECOVERY_CODE = ("pwd", "rec", "mfa")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an authenticator app needs, shown once: the secret, its URI and the URI's QR code."""

    secret: str
    otpauth_uri: str
    qr_code: str


def start_enrolment(service: AccountService, account: Account, password: str) -> Enrolment:
    """Check the password and store a new, pending secret (replacing a pending one).

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    :raises MfaAlreadyEnabled: the account has a confirmed authenticator.
    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises TooManyAttempts: the account is locked out.
    """
    keys = service.settings.mfa.keys()
    service.check_password(account, password)
    record = service.store.mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    secret = totp.new_secret()
    sealed = encrypt(keys, secret.encode("ascii"), associated_data=account.user_id.encode("utf-8"))
    if not service.store.save_mfa(record, Pending=sealed):
        raise ConflictError()
    uri = totp.provisioning_uri(secret, account=account.email, issuer=service.settings.mfa.issuer)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_code=totp.qr_code_data_uri(uri))


def confirm_enrolment(service: AccountService, account: Account, code: str) -> tuple[list[str], Session]:
    """Turn TOTP on with a first code; return the recovery codes and a session for this device.

    Every other session ends (they were proven by a password alone): the
    session version moves on, and the caller's device gets a fresh token.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    :raises MfaAlreadyEnabled: TOTP is on already.
    :raises InvalidCode: no pending enrolment, or the code is wrong.
    :raises ConflictError: a concurrent change; retry.
    """
    keys = service.settings.mfa.keys()
    record = service.store.mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    if record.pending is None:
        raise InvalidCode("no pending enrolment")
    secret = _unseal(keys, record.pending, account.user_id)
    step = totp.accepted_step(secret, code, now=datetime.now(UTC), last_used_step=record.last_step)
    if step is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", step="confirm", user_id=account.user_id)
        raise InvalidCode("wrong code")
    codes = recovery_codes.new_recovery_codes()
    digests = _digests(keys, account.user_id, codes)
    changes = {
        "Secret": record.pending,
        "Pending": "",
        "LastStep": step,
        "RecoveryCodes": json.dumps(digests),
    }
    version = service.store.change_mfa(
        account, record, changes, enabled=True, recovery_codes_left=len(codes), revoke_sessions=True
    )
    log_event("mfa_enrolled", user_id=account.user_id)
    session = service.start_session(account.user_id, account.email, version, AMR_TOTP)
    return codes, session


def issue_challenge_for(service: AccountService, account: Account) -> str:
    """Store a new challenge on the account's second-factor row and return its token.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed (fail closed).
    """
    service.settings.mfa.keys()
    record = service.store.mfa_record(account)
    challenge_id = secrets.token_urlsafe(16)
    lifetime = service.settings.mfa.challenge_lifetime
    expires = datetime.now(UTC) + lifetime
    if not service.store.save_mfa(record, Challenge=challenge_id, ChallengeExpires=expires):
        raise ConflictError()
    log_event("mfa_challenge_issued", user_id=account.user_id)
    return issue_challenge(service.settings.tokens, account.user_id, challenge_id, lifetime)


def log_in_with_code(
    service: AccountService, mfa_token: str, *, code: str | None, recovery_code: str | None
) -> Session:
    """The second step of a login: the challenge's token and a TOTP or recovery code.

    A wrong code counts against the email's lockout, like a wrong password.

    :raises InvalidToken: the token is forged, expired, used, or the account is gone.
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
    now = datetime.now(UTC)
    record = service.store.mfa_record(account)
    live = record.challenge_expires is not None and record.challenge_expires > now
    if record.challenge != challenge_id or not live or record.secret is None:
        raise InvalidToken("challenge used, replaced or expired")
    login = service.refuse_if_locked_out(account.email)
    changes, amr = _accept_code(keys, account, record, code=code, recovery_code=recovery_code, now=now)
    if changes is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", user_id=user_id)
        service.count_failure(login, InvalidCode("wrong second factor"))
    changes["Challenge"] = ""
    left = len(json.loads(str(changes["RecoveryCodes"]))) if "RecoveryCodes" in changes else None
    try:
        service.store.change_mfa(account, record, changes, recovery_codes_left=left)
    except ConflictError:
        # Another request used this challenge or a code first (the row's ETag moved on).
        log_event("mfa_failed", logging.WARNING, reason="replayed", user_id=user_id)
        raise InvalidCode("used concurrently") from None
    log_event("mfa_succeeded", user_id=user_id, method=amr[1])
    if left is not None:
        log_event("recovery_code_used", user_id=user_id, left=left)
    return service.start_session(account.user_id, account.email, account.session_version, amr)


def regenerate_recovery_codes(
    service: AccountService, account: Account, password: str, code: str
) -> list[str]:
    """Replace the recovery codes (the old set stops working), after the password and a code.

    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong (a current TOTP or an unused recovery code).
    :raises InvalidRequest: TOTP is not on.
    """
    keys, record, changes = _checked_factor(service, account, password, code)
    fresh = recovery_codes.new_recovery_codes()
    changes["RecoveryCodes"] = json.dumps(_digests(keys, account.user_id, fresh))
    try:
        service.store.change_mfa(account, record, changes, recovery_codes_left=len(fresh))
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    log_event("recovery_codes_regenerated", user_id=account.user_id)
    return fresh


def disable(service: AccountService, account: Account, password: str, code: str) -> None:
    """Turn the second factor off, after the password and a code; the owner is told by mail.

    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong.
    :raises InvalidRequest: TOTP is not on.
    """
    _, record, _ = _checked_factor(service, account, password, code)
    try:
        service.store.change_mfa(account, record, None, enabled=False, recovery_codes_left=0)
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    log_event("mfa_disabled", user_id=account.user_id)
    service.outbox.send_after_change(
        MailRequest(MailKind.MFA_DISABLED, account.email, user_id=account.user_id)
    )


def check_code(service: AccountService, account: Account, code: str) -> None:
    """Check a current TOTP or an unused recovery code of ``account`` (for a step it allows once).

    :raises InvalidCode: the code is wrong.
    """
    keys = service.settings.mfa.keys()
    _accepted_changes(service, keys, account, service.store.mfa_record(account), code)


def _checked_factor(
    service: AccountService, account: Account, password: str, code: str
) -> tuple[EncryptionKeys, MfaRecord, dict[str, object]]:
    """Check the password and a code; return the keys, the row, and the changes that use the code."""
    keys = service.settings.mfa.keys()
    service.check_password(account, password)
    record = service.store.mfa_record(account)
    if not account.mfa_totp or record.secret is None:
        raise InvalidRequest("The second factor is not on.")
    return keys, record, _accepted_changes(service, keys, account, record, code)


def _accepted_changes(
    service: AccountService, keys: EncryptionKeys, account: Account, record: MfaRecord, code: str
) -> dict[str, object]:
    """The row changes that use ``code`` (TOTP or recovery code).

    A wrong code counts against the email's lockout, as at login.

    :raises TooManyAttempts: the email is locked out.
    :raises InvalidCode: it is neither a current TOTP code nor an unused recovery code.
    """
    login = service.refuse_if_locked_out(account.email)
    digits = code.replace(" ", "").strip()
    as_totp = digits if digits.isdigit() else None
    changes, _ = _accept_code(
        keys, account, record, code=as_totp, recovery_code=None if as_totp else code, now=datetime.now(UTC)
    )
    if changes is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", user_id=account.user_id)
        service.count_failure(login, InvalidCode("wrong code"))
    return changes


def _accept_code(
    keys: EncryptionKeys,
    account: Account,
    record: MfaRecord,
    *,
    code: str | None,
    recovery_code: str | None,
    now: datetime,
) -> tuple[dict[str, object] | None, tuple[str, ...]]:
    """The row changes that use a code, and the session's ``amr``; ``None`` changes if it is wrong."""
    if record.secret is None:
        return None, AMR_PASSWORD
    if code is not None:
        secret = _unseal(keys, record.secret, account.user_id)
        step = totp.accepted_step(secret, code, now=now, last_used_step=record.last_step)
        return ({"LastStep": step} if step is not None else None), AMR_TOTP
    # Codes issued before a key rotation were digested under a previous key: try each.
    found = [
        recovery_codes.find(
            recovery_codes.recovery_code_key(key),
            account.user_id,
            recovery_code or "",
            record.recovery_digests,
        )
        for key in (keys.current, *keys.previous)
    ]
    index = next((i for i in found if i is not None), None)
    if index is None:
        return None, AMR_RECOVERY_CODE
    left = [d for i, d in enumerate(record.recovery_digests) if i != index]
    return {"RecoveryCodes": json.dumps(left)}, AMR_RECOVERY_CODE


def _digests(keys: EncryptionKeys, user_id: str, codes: list[str]) -> list[str]:
    key = recovery_codes.recovery_code_key(keys.current)
    return [recovery_codes.digest(key, user_id, code) for code in codes]


def _unseal(keys: EncryptionKeys, sealed: str, user_id: str) -> str:
    try:
        return decrypt(keys, sealed, associated_data=user_id.encode("utf-8")).decode("ascii")
    except SecretUnreadable as error:
        log_event("mfa_secret_unreadable", logging.ERROR, reason=error.reason, user_id=user_id)
        raise InvalidCode("secret unreadable") from None

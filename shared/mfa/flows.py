"""The second factor's steps: enrol, confirm, regenerate recovery codes, turn off.

Every step that changes the second factor asks for the password again (under
the lockout); the checks of a code are :mod:`shared.mfa.auth`'s. A login's
second step is :mod:`shared.login.second_factor`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.accounts.service import AccountService, Session
from shared.accounts.store import Account
from shared.errors import ConflictError, InvalidCode, InvalidRequest, MfaAlreadyEnabled
from shared.events import log_event
from shared.mfa import recovery_codes, totp
from shared.mfa.auth import AMR_TOTP, accepted_changes, log_resealed, new_codes, seal, store_of, unseal
from shared.mfa.encryption import EncryptionKeys, encrypt, needs_reencryption
from shared.mfa.store import MfaRecord
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest

__all__ = ["Enrolment", "confirm_enrolment", "disable", "regenerate_recovery_codes", "start_enrolment"]


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
    record = store_of(service).mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    secret = totp.new_secret()
    sealed = encrypt(keys, secret.encode("ascii"), associated_data=account.user_id.encode("utf-8"))
    if not store_of(service).save_mfa(record, Pending=sealed):
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
    record = store_of(service).mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    if record.pending is None:
        raise InvalidCode("no pending enrolment")
    secret = unseal(keys, record.pending, account.user_id)
    step = totp.accepted_step(secret, code, now=datetime.now(UTC), last_used_step=record.last_step)
    if step is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", step="confirm", user_id=account.user_id)
        raise InvalidCode("wrong code")
    codes = recovery_codes.new_recovery_codes()
    changes: dict[str, object] = {
        "Secret": record.pending
        if not needs_reencryption(keys, record.pending)
        else seal(keys, secret, account.user_id),
        "Pending": "",
        "LastStep": step,
        **new_codes(keys, account.user_id, codes),
    }
    version = store_of(service).change_mfa(
        account, record, changes, enabled=True, recovery_codes_left=len(codes), revoke_sessions=True
    )
    log_event("mfa_enrolled", user_id=account.user_id)
    session = service.start_session(account.user_id, account.email, version, AMR_TOTP)
    return codes, session


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
    changes |= new_codes(keys, account.user_id, fresh)
    try:
        store_of(service).change_mfa(account, record, changes, recovery_codes_left=len(fresh))
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    log_resealed(changes, account.user_id)
    log_event("recovery_codes_regenerated", user_id=account.user_id)
    notice = MailRequest(MailKind.RECOVERY_CODES_REGENERATED, account.email, user_id=account.user_id)
    service.outbox.send_after_change(notice)
    return fresh


def disable(service: AccountService, account: Account, password: str, code: str) -> None:
    """Turn the second factor off, after the password and a code; the owner is told by mail.

    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong.
    :raises InvalidRequest: TOTP is not on.
    """
    _, record, _ = _checked_factor(service, account, password, code)
    try:
        store_of(service).change_mfa(account, record, None, enabled=False, recovery_codes_left=0)
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    log_event("mfa_disabled", user_id=account.user_id)
    service.outbox.send_after_change(
        MailRequest(MailKind.MFA_DISABLED, account.email, user_id=account.user_id)
    )


def _checked_factor(
    service: AccountService, account: Account, password: str, code: str
) -> tuple[EncryptionKeys, MfaRecord, dict[str, object]]:
    """Check the password and a code; return the keys, the row, and the changes that use the code."""
    keys = service.settings.mfa.keys()
    service.check_password(account, password)
    record = store_of(service).mfa_record(account)
    if not account.mfa_totp or record.secret is None:
        raise InvalidRequest("The second factor is not on.")
    return keys, record, accepted_changes(service, keys, account, record, code)
